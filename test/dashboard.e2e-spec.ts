/**
 * The dashboard at / in a real headless browser: Debian's chromium driven by playwright-core
 * (`npx playwright install` cannot run here). The app listens on a free loopback port and
 * ingests the recorded fixture from a loopback upstream. Screenshots go to .screenshots/
 * (gitignored). Without /usr/bin/chromium the suite is skipped locally, but fails in CI.
 * DASHBOARD_BROWSER_TEST=off skips it (.ci/run, for its runs on other Node versions: the page
 * runs in the same Chromium whatever Node serves it, and the suite costs two minutes of CPU).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { REDIS_SUBSCRIBER } from '../src/redis/redis.constants.js';
import playwright, { type Browser, type Page } from 'playwright-core';
import { startTestApp, stopTestApp, postRefresh, type TestApp } from './support/app.js';
import { deleteKeys, uniquePrefix } from './support/redis.js';
import { FakeUpstream, loadFixture, RawRecord } from './support/upstream.js';
import { waitFor } from './support/wait.js';

// Page-side globals inside page.evaluate / waitForFunction callbacks (the project has no DOM lib).
declare const document: any; // eslint-disable-line @typescript-eslint/no-explicit-any
declare const window: any; // eslint-disable-line @typescript-eslint/no-explicit-any

const CHROMIUM = '/usr/bin/chromium';
/** The name the browser opens the app by (resolved to 127.0.0.1 by the browser alone). */
const PAGE_HOST = 'dashboard.test';
const haveChromium = existsSync(CHROMIUM);
const off = process.env.DASHBOARD_BROWSER_TEST === 'off';
if (!haveChromium && !off && process.env.CI === 'true') {
  throw new Error(`${CHROMIUM} is missing: the dashboard browser test must run in CI (apt-get install -y chromium)`);
}

const HOUR = 3_600_000;
const fixture = loadFixture();
const ms = (r: RawRecord) => Math.trunc((r.timestamp as number) * 1000);
/** The feed as it was before 15:00 on the last day; the full fixture is the "new ingest". */
const earlier = fixture.filter((r) => ms(r) < Date.parse('2021-07-07T15:00:00Z'));

