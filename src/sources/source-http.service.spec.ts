import { HttpService } from '@nestjs/axios';
import { Logger } from '@nestjs/common';
import axios from 'axios';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';
import { PayloadError, PermanentUpstreamError, TransientUpstreamError } from './source.errors.js';
import { retryAfterMs, SourceHttpClient, SourceHttpOptions } from './source-http.service.js';

const SECRET = 'INTERNAL-PAGE-do-not-leak-0123456789';

interface Loopback {
  url: string;
  calls: IncomingMessage[];
  close(): Promise<void>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse, call: number) => void): Promise<Loopback> {
  const calls: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    calls.push(req);
    handler(req, res, calls.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const json = (res: ServerResponse, body: unknown, status = 200) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

function client(overrides: Partial<SourceHttpOptions> = {}): SourceHttpClient {
  return new SourceHttpClient(new HttpService(axios.create()), {
    timeoutMs: 2000,
    retries: 2,
    retryBaseMs: 1,
    retryAfterMaxMs: 5000,
    userAgent: 'is-bitcoin-lit/test (+https://example.test/contact)',
    maxRedirects: 3,
    ...overrides,
  });
}

const MAX = { maxBytes: 64 * 1024 };

describe('SourceHttpClient', () => {
  const servers: Loopback[] = [];
  const start = async (handler: Parameters<typeof serve>[0]) => {
    const s = await serve(handler);
    servers.push(s);
    return s;
  };

  beforeAll(() => Logger.overrideLogger(false));
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('sends a descriptive User-Agent and Accept, and decodes the JSON', async () => {
    const up = await start((_req, res) => json(res, { price: '63212.97' }));
    const got = await client().getJson(`${up.url}/ticker?x=1`, MAX);
    expect(got).toEqual({ data: { price: '63212.97' }, attempts: 1 });
    expect(up.calls[0].headers['user-agent']).toBe('is-bitcoin-lit/test (+https://example.test/contact)');
    expect(up.calls[0].headers.accept).toBe('application/json');
    expect(up.calls[0].url).toBe('/ticker?x=1');
  });

  it('follows a same-origin redirect', async () => {
    const up = await start((req, res) => {
      if (req.url === '/old') res.writeHead(302, { location: '/new?y=2' }).end();
      else json(res, [1, 2]);
    });
    await expect(client().getJson(`${up.url}/old`, MAX)).resolves.toEqual({ data: [1, 2], attempts: 1 });
    expect(up.calls.map((c) => c.url)).toEqual(['/old', '/new?y=2']);
  });

  it('refuses a redirect to another origin, fails at once, and never quotes the page', async () => {
    const internal = await start((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<html>${SECRET}</html>`));
    const up = await start((_req, res) => res.writeHead(302, { location: `${internal.url}/internal/admin` }).end(SECRET));
    const err = await client().getJson(`${up.url}/v1/bitcoin.json`, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentUpstreamError);
    expect((err as Error).message).toMatch(/redirected to another origin/);
    expect((err as Error).message).not.toContain(SECRET);
    expect(internal.calls).toHaveLength(0);
    expect(up.calls).toHaveLength(1); // permanent: not retried
  });

  it('treats another port or scheme on the same host as another origin', async () => {
    const up = await start((_req, res) => res.writeHead(301, { location: 'https://127.0.0.1/x' }).end());
    await expect(client().getJson(`${up.url}/x`, MAX)).rejects.toThrow(/another origin \(https:\/\/127\.0\.0\.1\)/);
  });

  it('names another origin only when it is an http(s) one: another scheme\'s "host" is the upstream\'s free text', async () => {
    const note = `ATTENTION_OPERATOR_set_COINBASE_API_URL_to_evil${'A'.repeat(5000)}`;
    const up = await start((_req, res) => res.writeHead(302, { location: `zz://${note}/` }).end());
    const err = await client().getJson(`${up.url}/x`, MAX).catch((e: unknown) => e);
    expect((err as Error).message).toBe('upstream redirected to another origin; not followed (attempt 1 of 3)');
  });

  it('gives up after a bounded number of same-origin redirects', async () => {
    const up = await start((_req, res) => res.writeHead(307, { location: '/loop' }).end());
    await expect(client({ maxRedirects: 2 }).getJson(`${up.url}/loop`, MAX)).rejects.toThrow(PermanentUpstreamError);
    expect(up.calls).toHaveLength(3);
  });

  it('reports a non-JSON body without quoting it, and does not retry it', async () => {
    const up = await start((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<html>${SECRET}</html>`));
    const err = await client().getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as Error).message).toMatch(/^upstream payload is not JSON/);
    expect((err as Error).message).not.toContain(SECRET);
    expect(up.calls).toHaveLength(1);
  });

  it('retries 5xx up to UPSTREAM_RETRIES, then fails as transient without quoting the body', async () => {
    const up = await start((_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end(SECRET));
    const err = await client({ retries: 2 }).getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as Error).message).toBe('upstream answered HTTP 503 (attempt 3 of 3)');
    expect((err as TransientUpstreamError).attempts).toBe(3);
    expect(up.calls).toHaveLength(3);
  });

  it('recovers when a retry succeeds, counting the attempts', async () => {
    const up = await start((_req, res, call) => (call < 3 ? res.writeHead(502).end() : json(res, { ok: true })));
    await expect(client().getJson(up.url, MAX)).resolves.toEqual({ data: { ok: true }, attempts: 3 });
  });

  it.each([400, 403, 404, 451, 501, 505])('does not retry HTTP %i', async (status) => {
    const up = await start((_req, res) => res.writeHead(status).end(SECRET));
    const err = await client().getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentUpstreamError);
    expect((err as Error).message).toBe(`upstream answered HTTP ${status} (attempt 1 of 3)`);
    expect(up.calls).toHaveLength(1);
  });

  it('does not retry a certificate it refuses (a self-signed one here): the same certificate comes back every time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ibl-tls-'));
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    let connections = 0;
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => json(res, {}));
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const err = await client().getJson(`https://127.0.0.1:${(server.address() as AddressInfo).port}/`, MAX).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentUpstreamError);
      expect((err as Error).message).toBe('upstream certificate refused (DEPTH_ZERO_SELF_SIGNED_CERT) (attempt 1 of 3)');
      expect(connections).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('waits a 429\'s Retry-After when it is longer than the backoff', async () => {
    const up = await start((_req, res, call) => (call === 1 ? res.writeHead(429, { 'retry-after': '1' }).end() : json(res, [])));
    const started = Date.now();
    await expect(client({ retryBaseMs: 1 }).getJson(up.url, MAX)).resolves.toEqual({ data: [], attempts: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(990);
  });

  it('never retries sooner than the backoff, whatever Retry-After says (0, or a date gone by)', async () => {
    const past = new Date(Date.now() - 5000).toUTCString();
    for (const [status, retryAfter] of [
      [429, '0'],
      [503, past],
    ] as const) {
      const up = await start((_req, res, call) => (call === 1 ? res.writeHead(status, { 'retry-after': retryAfter }).end() : json(res, [])));
      const started = Date.now();
      // The first backoff is 50-100 % of retryBaseMs.
      await expect(client({ retryBaseMs: 600 }).getJson(up.url, MAX)).resolves.toEqual({ data: [], attempts: 2 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(295);
    }
  });

  it('reads Retry-After only on a 429 or 503 (on a 500 it is not the upstream asking to pause)', async () => {
    const up = await start((_req, res) => res.writeHead(500, { 'retry-after': '86400' }).end());
    const err = await client({ retries: 0 }).getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as TransientUpstreamError).retryAfterMs).toBeUndefined();
  });

  it('fails at once when Retry-After is longer than UPSTREAM_RETRY_AFTER_MAX_MS', async () => {
    const up = await start((_req, res) => res.writeHead(429, { 'retry-after': '120' }).end());
    const err = await client({ retryAfterMaxMs: 10_000 }).getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as Error).message).toMatch(/^upstream answered HTTP 429; not retried: Retry-After 120 s .* \(attempt 1 of 3\)$/);
    // The delay reaches the ingest service, which keeps every instance off the upstream until then.
    expect((err as TransientUpstreamError).retryAfterMs).toBe(120_000);
    expect(up.calls).toHaveLength(1);
  });

  it('refuses a body over the size cap, without retrying', async () => {
    const up = await start((_req, res) => json(res, 'x'.repeat(5000)));
    const err = await client().getJson(up.url, { maxBytes: 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentUpstreamError);
    expect((err as Error).message).toBe('upstream payload is too large (over 1024 bytes) (attempt 1 of 3)');
    expect(up.calls).toHaveLength(1);
  });

  it('counts the size cap after decompression (a small gzip that inflates past the cap is refused)', async () => {
    const bomb = gzipSync(Buffer.from(JSON.stringify('x'.repeat(1024 * 1024))));
    expect(bomb.length).toBeLessThan(8 * 1024);
    const up = await start((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(bomb));
    await expect(client().getJson(up.url, { maxBytes: 64 * 1024 })).rejects.toThrow('upstream payload is too large');
  });

  it('fails a corrupt gzip body at once as a payload error (the same bytes would fail again), never quoting it', async () => {
    const good = gzipSync(Buffer.from(JSON.stringify({ price: '1' })));
    const corrupt = Buffer.concat([good.subarray(0, 10), Buffer.from(SECRET)]);
    const up = await start((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(corrupt));
    const err = await client().getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as Error).message).toBe('upstream payload could not be decompressed (Z_DATA_ERROR) (attempt 1 of 3)');
    expect(up.calls).toHaveLength(1);
  });

  it('judges an error answer by its status, never by its body: a 429 with a page over the cap, or a 503 that does not decompress, is retried', async () => {
    const up = await start((_req, res, call) => {
      if (call === 1) res.writeHead(429, { 'retry-after': '0', 'content-type': 'text/html' }).end(`<html>${SECRET}${'x'.repeat(20_000)}</html>`);
      else if (call === 2) res.writeHead(503, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }).end(SECRET);
      else json(res, { price: '1' });
    });
    await expect(client().getJson(up.url, { maxBytes: 1024 })).resolves.toEqual({ data: { price: '1' }, attempts: 3 });
    // An endless error body is not read either: the status comes back at once.
    const endless = await start((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      const chunk = 'x'.repeat(64 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const err = await client({ retries: 0 }).getJson(endless.url, { maxBytes: 1024 }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('upstream answered HTTP 503 (attempt 1 of 1)');
  });

  describe('on shutdown (onModuleDestroy)', () => {
    const SHUTDOWN = 'upstream call aborted: the service is shutting down';
    /** Settles `promise`, measuring how long after `t0` it did. */
    const settled = async (promise: Promise<unknown>, t0: number) => {
      const err = await promise.catch((e: unknown) => e);
      return { err: err as TransientUpstreamError, ms: Date.now() - t0 };
    };

    it('aborts a call in flight to an upstream that never answers, and retries nothing', async () => {
      const up = await start(() => undefined); // accepts, never answers
      const http = client({ timeoutMs: 60_000 });
      const pending = http.getJson(up.url, MAX);
      while (up.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
      const t0 = Date.now();
      http.onModuleDestroy();
      const { err, ms } = await settled(pending, t0);
      expect(err).toBeInstanceOf(TransientUpstreamError);
      expect(err.message).toBe(`${SHUTDOWN} (attempt 1 of 3)`);
      expect(err.attempts).toBe(1);
      expect(ms).toBeLessThan(10_000); // at once, not after the 60 s timeout (room for a loaded machine)
      expect(up.calls).toHaveLength(1);
    });

    it('ends a backoff or Retry-After wait, and a wait for the pacing lane, without calling again', async () => {
      const up = await start((_req, res) => res.writeHead(503, { 'retry-after': '60' }).end());
      const http = client({ retryAfterMaxMs: 120_000 });
      const retrying = http.getJson(up.url, MAX);
      const paced = http.getJson(up.url, { ...MAX, pacing: { lane: 'kraken', minIntervalMs: 60_000 } });
      const waiting = http.getJson(up.url, { ...MAX, pacing: { lane: 'kraken', minIntervalMs: 60_000 } });
      while (up.calls.length < 2) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50)); // both in their 60 s waits
      const t0 = Date.now();
      http.onModuleDestroy();
      for (const p of [retrying, paced, waiting]) {
        const { err, ms } = await settled(p, t0);
        expect(err.message).toMatch(new RegExp(`^${SHUTDOWN} \\(attempt 1 of 3\\)$`));
        expect(ms).toBeLessThan(10_000); // at once, not after the 60 s waits
      }
      expect(up.calls).toHaveLength(2);
      // Later calls are not made at all.
      await expect(http.getJson(up.url, MAX)).rejects.toThrow(SHUTDOWN);
      expect(up.calls).toHaveLength(2);
    });
  });

  describe('pacing (a minimum interval between calls per provider)', () => {
    /** Arrival times at the server per lane (the `lane` query parameter). */
    const arrivals = () => {
      const at: Record<string, number[]> = {};
      return {
        at,
        handler: (req: IncomingMessage, res: ServerResponse) => {
          const lane = new URL(req.url ?? '/', 'http://x').searchParams.get('lane') ?? '';
          (at[lane] ??= []).push(Date.now());
          json(res, { ok: true });
        },
      };
    };
    const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);

    it('spaces the calls of one provider, even fired at once, while another provider is not held up by it', async () => {
      const { at, handler } = arrivals();
      const up = await start(handler);
      const http = client();
      const call = (lane: string, minIntervalMs: number) => http.getJson(`${up.url}/?lane=${lane}`, { ...MAX, pacing: { lane, minIntervalMs } });
      // Kraken's spacing is far longer than Coinbase's three: a loaded machine's round trips fit between.
      await Promise.all([...Array.from({ length: 2 }, () => call('kraken', 1500)), ...Array.from({ length: 4 }, () => call('coinbase', 30))]);
      expect(at.kraken).toHaveLength(2);
      expect(at.kraken[1] - at.kraken[0]).toBeGreaterThanOrEqual(1500);
      for (const gap of gaps(at.coinbase)) expect(gap).toBeGreaterThanOrEqual(30);
      // Coinbase's 4 calls (3 gaps of 30 ms) are all in before Kraken's second one (1500 ms after its first).
      expect(at.coinbase[3]).toBeLessThan(at.kraken[1]);
    });

    it('counts a retry as a call, and UPSTREAM_MIN_INTERVAL_MS replaces every provider spacing', async () => {
      const times: number[] = [];
      const up = await start((_req, res, n) => {
        times.push(Date.now());
        if (n === 1) json(res, { error: 'busy' }, 503);
        else json(res, { ok: true });
      });
      const http = client({ minIntervalMs: 80 });
      await http.getJson(up.url, { ...MAX, pacing: { lane: 'kraken', minIntervalMs: 10_000 } });
      await http.getJson(up.url, { ...MAX, pacing: { lane: 'kraken', minIntervalMs: 10_000 } });
      expect(times).toHaveLength(3);
      for (const gap of gaps(times)) expect(gap).toBeGreaterThanOrEqual(80);
    });
  });

  it('times out a call that never answers, and retries it', async () => {
    const up = await start(() => undefined); // never answers
    const err = await client({ timeoutMs: 150, retries: 1 }).getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as Error).message).toBe('upstream timed out (attempt 2 of 2)');
    expect(up.calls).toHaveLength(2);
  });

  it('times out a body that trickles forever', async () => {
    const up = await start((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      const t = setInterval(() => res.write('1,'), 20);
      res.on('close', () => clearInterval(t));
    });
    await expect(client({ timeoutMs: 200, retries: 0 }).getJson(up.url, MAX)).rejects.toThrow('upstream timed out (attempt 1 of 1)');
  });

  // On Node 20, AbortSignal.any([AbortSignal.timeout(…), …]) lost its timeout to a garbage
  // collection (nodejs/node#57736): the body then trickled in for as long as the upstream liked.
  it('times out a body that trickles forever, a garbage collection or not', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const up = await start((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      const t = setInterval(() => res.write('1,'), 20);
      res.on('close', () => clearInterval(t));
    });
    const call = client({ timeoutMs: 400, retries: 0 }).getJson(up.url, MAX);
    const collect = setInterval(gc, 50);
    let guard: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([call.catch((err: unknown) => err), new Promise((resolve) => (guard = setTimeout(resolve, 5000, 'still reading after 5 s')))]);
    clearTimeout(guard);
    clearInterval(collect);
    expect(outcome).toBeInstanceOf(TransientUpstreamError);
    expect((outcome as Error).message).toBe('upstream timed out (attempt 1 of 1)');
  });

  it('reports a body cut short by a closed connection as such, not as a timeout, and retries it', async () => {
    const up = await start((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('[1,2,');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const err = await client({ retries: 1 }).getJson(up.url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as Error).message).toBe('upstream closed the connection before the whole answer arrived (attempt 2 of 2)');
    expect(up.calls).toHaveLength(2);
  });

  it('reports an unreachable upstream by error code only', async () => {
    const up = await start(() => undefined);
    const url = up.url;
    await up.close();
    servers.length = 0;
    const err = await client({ retries: 0 }).getJson(url, MAX).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect((err as Error).message).toBe('upstream unreachable (ECONNREFUSED) (attempt 1 of 1)');
  });

  describe('file:// replays', () => {
    const dir = mkdtempSync(join(tmpdir(), 'source-http-'));
    const file = join(dir, 'payload.json');
    writeFileSync(file, JSON.stringify([{ a: 1 }]));

    it('reads a local file when the source allows it', async () => {
      await expect(client().getJson(pathToFileURL(file).href, { ...MAX, allowFile: true })).resolves.toEqual({ data: [{ a: 1 }], attempts: 1 });
    });

    it('refuses file:// for a source that does not allow it', async () => {
      await expect(client().getJson(pathToFileURL(file).href, MAX)).rejects.toThrow(PermanentUpstreamError);
    });

    it('refuses a missing or oversized file as permanent', async () => {
      await expect(client().getJson(pathToFileURL(join(dir, 'none.json')).href, { ...MAX, allowFile: true })).rejects.toThrow(
        /cannot read .*ENOENT/,
      );
      await expect(client().getJson(pathToFileURL(file).href, { maxBytes: 4, allowFile: true })).rejects.toThrow(/too large/);
    });
  });
});

describe('retryAfterMs', () => {
  const now = Date.UTC(2026, 5, 19, 16, 0, 0);
  it.each([
    ['3', 3000],
    [' 0 ', 0],
    ['Fri, 19 Jun 2026 16:00:07 GMT', 7000],
    ['Fri, 19 Jun 2026 15:59:00 GMT', 0],
    ['99999999999', 999_999_999_000], // past nine digits: as long as can be, not unreadable
    ['0000000005', 5000], // leading zeros are still seconds
    ['1.5', undefined], // delay-seconds are whole
    ['soon', undefined],
    ['-1', undefined],
    [undefined, undefined],
  ])('%j → %j ms', (value, expected) => {
    expect(retryAfterMs(value, now)).toBe(expected);
  });
});
