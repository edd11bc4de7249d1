import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PayloadError } from '../source.errors.js';
import { SourceHttpClient } from '../source-http.service.js';
import { parseSenticryptV1, SENTICRYPT_V1_MAX_RECORDS, SenticryptV1Provider } from './senticrypt-v1.provider.js';

const FIXTURE = new URL('../../../test/fixtures/senticrypt-v1-2021-07-07.json', import.meta.url);

const http = new SourceHttpClient(new HttpService(axios.create()), {
  // No test here is about the timeout: MiBs over loopback took over 2 s once, with CI's three suites at once.
  timeoutMs: 15_000,
  retries: 0,
  retryBaseMs: 1,
  retryAfterMaxMs: 1000,
  userAgent: 'test',
  maxRedirects: 0,
});

const good = { count: 7259, timestamp: 1625592626.3452034, rate: 0, last: 0.33, sum: 1425.82, mean: 0.2, median: 0.23, btc_price: '33885.23' };

describe('senticrypt-v1 provider', () => {
  const provider = new SenticryptV1Provider(http, { url: FIXTURE.href, maxBytes: 4 * 1024 * 1024 });

  it('serves price (USD) and sentiment (-1..1) from one feed', () => {
    expect(provider.id).toBe('senticrypt-v1');
    expect(provider.metrics.map((m) => [m.metric, m.unit])).toEqual([
      ['price', 'USD'],
      ['sentiment', 'score -1..1'],
    ]);
    expect('backfill' in provider).toBe(false); // the feed is its own 24 h: poll({ since: null }) is the backfill
  });

  it('replays the recorded day from a file:// URL: every snapshot, ms timestamps, oldest first', async () => {
    const batch = await provider.poll({ since: null });
    expect(batch).toMatchObject({ fetched: 2474, skipped: 0, invalid: 0, invalidReasons: [], attempts: 1 });
    const { price = [], sentiment = [] } = batch.samples;
    expect(price).toHaveLength(2474);
    expect(sentiment).toHaveLength(2474);
    expect(price[0]).toEqual({ timestamp: 1625592626345, value: 33885.23 });
    expect(sentiment[0]).toEqual({ timestamp: 1625592626345, value: 0.2 });
    expect(price[2473]).toEqual({ timestamp: 1625679018370, value: 34504 });
    expect(sentiment[2473]).toEqual({ timestamp: 1625679018370, value: 0.3 });
  });

  it('counts records not newer than `since` as skipped and sends only the newer ones', async () => {
    const batch = await provider.poll({ since: 1625678988175 }); // the second-newest snapshot
    expect(batch).toMatchObject({ fetched: 2474, skipped: 2473, invalid: 0 });
    expect(batch.samples.price).toEqual([{ timestamp: 1625679018370, value: 34504 }]);
    expect(batch.samples.sentiment).toEqual([{ timestamp: 1625679018370, value: 0.3 }]);
  });

  it('fails the run when the file is too large for SENTIMENT_API_MAX_BYTES', async () => {
    const small = new SenticryptV1Provider(http, { url: FIXTURE.href, maxBytes: 100_000 });
    await expect(small.poll({ since: null })).rejects.toMatchObject({ name: 'PermanentUpstreamError', source: 'senticrypt-v1' });
  });

  it('tags a failure with the source id', async () => {
    const missing = new SenticryptV1Provider(http, { url: `file://${fileURLToPath(FIXTURE)}.missing`, maxBytes: 1024 });
    await expect(missing.poll({ since: null })).rejects.toMatchObject({ source: 'senticrypt-v1', attempts: 1 });
  });
});