/** The page's date format (UTC): "7 Jul 2021 14:59 UTC". */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function utc(t: number): string {
  const d = new Date(t);
  const hhmm = d.toISOString().slice(11, 16);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${hhmm} UTC`;
}
const METRICS = ['price', 'sentiment'] as const;

/** Hourly buckets holding samples in the 24 h before the newest one. */
function hoursShown(records: RawRecord[], rangeMs = 24 * HOUR): number {
  const latest = Math.max(...records.map(ms));
  return new Set(records.map(ms).filter((t) => t >= latest - rangeMs).map((t) => Math.floor(t / HOUR))).size;
}

/**
 * Canned answers for the page's three data requests (summary, series listing, chart points),
 * for the cases the recorded v1 fixture cannot produce: live data, a stale daily index on a
 * 0–100 scale, a metric without data, a deployment whose summary predates `metrics`.
 */
interface Canned {
  summary: unknown;
  listing: { metric: string; last: number; labels: Record<string, string> }[];
  points: { time: string; price: number | null; sentiment: number | null }[];
  /** GET /verdict (no changes when not given). */
  verdict?: unknown;
}
async function serveCanned(page: Page, canned: Canned): Promise<void> {
  const listing = canned.listing.map((l) => ({
    key: `canned:${l.metric}`, metric: l.metric, labels: l.labels, sourceKey: null, totalSamples: 10, lastTimestamp: l.last, rules: [],
  }));
  await page.route((u) => u.pathname === '/is-bitcoin-lit', (r) => r.fulfill({ json: canned.summary }));
  await page.route((u) => u.pathname === '/series', (r) => r.fulfill({ json: listing }));
  await page.route((u) => u.pathname === '/series/combined', (r) => r.fulfill({ json: canned.points }));
  await page.route((u) => u.pathname === '/verdict', (r) => r.fulfill({ json: canned.verdict ?? { verdict: null, since: null, evaluated_as_of: null, changes: [] } }));
}

/** The browser's "now" in the canned tests (page.clock), and hourly times relative to it. */
const NOW = Date.parse('2026-12-02T07:12:30.000Z');
const iso = (t: number) => new Date(t).toISOString();
const hoursFrom = (start: string, n: number, every = 1) => Array.from({ length: n }, (_, i) => Date.parse(start) + i * every * HOUR);

(haveChromium && !off ? describe : describe.skip)('dashboard in headless chromium (e2e)', () => {
  const prefix = uniquePrefix('dashboard');
  let redis: Redis;
  let upstream: FakeUpstream;
  let app: NestFastifyApplication;
  let browser: Browser;
  let page: Page;
  /** Where the browser opens the app (PAGE_HOST); Node's fetch uses `server`. */
  let base: string;
  let server: string;

  const summary = async () => (await app.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
  const shot = async (name: string) => {
    mkdirSync('.screenshots', { recursive: true });
    await page.screenshot({ path: `.screenshots/${name}.png`, fullPage: true });
  };

  beforeAll(async () => {
    ({ redis, upstream, app } = await startTestApp(prefix, earlier));
    await app.listen(0, '127.0.0.1');
    // Opened by a name, not 127.0.0.1: browsers treat loopback addresses as secure contexts
    // (no upgrade-insecure-requests, for one), a server's address or name as what it is.
    const { port } = app.getHttpServer().address() as AddressInfo;
    base = `http://${PAGE_HOST}:${port}`;
    server = `http://127.0.0.1:${port}`;
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 * earlier.length });
    browser = await playwright.chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--host-resolver-rules=MAP ${PAGE_HOST} 127.0.0.1`,
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await upstream?.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  // Whatever the page logs as an error (a failed request, a script error, a CSP violation) fails
  // the test, but Chromium's note that Cross-Origin-Opener-Policy only applies over https: the
  // header is for deployments behind TLS, and this page is plain http by name.
  let consoleErrors: string[];
  /** Console errors a test causes on purpose (requests it makes fail), not counted. */
  let expectedErrors: RegExp | undefined;
  beforeEach(async () => {
    consoleErrors = [];
    expectedErrors = undefined;
    page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    page.on('console', (m) => m.type() === 'error' && !m.text().startsWith('The Cross-Origin-Opener-Policy header has been ignored') && !expectedErrors?.test(m.text()) && consoleErrors.push(m.text()));
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  });
  afterEach(async () => {
    await page?.close();
    expect(consoleErrors).toEqual([]);
  });

  it('shows the directions and one chart point per hour of the last 24 h', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const expectedPoints = hoursShown(earlier);
    expect(expectedPoints).toBe(22); // 2021-07-06 17:00 … 2021-07-07 14:00
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe(String(expectedPoints));
    expect(await page.locator('circle.point.price').count()).toBe(expectedPoints);
    expect(await page.locator('circle.point.sentiment').count()).toBe(expectedPoints);

    const s = await summary();
    await page.waitForFunction((d) => document.getElementById('price-direction')?.dataset.direction === d, s.price_direction);
    expect(await page.getAttribute('#sentiment-direction', 'data-direction')).toBe(s.sentiment_direction);
    const lastHour = s.hourly_average_of_averages.at(-1);
    expect(await page.textContent('#sentiment-value')).toBe(lastHour.sentiment.toFixed(3));
    expect(await page.textContent('#price-value')).toBe(
      new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', maximumFractionDigits: 2 }).format(lastHour.price),
    );

    // The API's verdict, said in the past tense: the fixture is from 2021.
    const expected = s.verdict as 'lit' | 'cold' | 'mixed';
    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe(expected);
    expect(await page.textContent('#verdict')).toBe({ lit: 'It was lit', cold: 'It was cold', mixed: 'Mixed signals' }[expected] + ' (stale data)');
    expect(await page.textContent('#verdict-since')).toContain(`since ${utc(Date.parse(s.verdict_since))} (`);

    // Per metric, from the summary's metrics: source, unit, latest sample, its age in years, and
    // the stale badge (the v1 feed is frozen in 2021, so the summary flags both metrics stale).
    expect(s.metrics).toBeDefined();
    for (const metric of METRICS) {
      const described = s.metrics[metric];
      expect(described).toMatchObject({ source: 'senticrypt-v1', stale: true });
      expect(await page.textContent(`#${metric}-source`)).toBe('senticrypt-v1');
      expect(await page.textContent(`#${metric}-unit`)).toBe(described.unit);
      expect(await page.textContent(`#axis-${metric}`)).toBe(`${metric} (${described.unit})`);
      expect(await page.textContent(`#${metric}-latest`)).toBe(utc(Date.parse(described.latest_sample_time)));
      expect(await page.textContent(`#${metric}-age`)).toMatch(/^\d+ years ago$/);
      expect(await page.isVisible(`#${metric}-stale`)).toBe(true);
    }
    expect(await page.textContent('#sentiment-unit')).toBe('score -1..1');
    expect(await page.textContent('#verdict-basis')).toContain(`to ${utc(Date.parse(s.as_of))} (`);
    // v1 stores both metrics from the same records: one date for both.
    expect(await page.textContent('#stale-banner')).toMatch(
      new RegExp(`^Stale data, not a live answer\\. Newest price and sentiment samples: ${utc(Math.max(...earlier.map(ms)))} \\(\\d+ years ago\\)\\.$`),
    );

    // Dates on the time axis (the range is not today), and the full range above the chart.
    const ticks = await page.locator('text.tick-time').evaluateAll((els) => els.map((e) => [...e.querySelectorAll('tspan')].map((t) => t.textContent)));
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const [clock, day] of ticks) {
      expect(clock).toMatch(/^\d\d:00$/);
      expect(day).toMatch(/^[67] Jul 2021$/);
    }
    expect(await page.textContent('#range-caption')).toContain('6 Jul 2021 17:00 UTC – 7 Jul 2021 14:00 UTC');

    // Connected to /events, but not "live": the data is five years old.
    await page.waitForFunction(() => /connected|polling/.test(document.getElementById('status')?.textContent ?? ''));
    expect(await page.textContent('#status')).not.toMatch(/\blive\b/);
    expect(await page.getAttribute('#live-dot', 'class')).not.toMatch(/\blive\b/);
    await shot('dashboard-desktop');
  });

  it('switches the range (7 d asks the API for 7 days before the newest sample)', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const request = page.waitForRequest((r) => r.url().includes('/series/combined'));
    await page.click('button[data-range="7d"]');
    const url = new URL((await request).url());
    const latest = Math.max(...earlier.map(ms));
    expect(url.searchParams.get('to')).toBe(String(latest));
    expect(url.searchParams.get('from')).toBe(String(latest - 7 * 24 * HOUR));
    expect(await page.getAttribute('button[data-range="7d"]', 'aria-pressed')).toBe('true');
    await page.waitForFunction(() => document.querySelector('svg[data-points]') !== null);
    // The fixture spans one day, so 7 days show the same hours.
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe(String(hoursShown(earlier, 7 * 24 * HOUR)));
  });

  it('is readable on a phone: no horizontal scrolling, the chart fits the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      chart: document.querySelector('#chart svg')!.getBoundingClientRect().width,
    }));
    expect(widths.page).toBeLessThanOrEqual(390);
    expect(widths.chart).toBeLessThanOrEqual(390);
    await shot('dashboard-phone');
  });

  it('shows a new ingest without a reload', async () => {
    // ?refresh=1: poll every second while /events is not connected; with /events the ingest
    // event itself triggers the update.
    await page.goto(`${base}/?refresh=1`);
    await page.waitForSelector('svg[data-points]');
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe('22');
    await page.evaluate(() => (window.marker = true));

    upstream.mode = { kind: 'json', body: fixture };
    expect((await postRefresh(app)).json()).toMatchObject({ stored: 2 * (fixture.length - earlier.length) });
    const after = await summary();
    const lastHour = after.hourly_average_of_averages.at(-1);
    expect(lastHour.time).toBe('2021-07-07T17:00:00.000Z');

    const expectedPoints = hoursShown(fixture);
    expect(expectedPoints).toBe(25);
    await page.waitForFunction((n) => document.querySelector('svg[data-points]')?.getAttribute('data-points') === String(n), expectedPoints, {
      timeout: 15_000,
    });
    await page.waitForFunction((v) => document.getElementById('sentiment-value')?.textContent === v, lastHour.sentiment.toFixed(3), { timeout: 15_000 });
    expect(await page.getAttribute('#price-direction', 'data-direction')).toBe(after.price_direction);
    // The freshness came along: the newest sample is now the full fixture's.
    expect(after.metrics.price.latest_sample_time).toBe(new Date(Math.max(...fixture.map(ms))).toISOString());
    await page.waitForFunction((t) => document.getElementById('price-latest')?.textContent === t, utc(Math.max(...fixture.map(ms))));
    // Same document: nothing reloaded it.
    expect(await page.evaluate(() => window.marker)).toBe(true);
    await shot('dashboard-after-ingest');
  });

  it('connected, still reads the summary every refresh period; while the instance has lost its Redis subscription, it says so and polls', async () => {
    const summaries: number[] = [];
    page.on('request', (r) => new URL(r.url()).pathname === '/is-bitcoin-lit' && summaries.push(Date.now()));
    await page.goto(`${base}/?refresh=1`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('connected') || document.getElementById('status')?.textContent?.startsWith('live'));
    // Connected: no ingest event comes (nothing new), yet the stale flags must not freeze.
    const before = summaries.length;
    // Two reads of the 1 s refresh; waited for, not timed (a loaded CI machine runs timers late).
    await waitFor('two summary reads while connected', () => summaries.length - before >= 2, { timeoutMs: 15_000 });

    // The subscriber connection closes (as ioredis reports a lost connection), then is back.
    const subscriber = app.get<EventEmitter>(REDIS_SUBSCRIBER);
    subscriber.emit('close');
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('polling every 1 s'));
    const whileDown = summaries.length;
    subscriber.emit('ready');
    await page.waitForFunction(() => !document.getElementById('status')?.textContent?.startsWith('polling'));
    // Back: it catches up at once.
    await waitFor('the summary read again', () => summaries.length > whileDown);
  });

  it('reloads the chart once for the events of one poll round (one per venue), not once per event', async () => {
    const charts: string[] = [];
    page.on('request', (r) => new URL(r.url()).pathname === '/series/combined' && charts.push(r.url()));
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('connected') || document.getElementById('status')?.textContent?.startsWith('live'));
    const before = charts.length;
    for (const source of ['coinbase', 'kraken', 'bitstamp']) {
      await redis.publish(`${prefix}:events`, JSON.stringify({ type: 'ingest', source, latestSampleTime: '2021-07-07T14:59:00.000Z', stored: 1, report: {}, summary: null }));
    }
    await waitFor('the chart reloaded', () => charts.length > before);
    await page.waitForTimeout(3000);
    expect(charts.length - before).toBe(1);
  });

  it('shows a verdict change without a reload, as the event states it (the page does not recompute it)', async () => {
    await page.goto(`${base}/`);
    await page.waitForSelector('#verdict:not([data-verdict=""])');
    const s = await summary();
    // A verdict the directions alone would not give: the page must show the API's word.
    const other = s.verdict === 'cold' ? 'lit' : 'cold';
    const since = '2021-07-07T12:00:00.000Z';
    const change = { type: 'verdict.changed', id: 'e2e-change', previous: s.verdict, verdict: other, since, summary: { ...s, verdict: other, verdict_since: since } };
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('connected')); // /events is open
    await redis.publish(`${prefix}:events`, JSON.stringify(change));
    await page.waitForFunction((v) => document.getElementById('verdict')?.dataset.verdict === v, other);
    expect(await page.textContent('#verdict-since')).toMatch(new RegExp(`^${other === 'lit' ? 'Lit' : 'Cold'} since 7 Jul 2021 12:00 UTC \\(\\d+ years ago\\)\\.$`));
  });

  it("follows the server's stale flag per metric: a sentiment threshold of 10 years leaves only price stale", async () => {
    // A second app on the same fixture whose SENTIMENT_STALE_AFTER_MS covers 2021 (price keeps
    // its 10 min): the page must show what the summary says, not judge by age itself.
    const other: Partial<TestApp> = {};
    const otherPrefix = uniquePrefix('dashboard-stale');
    try {
      Object.assign(other, await startTestApp(otherPrefix, earlier, { SENTIMENT_STALE_AFTER_MS: String(10 * 365 * 24 * HOUR) }));
      const otherApp = other.app!;
      await otherApp.listen(0, '127.0.0.1');
      expect((await postRefresh(otherApp)).json()).toMatchObject({ stored: 2 * earlier.length });
      const s = (await otherApp.inject({ method: 'GET', url: '/is-bitcoin-lit' })).json();
      expect(s.metrics.price.stale).toBe(true);
      expect(s.metrics.sentiment.stale).toBe(false);

      await page.goto(`http://127.0.0.1:${(otherApp.getHttpServer().address() as AddressInfo).port}/`);
      await page.waitForSelector('svg[data-points]');
      await page.waitForFunction(() => document.getElementById('sentiment-age')?.textContent !== '–');
      expect(await page.isVisible('#price-stale')).toBe(true);
      expect(await page.isVisible('#sentiment-stale')).toBe(false);
      expect(await page.textContent('#sentiment-age')).toMatch(/^\d+ years ago$/);
      expect(await page.textContent('#stale-banner')).toMatch(
        new RegExp(`^Stale data, not a live answer\\. Newest price sample: ${utc(Date.parse(s.metrics.price.latest_sample_time))} \\(\\d+ years ago\\)\\.$`),
      );
      expect(await page.textContent('#verdict')).toMatch(/\(stale data\)$/);
    } finally {
      await stopTestApp(otherPrefix, other);
    }
  });

  /** Loads the page at the browser time NOW - 60 s, then holds the clock at NOW (+15 s, one age refresh). */
  async function openAtNow(): Promise<void> {
    await page.clock.install({ time: NOW - 60_000 });
    await page.goto(`${base}/`);
    await page.waitForSelector('svg[data-points]');
    await page.waitForSelector('#verdict:not([data-verdict=""])'); // the summary is in too
    await page.clock.pauseAt(NOW);
    await page.clock.runFor(15_000);
  }
  const text = async (selector: string) => (await page.textContent(selector))?.trim();
  const tickLines = () => page.locator('text.tick-time').evaluateAll((els) => els.map((e) => [...e.querySelectorAll('tspan')].map((t) => t.textContent)));

  it('live data: says lit, names the sources, ages in minutes that move on with the clock, today on the axis as HH:MM', async () => {
    const hours = hoursFrom('2026-12-02T04:00:00Z', 4);
    await serveCanned(page, {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 91000 + 150 * i, sentiment: 0.1 + 0.02 * i, time: iso(t) })),
        price_direction: 'rising',
        sentiment_direction: 'rising',
        as_of: iso(NOW - 30_000),
        metrics: {
          price: { source: 'coinbase', unit: 'USD', cadence: 'tick', latest_sample_time: iso(NOW - 3 * 60_000), stale: false },
          sentiment: { source: 'senticrypt-v2', unit: 'score -1..1', cadence: 'daily', latest_sample_time: '2026-12-02T00:00:00.000Z', stale: false },
        },
        verdict: 'lit',
        verdict_since: '2026-12-02T05:00:00.000Z',
      },
      listing: [
        { metric: 'price', last: NOW - 3 * 60_000, labels: { source: 'coinbase' } },
        { metric: 'sentiment', last: Date.parse('2026-12-02T00:00:00Z'), labels: { source: 'senticrypt-v2' } },
      ],
      points: hoursFrom('2026-12-02T00:00:00Z', 8).map((t, i) => ({ time: iso(t), price: 90800 + 100 * i, sentiment: i === 0 ? 0.1 : null })),
      verdict: {
        verdict: 'lit',
        since: '2026-12-02T05:00:00.000Z',
        evaluated_as_of: iso(NOW - 30_000),
        changes: [
          { id: 'c2', time: '2026-12-02T05:00:00.000Z', previous: 'mixed', verdict: 'lit' },
          { id: 'c1', time: '2026-12-01T22:00:00.000Z', previous: 'lit', verdict: 'mixed' },
        ],
      },
    });
    await openAtNow();

    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe('lit');
    expect(await text('#verdict')).toBe('Yes, it is lit');
    expect(await text('#verdict-basis')).toBe('From 2 Dec 2026 04:00 UTC to 2 Dec 2026 07:12 UTC (45 seconds ago): price ▲ rising, sentiment ▲ rising.');
    expect(await text('#verdict-since')).toBe('Lit since 2 Dec 2026 05:00 UTC (2 hours ago).');
    expect(await page.locator('#verdict-changes li').allTextContents()).toEqual(['2 Dec 2026 05:00 UTC: mixed → lit', '1 Dec 2026 22:00 UTC: lit → mixed']);
    expect(await text('#price-value')).toBe('$91,450.00');
    expect(await text('#sentiment-value')).toBe('0.160');
    expect(await text('#price-source')).toBe('coinbase');
    expect(await page.isVisible('#price-venues')).toBe(false); // one venue: no venues row
    expect(await text('#sentiment-source')).toBe('senticrypt-v2');
    // A daily index is shown as the level in effect, not as an hourly average.
    expect(await text('#sentiment-label')).toBe('Sentiment, daily index in effect');
    expect(await text('#sentiment-unit')).toBe('score -1..1');
    expect(await text('#price-latest')).toBe('2 Dec 2026 07:09 UTC');
    expect(await text('#price-age')).toBe('3 minutes ago');
    expect(await text('#sentiment-latest')).toBe('2 Dec 2026 00:00 UTC');
    expect(await text('#sentiment-age')).toBe('7 hours ago');
    for (const metric of METRICS) expect(await page.isVisible(`#${metric}-stale`)).toBe(false);
    expect(await page.isVisible('#stale-banner')).toBe(false);
    expect(await page.isVisible('#missing-banner')).toBe(false);
    expect(await text('#axis-sentiment')).toBe('sentiment (score -1..1)');
    // One sentiment point in range (a daily index): its axis still has five distinct ticks.
    expect(await page.locator('circle.point.sentiment').count()).toBe(1);
    expect(new Set(await page.locator('text.tick-sentiment').allTextContents()).size).toBe(5);

    // Today only: HH:MM ticks, the date in the caption.
    const ticks = await tickLines();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const lines of ticks) expect(lines).toEqual([expect.stringMatching(/^\d\d:00$/)]);
    expect(await text('#range-caption')).toBe('Hourly averages, 2 Dec 2026 00:00 UTC – 2 Dec 2026 07:00 UTC (12 minutes ago).');

    // Connected and fresh: live.
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('live · '));
    expect(await page.getAttribute('#live-dot', 'class')).toMatch(/\blive\b/);
    await shot('dashboard-live');

    // Five minutes later, same (cached) summary: the ages moved on.
    await page.clock.fastForward('05:00');
    expect(await text('#price-age')).toBe('8 minutes ago');
    expect(await text('#sentiment-age')).toBe('7 hours ago');
    expect(await text('#range-caption')).toContain('(17 minutes ago)');
  });

  it('composite price: names the venues used and those left out, and why', async () => {
    const hours = hoursFrom('2026-12-02T04:00:00Z', 4);
    const venue = (source: string, rest: Record<string, unknown>) => ({ source, unit: 'USD', cadence: 'tick', latest_sample_time: iso(NOW - 60_000), stale: false, ...rest });
    await serveCanned(page, {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 91000 + 150 * i, sentiment: 0.1 + 0.02 * i, time: iso(t) })),
        price_direction: 'rising',
        sentiment_direction: 'rising',
        as_of: iso(NOW - 30_000),
        metrics: {
          price: {
            source: 'composite', unit: 'USD', cadence: 'tick', latest_sample_time: iso(NOW - 60_000), stale: false,
            venues: [
              venue('coinbase', { latest_sample_time: null, stale: true, hours_used: 0, left_out: 'no_data', outlier_hours: 0 }),
              venue('kraken', { hours_used: 2, left_out: 'outlier', outlier_hours: 2 }),
              venue('bitstamp', { hours_used: 4, left_out: null, outlier_hours: 0 }),
            ],
            disagreement_hours: 1,
          },
          sentiment: { source: 'senticrypt-v2', unit: 'score -1..1', cadence: 'daily', latest_sample_time: '2026-12-02T00:00:00.000Z', stale: false },
        },
      },
      listing: [
        { metric: 'price', last: NOW - 60_000, labels: { source: 'kraken' } },
        { metric: 'price', last: NOW - 120_000, labels: { source: 'bitstamp' } },
        { metric: 'sentiment', last: Date.parse('2026-12-02T00:00:00Z'), labels: { source: 'senticrypt-v2' } },
      ],
      points: hoursFrom('2026-12-02T00:00:00Z', 8).map((t, i) => ({ time: iso(t), price: 90800 + 100 * i, sentiment: 0.1 })),
    });
    await openAtNow();
    expect(await text('#price-source')).toBe('median of 3 exchanges');
    expect(await page.isVisible('#price-venues')).toBe(true);
    expect(await text('#price-venues')).toBe('used: kraken, bitstamp; left out: coinbase (no data), kraken (outlier, 2 h); the two left disagreed in 1 h');
    expect(await page.getAttribute('#price-venues', 'data-left-out')).toBe('coinbase:no_data,kraken:outlier');
    expect(await page.isVisible('#price-stale')).toBe(false);
    await shot('dashboard-composite');
  });

  it('stale daily fear-greed index: past tense, stale marker and banner, 0–100 scale, dated axis, not "live"', async () => {
    const hours = hoursFrom('2026-12-02T04:00:00Z', 4);
    const latestIndex = Date.parse('2026-11-29T00:00:00Z');
    await serveCanned(page, {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 91000 + 150 * i, sentiment: 42 + i, time: iso(t) })),
        price_direction: 'rising',
        sentiment_direction: 'rising',
        as_of: iso(NOW - 30_000),
        metrics: {
          price: { source: 'coinbase', unit: 'USD', latest_sample_time: iso(NOW - 20_000), stale: false },
          sentiment: { source: 'fear-greed', unit: 'index 0-100', latest_sample_time: iso(latestIndex), stale: true },
        },
      },
      listing: [
        { metric: 'price', last: NOW - 20_000, labels: { source: 'coinbase' } },
        { metric: 'sentiment', last: latestIndex, labels: { source: 'fear-greed' } },
      ],
      points: hoursFrom('2026-11-27T00:00:00Z', 43, 3).map((t) => ({
        time: iso(t),
        price: 90000 + (t % 7) * 10,
        sentiment: { '2026-11-27T00:00:00.000Z': 30, '2026-11-28T00:00:00.000Z': 52, '2026-11-29T00:00:00.000Z': 45 }[iso(t)] ?? null,
      })),
    });
    await openAtNow();

    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe('lit');
    expect(await text('#verdict')).toBe('It was lit (stale data)');
    expect(await page.isVisible('#sentiment-stale')).toBe(true);
    expect(await page.isVisible('#price-stale')).toBe(false);
    expect(await page.getAttribute('#sentiment-card', 'data-stale')).toBe('true');
    expect(await text('#stale-banner')).toBe('Stale data, not a live answer. Newest sentiment sample: 29 Nov 2026 00:00 UTC (3 days ago).');
    expect(await text('#sentiment-age')).toBe('3 days ago');
    expect(await text('#price-age')).toBe('35 seconds ago');

    // The 0–100 scale reads as such: "45", not "45.000"; axis titled with the unit, whole-number ticks.
    expect(await text('#sentiment-value')).toBe('45');
    expect(await text('#sentiment-unit')).toBe('index 0-100');
    expect(await text('#axis-sentiment')).toBe('sentiment (index 0-100)');
    expect(await text('#legend-sentiment')).toBe('sentiment (index 0-100, fear-greed)');
    const sentimentTicks = await page.locator('text.tick-sentiment').allTextContents();
    expect(sentimentTicks).toHaveLength(5);
    for (const t of sentimentTicks) expect(t).toMatch(/^\d+$/);
    expect(new Set(sentimentTicks).size).toBe(5);

    // The range spans days: every tick is a date (this year, so without the year).
    const ticks = await tickLines();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const lines of ticks) expect(lines).toEqual([expect.stringMatching(/^\d{1,2} (Nov|Dec)$/)]);
    expect(await text('#range-caption')).toContain('27 Nov 2026 00:00 UTC – 2 Dec 2026 06:00 UTC');

    // Connected to /events, yet not "live".
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.startsWith('connected'));
    expect(await text('#status')).toMatch(/^connected, but the data is stale · checked /);
    expect(await page.getAttribute('#live-dot', 'class')).not.toMatch(/\blive\b/);
    await shot('dashboard-stale-fear-greed');

    // The last 24 h hold no index value (its latest is 3 days old): the chart says so and when it was.
    await page.route((u) => u.pathname === '/series/combined', (r) =>
      r.fulfill({ json: hoursFrom('2026-12-01T08:00:00Z', 24).map((t) => ({ time: iso(t), price: 91000, sentiment: null })) }),
    );
    await page.click('button[data-range="24h"]');
    await page.waitForFunction(() => document.querySelector('svg[data-points]')?.getAttribute('data-points') === '24');
    expect(await page.locator('circle.point.sentiment').count()).toBe(0);
    expect(await text('#axis-sentiment')).toBe('no sentiment in this range');
    expect(await text('#range-caption')).toBe(
      'Hourly averages, 1 Dec 2026 08:00 UTC – 2 Dec 2026 07:00 UTC (12 minutes ago). No sentiment sample in this range; the latest is from 29 Nov 2026 00:00 UTC (3 days ago).',
    );
  });

  it('one metric without data: shows the other and says which is missing', async () => {
    const hours = hoursFrom('2026-12-02T04:00:00Z', 4);
    await serveCanned(page, {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 91000 - 100 * i, sentiment: null, time: iso(t) })),
        price_direction: 'falling',
        sentiment_direction: null,
        verdict: 'unknown',
        verdict_since: null,
        as_of: iso(NOW - 30_000),
        metrics: {
          price: { source: 'coinbase', unit: 'USD', latest_sample_time: iso(NOW - 60_000), stale: false },
          sentiment: { source: 'senticrypt-v2', unit: 'score -1..1', latest_sample_time: null, stale: false },
        },
      },
      listing: [{ metric: 'price', last: NOW - 60_000, labels: { source: 'coinbase' } }],
      points: hoursFrom('2026-12-01T08:00:00Z', 24).map((t, i) => ({ time: iso(t), price: 91000 + 10 * i, sentiment: null })),
    });
    await openAtNow();

    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe('unknown');
    expect(await text('#verdict')).toBe('Can’t tell: no sentiment data');
    expect(await text('#missing-banner')).toBe('No sentiment data in the summary: showing price only.');
    expect(await text('#price-value')).toBe('$90,700.00');
    expect(await page.getAttribute('#price-direction', 'data-direction')).toBe('falling');
    expect(await text('#price-age')).toBe('1 minute ago');
    expect(await text('#sentiment-value')).toBe('no data');
    expect(await page.getAttribute('#sentiment-direction', 'data-direction')).toBe('');
    expect(await text('#sentiment-direction')).toBe('–');
    expect(await text('#sentiment-source')).toBe('senticrypt-v2');
    expect(await text('#sentiment-latest')).toBe('no sample');
    expect(await text('#sentiment-age')).toBe('unknown');
    expect(await page.isVisible('#sentiment-stale')).toBe(false);
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe('24');
    expect(await page.locator('circle.point.price').count()).toBe(24);
    expect(await page.locator('circle.point.sentiment').count()).toBe(0);
    expect(await text('#axis-sentiment')).toBe('no sentiment in this range');
    expect(await text('#range-caption')).toBe('Hourly averages, 1 Dec 2026 08:00 UTC – 2 Dec 2026 07:00 UTC (12 minutes ago). No sentiment sample in this range.');
    expect(await text('#axis-price')).toBe('price (USD)');
    await shot('dashboard-no-sentiment');
  });

  /** A healthy canned answer at NOW: price falling, sentiment rising (mixed), sentiment stale. */
  const healthy = (): Canned => {
    const hours = hoursFrom('2026-12-02T04:00:00Z', 4);
    return {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 91000 - 100 * i, sentiment: 0.1 + 0.01 * i, time: iso(t) })),
        price_direction: 'falling',
        sentiment_direction: 'rising',
        verdict: 'mixed',
        verdict_since: iso(NOW - 3 * HOUR),
        as_of: iso(NOW - 30_000),
        metrics: {
          price: { source: 'coinbase', unit: 'USD', latest_sample_time: iso(NOW - 60_000), stale: false },
          sentiment: { source: 'senticrypt-v2', unit: 'score -1..1', latest_sample_time: iso(NOW - 72 * HOUR), stale: true },
        },
      },
      listing: [{ metric: 'price', last: NOW - 60_000, labels: { source: 'coinbase' } }],
      points: hoursFrom('2026-12-01T08:00:00Z', 24).map((t, i) => ({ time: iso(t), price: 91000 + 10 * i, sentiment: 0.1 })),
    };
  };

  it('when the service stops answering: clears what it showed and says so, keeps the chart message on resize, catches up once it answers', async () => {
    expectedErrors = /Failed to load resource: net::ERR_CONNECTION_REFUSED/;
    await serveCanned(page, healthy());
    let down = false;
    const api = ['/is-bitcoin-lit', '/series', '/series/combined', '/verdict'];
    await page.route((u) => down && api.includes(u.pathname), (r) => r.abort('connectionrefused'));
    await openAtNow();
    expect([await text('#verdict'), await text('#price-value'), await page.isVisible('#stale-banner')]).toEqual(['Mixed signals (stale data)', '$90,700.00', true]);
    // Screen readers hear the verdict when it changes, not the chart each time it is redrawn.
    expect([await page.getAttribute('#verdict', 'aria-live'), await page.getAttribute('#chart', 'aria-live')]).toEqual(['polite', null]);
    // The answer is in the tab's title too, and the two lines differ by more than colour (dashed sentiment, as in the legend).
    expect(await page.title()).toBe('Mixed (stale) · Is Bitcoin lit?');
    expect([await page.getAttribute('polyline.line.price', 'stroke-dasharray'), await page.getAttribute('polyline.line.sentiment', 'stroke-dasharray')]).toEqual([null, '6 4']);
    expect(await page.locator('.legend i.dashed').count()).toBe(1);

    down = true;
    await page.evaluate(() => (window as unknown as { refreshAll: () => Promise<void> }).refreshAll());
    // Nothing of the last answer is left beside the message.
    expect(await text('#verdict')).toBe('Can’t tell right now');
    expect(await page.title()).toBe('Is Bitcoin lit?');
    expect(await text('#verdict-basis')).toBe('The service does not answer; trying again.');
    expect(await page.getAttribute('#verdict', 'data-stale')).toBe('false');
    expect([await text('#price-value'), await text('#sentiment-value'), await text('#price-direction')]).toEqual(['–', '–', '–']);
    expect([await page.isVisible('#stale-banner'), await page.isVisible('#verdict-since'), await page.isVisible('#sentiment-stale')]).toEqual([false, false, false]);
    expect(await text('#status')).toMatch(/^the service does not answer; trying again every 60 s · checked /);
    expect(await text('#chart')).toBe('Could not load the chart: the service does not answer');
    // A resize (a phone turned) keeps the message: it redrew the last chart over it.
    await page.setViewportSize({ width: 900, height: 800 });
    await page.clock.runFor(500);
    expect(await text('#chart')).toBe('Could not load the chart: the service does not answer');

    down = false;
    await page.evaluate(() => (window as unknown as { refreshAll: () => Promise<void> }).refreshAll());
    expect([await text('#verdict'), await text('#price-value')]).toEqual(['Mixed signals (stale data)', '$90,700.00']);
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe('24');
    expect(await text('#status')).not.toMatch(/does not answer/);
  });

  it('an answer with malformed fields shows what it can: no NaN, no "undefined", no script error', async () => {
    const canned = healthy();
    const summary = canned.summary as Record<string, unknown> & { hourly_average_of_averages: unknown[]; metrics: Record<string, Record<string, unknown>> };
    summary.verdict_since = 'garbage';
    summary.metrics.sentiment.latest_sample_time = 'soon';
    summary.hourly_average_of_averages = [null, { price: 1 }, ...summary.hourly_average_of_averages];
    summary.metrics.price.venues = [null, { source: 'kraken', hours_used: 4, left_out: null, outlier_hours: 0 }];
    canned.points = [{ time: null as unknown as string, price: 1, sentiment: null }, ...canned.points];
    canned.verdict = { verdict: 'mixed', since: null, evaluated_as_of: null, changes: [{ id: 'x', time: 'soon', previous: 'lit', verdict: 'mixed' }] };
    await serveCanned(page, canned);
    await openAtNow();
    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe('mixed');
    expect(await text('#sentiment-latest')).toBe('an unknown time');
    expect(await page.getAttribute('svg[data-points]', 'data-points')).toBe('24');
    expect(await page.textContent('main')).not.toMatch(/NaN|undefined|Invalid/);
  });

  it('a summary from before `metrics` (no as_of, no metrics): unknown source, age from the series listing, stale by the page’s own 36 h rule', async () => {
    const hours = hoursFrom('2026-11-30T04:00:00Z', 3);
    const last = Date.parse('2026-11-30T06:40:00Z');
    await serveCanned(page, {
      summary: {
        hourly_average_of_averages: hours.map((t, i) => ({ price: 90000 - 100 * i, sentiment: 0.2 - 0.01 * i, time: iso(t) })),
        price_direction: 'falling',
        sentiment_direction: 'falling',
      },
      listing: METRICS.map((metric) => ({ metric, last, labels: { metric } })),
      points: hoursFrom('2026-11-29T07:00:00Z', 24).map((t, i) => ({ time: iso(t), price: 90000 + i, sentiment: 0.2 })),
    });
    await openAtNow();

    expect(await page.getAttribute('#verdict', 'data-verdict')).toBe('cold');
    expect(await text('#verdict')).toBe('It was cold (stale data)');
    expect(await text('#verdict-basis')).toBe('From 30 Nov 2026 04:00 UTC to 30 Nov 2026 06:40 UTC (2 days ago): price ▼ falling, sentiment ▼ falling.');
    for (const metric of METRICS) {
      expect(await text(`#${metric}-source`)).toBe('unknown source');
      expect(await text(`#${metric}-latest`)).toBe('30 Nov 2026 06:40 UTC');
      expect(await text(`#${metric}-age`)).toBe('2 days ago');
      expect(await page.isVisible(`#${metric}-stale`)).toBe(true);
    }
    expect(await text('#price-unit')).toBe('USD');
    expect(await text('#sentiment-unit')).toBe('score');
    expect(await text('#sentiment-value')).toBe('0.180');
  });

  it('keeps Swagger at /docs and serves the page as HTML', async () => {
    const res = await fetch(`${server}/`);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toContain('<title>Is Bitcoin lit?</title>');
    expect((await fetch(`${server}/docs`)).status).toBe(200);
    // Swagger UI renders under the page CSP (its scripts and styles are allowed, nothing is blocked).
    await page.goto(`${base}/docs`);
    await page.waitForSelector('.opblock', { timeout: 15_000 });
    expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(8);
    const doc = (await (await fetch(`${server}/docs-json`)).json()) as { paths: Record<string, unknown> };
    expect(doc.paths['/']).toBeUndefined();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/series', '/series/combined', '/series/{metric}']));
  });
});
