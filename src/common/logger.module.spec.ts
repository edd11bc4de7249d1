import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { logDestination, loggedPath } from './logger.module.js';

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