describe('senticrypt-v1 against hostile payloads over HTTP (issue #11.3)', () => {
  let server: Server;
  let body = '';
  let url = '';

  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/bitcoin.json`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const emptyArrays = (bytes: number) => `[${'[],'.repeat(Math.floor(bytes / 3))}[]]`;

  it('refuses [[],[],…] over the 4 MiB default cap without decoding it', async () => {
    body = emptyArrays(5 * 1024 * 1024);
    const p = new SenticryptV1Provider(http, { url, maxBytes: 4 * 1024 * 1024 });
    await expect(p.poll({ since: null })).rejects.toThrow('upstream payload is too large (over 4194304 bytes) (attempt 1 of 1)');
  });

  it('fails [[],[],…] under the cap as a payload error without decoding it (too many arrays), not a success', async () => {
    body = emptyArrays(1024 * 1024); // 349,526 records
    const p = new SenticryptV1Provider(http, { url, maxBytes: 4 * 1024 * 1024 });
    const err = await p.poll({ since: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as Error).message).toBe('upstream payload is not parsed: more than 65536 objects and arrays (attempt 1 of 1)');
  });

  it('fails a decodable payload with more records than the feed ever sends, as a payload error', async () => {
    body = `[${'0,'.repeat(30_000)}0]`;
    const p = new SenticryptV1Provider(http, { url, maxBytes: 4 * 1024 * 1024 });
    const err = await p.poll({ since: null }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as Error).message).toBe('upstream payload has 30001 records, more than the 25000 this source ever sends');
  });
});

describe('parseSenticryptV1', () => {
  it('refuses a mean outside -1..1 and an implausible price, as the other sources do', async () => {
    const batch = await parseSenticryptV1(
      [good, { ...good, timestamp: 1625592656.42, mean: -1e6 }, { ...good, timestamp: 1625592686.42, btc_price: '1.7e308' }, { ...good, timestamp: 1625592716.42 }],
      null,
      1,
    );
    expect(batch).toMatchObject({ invalid: 2, invalidReasons: ['#1: mean is outside -1..1', '#2: btc_price is not a plausible price (1000000000 or more)'] });
    expect(batch.samples.sentiment).toEqual([
      { timestamp: 1625592626345, value: 0.2 },
      { timestamp: 1625592716420, value: 0.2 },
    ]);
  });

  it('keeps good records and reports bad ones with their index and our own wording', async () => {
    const batch = await parseSenticryptV1([good, { ...good, mean: 'x' }, { ...good, timestamp: 1625592656.42 }, 'junk'], null, 1);
    expect(batch).toMatchObject({
      fetched: 4,
      invalid: 2,
      invalidReasons: ['#1: mean has the wrong type (string)', '#3: record is not an object'],
    });
    expect(batch.samples.price).toEqual([
      { timestamp: 1625592626345, value: 33885.23 },
      { timestamp: 1625592656420, value: 33885.23 },
    ]);
  });

  it('does not validate again what is already stored', async () => {
    const batch = await parseSenticryptV1([{ ...good, btc_price: 'x' }, { ...good, timestamp: 1625592656.42 }], 1625592626345, 1);
    expect(batch).toMatchObject({ fetched: 2, skipped: 1, invalid: 0 });
  });

  it('rejects a hostile 50,000-digit price by its length (issue #11.2), keeping the good records', async () => {
    const hostile = { ...good, btc_price: `${'1'.repeat(50_000)}x` };
    const records = [hostile, hostile, hostile, good, { ...good, timestamp: 1625592656.42 }, { ...good, timestamp: 1625592686.6 }];
    const batch = await parseSenticryptV1(records, null, 1);
    expect(batch.invalid).toBe(3);
    expect(batch.invalidReasons[0]).toBe('#0: btc_price is too long (50001 characters)');
    expect(batch.samples.price).toHaveLength(3);
  });

  it('fails a payload that is not an array', async () => {
    await expect(parseSenticryptV1({ error: 'x' }, null, 1)).rejects.toThrow(new PayloadError('upstream payload is not a JSON array (got object)'));
  });

  it('fails a payload with more records than the feed ever sends (issue #11.3), before validating any', async () => {
    const flood = Array.from({ length: SENTICRYPT_V1_MAX_RECORDS + 1 }, () => []);
    await expect(parseSenticryptV1(flood, null, 1)).rejects.toThrow(/has 25001 records, more than the 25000/);
  });

  it('fails a payload that is mostly garbage instead of counting it a success', async () => {
    await expect(parseSenticryptV1([[], [], [], good], null, 1)).rejects.toThrow(
      /^upstream payload is mostly invalid: 3 of 4 records rejected \(#0: record is not an object; #1/,
    );
    await expect(parseSenticryptV1([[]], null, 1)).rejects.toThrow(PayloadError);
  });

  it('an empty payload or one of only stored records is not garbage', async () => {
    await expect(parseSenticryptV1([], null, 1)).resolves.toMatchObject({ fetched: 0, invalid: 0 });
    await expect(parseSenticryptV1([good, { ...good, mean: null, timestamp: 1625592656.42 }], 1625592626345, 1)).resolves.toMatchObject({
      skipped: 1,
      invalid: 1,
    });
  });

  it('replays a file of hostile records through file:// and fails the run (nothing usable)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'v1-'));
    const file = join(dir, 'hostile.json');
    writeFileSync(file, JSON.stringify([{ ...good, btc_price: `${'1'.repeat(50_000)}x` }]));
    const p = new SenticryptV1Provider(http, { url: `file://${file}`, maxBytes: 1024 * 1024 });
    await expect(p.poll({ since: null })).rejects.toThrow(/mostly invalid: 1 of 1 records rejected \(#0: btc_price is too long/);
  });
});
