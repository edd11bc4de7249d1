import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { accessLogLevel, logDestination, loggedPath } from './logger.module.js';

describe('logDestination', () => {
  it('writes each line before the logging call returns, so an exit right after cannot drop or reorder it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'is-bitcoin-lit-log-'));
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    try {
      const log = pino(logDestination(fd));
      log.info('ingest ok');
      log.info('Redis connection closed');
      const messages = readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(messages).toEqual(['ingest ok', 'Redis connection closed']);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loggedPath', () => {
  it.each([
    ['/series/price?from=x&token=secret', '/series/price'],
    ['http://user:secret@host.example/series?token=x', '/series'],
    ['/', '/'],
    ['', ''],
    [undefined, ''],
  ])('logs %s as %s', (url, path) => {
    expect(loggedPath(url)).toBe(path);
  });

  it('cuts a long path at 512 characters', () => {
    expect(loggedPath(`/${'a'.repeat(20_000)}`)).toBe(`/${'a'.repeat(511)}…`);
  });
});

describe('accessLogLevel', () => {
  it.each([
    ['/series/price', 200, false, 'info'],
    ['/series/price', 400, false, 'info'],
    ['/series/price', 503, true, 'warn'],
    ['/series/price', 500, true, 'error'],
    ['/health/live', 200, false, 'debug'],
    ['/metrics', 200, false, 'debug'],
    // Not ready is a readiness probe's answer, every few seconds: not a warning each time.
    ['/health/ready', 503, true, 'debug'], // pino-http makes up an error for every 5xx
    // A probe or scrape that fails on a bug is still an error.
    ['/metrics', 500, true, 'error'],
    ['/health/ready', 500, false, 'error'],
  ])('%s %d (failed: %s) → %s', (url, status, failed, level) => {
    expect(accessLogLevel(url, status, failed)).toBe(level);
  });
});
