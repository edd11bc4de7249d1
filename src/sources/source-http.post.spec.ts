import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { PermanentUpstreamError, TransientUpstreamError } from './source.errors.js';
import { SourceHttpClient } from './source-http.service.js';

const SECRET = 'RECEIVER-PAGE-do-not-leak-0123456789';

interface Received {
  method?: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A loopback receiver answering with `handler`; records what it got. */
async function serve(handler: (res: ServerResponse, call: number) => void) {
  const calls: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls.push({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      handler(res, calls.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    calls,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const client = () =>
  new SourceHttpClient(new HttpService(axios.create()), {
    timeoutMs: 2000,
    retries: 2,
    retryBaseMs: 1,
    retryAfterMaxMs: 5000,
    userAgent: 'is-bitcoin-lit/test',
    maxRedirects: 3,
  });

const OPTS = { headers: { 'Content-Type': 'application/json', 'X-Test': 'yes' } };

describe('SourceHttpClient.post (outbound notifications)', () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  const start = async (handler: Parameters<typeof serve>[0]) => {
    const s = await serve(handler);
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('POSTs the body with the given headers and the User-Agent, once', async () => {
    const r = await start((res) => res.writeHead(204).end());
    await expect(client().post(r.url, '{"a":1}', OPTS)).resolves.toEqual({ status: 204 });
    expect(r.calls).toEqual([
      { method: 'POST', headers: expect.objectContaining({ 'content-type': 'application/json', 'x-test': 'yes', 'user-agent': 'is-bitcoin-lit/test' }), body: '{"a":1}' },
    ]);
  });

  it('classifies without retrying: 5xx, 429 (with Retry-After) transient; 4xx permanent; never quotes the answer', async () => {
    const cases: Array<[number, Record<string, string>, typeof TransientUpstreamError | typeof PermanentUpstreamError]> = [
      [500, {}, TransientUpstreamError],
      [503, {}, TransientUpstreamError],
      [429, { 'retry-after': '7' }, TransientUpstreamError],
      [408, {}, TransientUpstreamError],
      [400, {}, PermanentUpstreamError],
      [410, {}, PermanentUpstreamError],
    ];
    for (const [status, headers, type] of cases) {
      const r = await start((res) => res.writeHead(status, headers).end(SECRET));
      const err = (await client().post(r.url, 'x', OPTS).catch((e: unknown) => e)) as Error;
      expect([status, err]).toEqual([status, expect.any(type)]);
      expect(err.message).toBe(`receiver answered HTTP ${status}`);
      expect(r.calls).toHaveLength(1);
      if (status === 429) expect((err as TransientUpstreamError).retryAfterMs).toBe(7000);
    }
  });

  it('judges by the status alone: a large answer (1 MiB) neither fails a 2xx nor turns a 5xx into a refusal', async () => {
    const big = SECRET.repeat(Math.ceil((1024 * 1024) / SECRET.length));
    const ok = await start((res) => res.writeHead(200).end(big));
    await expect(client().post(ok.url, 'x', OPTS)).resolves.toEqual({ status: 200 });
    const failing = await start((res) => res.writeHead(500).end(big));
    const err = (await client().post(failing.url, 'x', OPTS).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect(err.message).toBe('receiver answered HTTP 500');
  });

  it('sends the body byte for byte, whatever it is (the signature covers those bytes)', async () => {
    const r = await start((res) => res.writeHead(204).end());
    for (const body of [' {"a": 1} \n', 'not json', '{"text":"é ✓ \\u00e9"}']) {
      await client().post(r.url, body, OPTS);
      expect(r.calls.at(-1)?.body).toBe(body);
    }
  });

  it('never follows a redirect, even to the same origin', async () => {
    const r = await start((res, n) => (n === 1 ? res.writeHead(307, { location: '/elsewhere' }).end(SECRET) : res.writeHead(200).end()));
    const err = (await client().post(r.url, 'x', OPTS).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(PermanentUpstreamError);
    expect(err.message).toBe('receiver answered HTTP 307 (a redirect); not followed');
    expect(r.calls).toHaveLength(1);
  });

  it('times out (transient) on a receiver that never answers, and can be aborted', async () => {
    const r = await start(() => undefined);
    const timedOut = (await client().post(r.url, 'x', { ...OPTS, timeoutMs: 100 }).catch((e: unknown) => e)) as Error;
    expect(timedOut).toBeInstanceOf(TransientUpstreamError);
    expect(timedOut.message).toBe('receiver timed out');
    const stop = new AbortController();
    const aborted = client().post(r.url, 'x', { ...OPTS, timeoutMs: 60_000, signal: stop.signal }).catch((e: unknown) => e);
    stop.abort();
    expect(await aborted).toBeInstanceOf(TransientUpstreamError);
  });

  it('a network error is transient and names the code only', async () => {
    const r = await start((res) => res.end());
    await r.close();
    servers.pop();
    const err = (await client().post(r.url, 'x', OPTS).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(TransientUpstreamError);
    expect(err.message).toBe('receiver unreachable (ECONNREFUSED)');
  });
});
