import { LogSampler } from './log-sampler.js';

describe('LogSampler', () => {
  it('lets one line through per interval and says how many it held back', () => {
    let now = 0;
    const sampler = new LogSampler(10_000, () => now);
    expect(sampler.take()).toBe('');
    now = 5000;
    expect(sampler.take()).toBeUndefined();
    expect(sampler.take()).toBeUndefined();
    now = 10_000;
    expect(sampler.take()).toBe(' (2 more like it not logged since the last)');
    now = 30_000;
    expect(sampler.take()).toBe('');
  });
});
