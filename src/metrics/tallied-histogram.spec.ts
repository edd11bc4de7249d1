import { Histogram, Registry } from 'prom-client';
import { TalliedHistogram } from './tallied-histogram.js';

describe('TalliedHistogram', () => {
  const config = {
    name: 'd_seconds',
    help: 'durations',
    labelNames: ['method', 'status'] as const,
    buckets: [0.001, 0.01, 0.1],
  };
  // Below, on and between the bounds, and above the last (only in +Inf).
  const values = [0.0002, 0.001, 0.004, 0.01, 0.05, 0.1, 0.7, 3];

  async function exposition(feed: (h: Histogram<'method' | 'status'>) => void, tallied: boolean): Promise<string> {
    const registry = new Registry();
    const h = tallied ? new TalliedHistogram({ ...config, registers: [registry] }) : new Histogram({ ...config, registers: [registry] });
    feed(h);
    return registry.metrics();
  }

  it('exposes what observe() would have: buckets, sum and count, per label set', async () => {
    const plain = await exposition((h) => {
      for (const v of values) h.observe({ method: 'GET', status: '200' }, v);
      h.observe({ method: 'POST', status: '502' }, 0.02);
    }, false);
    const tallied = await exposition((h) => {
      const get = (h as TalliedHistogram<'method' | 'status'>).tally({ method: 'GET', status: '200' });
      for (const v of values) get.observe(v);
      (h as TalliedHistogram<'method' | 'status'>).tally({ method: 'POST', status: '502' }).observe(0.02);
    }, true);
    expect(tallied).toBe(plain);
    expect(tallied).toContain('d_seconds_count{method="GET",status="200"} 8');
  });

  it('adds a tally to what observe() recorded for the same labels, and folds each observation once', async () => {
    const registry = new Registry();
    const h = new TalliedHistogram({ ...config, registers: [registry] });
    const labels = { method: 'GET', status: '200' };
    h.observe(labels, 0.05);
    const tally = h.tally(labels);
    expect(h.tally({ status: '200', method: 'GET' })).toBe(tally);
    tally.observe(0.0005);
    tally.observe(0.5);
    expect(await registry.metrics()).toContain('d_seconds_count{method="GET",status="200"} 3');
    // Read again: nothing counted twice.
    const text = await registry.metrics();
    expect(text).toContain('d_seconds_count{method="GET",status="200"} 3');
    expect(text).toContain('d_seconds_bucket{le="0.001",method="GET",status="200"} 1');
    expect(text).toContain('d_seconds_bucket{le="0.1",method="GET",status="200"} 2');
    expect(text).toContain('d_seconds_bucket{le="+Inf",method="GET",status="200"} 3');
    expect(text).toMatch(/d_seconds_sum\{method="GET",status="200"\} 0\.5505\d*\n/);
    // Also through getMetricsAsJSON (get()).
    const [json] = await registry.getMetricsAsJSON();
    expect((json.values as Array<{ metricName?: string; value: number }>).find((v) => v.metricName === 'd_seconds_count')?.value).toBe(3);
  });

  it('matches observe() across reads with observations in between, whatever the status label type', async () => {
    const plainRegistry = new Registry();
    const talliedRegistry = new Registry();
    const plain = new Histogram({ ...config, registers: [plainRegistry] });
    const tallied = new TalliedHistogram({ ...config, registers: [talliedRegistry] });
    const tally = tallied.tally({ method: 'GET', status: 200 });
    for (const [i, v] of values.entries()) {
      plain.observe({ method: 'GET', status: '200' }, v);
      if (i % 2) tally.observe(v);
      else tallied.observe({ method: 'GET', status: '200' }, v);
      if (i % 3 === 0) await Promise.all([plainRegistry.metrics(), talliedRegistry.metrics()]);
    }
    const [a] = await plainRegistry.getMetricsAsJSON();
    const [b] = await talliedRegistry.getMetricsAsJSON();
    expect(b.values).toHaveLength(a.values.length);
    for (const [i, v] of a.values.entries()) {
      expect(b.values[i].labels).toEqual(v.labels);
      expect(b.values[i].value).toBeCloseTo(v.value, 12);
    }
  });

  it('still runs a collect function of its own, and remove() drops a tally too', async () => {
    const registry = new Registry();
    let collected = 0;
    const h = new TalliedHistogram({ ...config, registers: [registry], collect: () => void collected++ });
    h.tally({ method: 'GET', status: '200' }).observe(0.05);
    await registry.metrics();
    expect(collected).toBe(1);
    h.tally({ method: 'GET', status: '200' }).observe(0.05);
    h.remove({ method: 'GET', status: '200' });
    expect(await registry.metrics()).not.toContain('method="GET"');
  });

  it('reset() drops what tallies held too', async () => {
    const registry = new Registry();
    const h = new TalliedHistogram({ ...config, registers: [registry] });
    h.tally({ method: 'GET', status: '200' }).observe(0.05);
    h.reset();
    expect(await registry.metrics()).not.toContain('d_seconds_count{method="GET"');
  });
});
