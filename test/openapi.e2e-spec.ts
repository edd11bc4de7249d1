import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Redis } from 'ioredis';
import { AUTH, bootApp } from './support/app.js';
import { FakeSources, liveData, PATHS } from './support/fake-sources.js';
import { ApiDocument } from './support/openapi.js';
import { deleteKeys, REDIS_URL, uniquePrefix } from './support/redis.js';
import { RedisServerProcess } from './support/redis-server.js';
import { waitFor } from './support/wait.js';

/**
 * Real answers, read against the app's own /docs-json: what a client generated from the
 * document gets must be what the document says, nulls, errors and Retry-After included.
 */
describe('the OpenAPI document tells the truth about real answers (e2e, real Redis)', () => {
  const prefix = uniquePrefix('openapi');
  let redis: Redis;
  let fake: FakeSources;

  beforeAll(async () => {
    redis = new Redis(REDIS_URL);
    fake = await new FakeSources(liveData(Date.now())).start();
  });
  afterAll(async () => {
    await fake?.stop();
    await deleteKeys(redis, prefix);
    await redis.quit();
  });

  /** Boots an app on `sources`, sends each request, and returns every answer's problems against the document. */
  type Request = [method: string, path: string, url?: string, headers?: Record<string, string>, payload?: string];

  /**
   * Boots an app on `sources` (and `env`), sends each request (`before` first, `after` before the
   * app closes), and returns every answer's problems against the document, and their statuses.
   */
  async function problemsOf(
    keyPrefix: string,
    sources: { price: string; sentiment: string },
    requests: Request[],
    options: { env?: Record<string, string>; before?: () => Promise<void>; after?: (app: NestFastifyApplication) => Promise<void> } = {},
  ): Promise<{ problems: string[]; statuses: number[] }> {
    const app: NestFastifyApplication = await bootApp({ REDIS_KEY_PREFIX: keyPrefix, ...fake.env(sources), THROTTLE_REFRESH_LIMIT: '1000', ...options.env });
    try {
      const doc = await ApiDocument.of(app);
      await options.before?.();
      const problems: string[] = [];
      const statuses: number[] = [];
      for (const [method, path, url = path, headers = {}, payload] of requests) {
        const res = await app.inject({ method: method as 'GET' | 'HEAD' | 'POST', url, headers, payload });
        // A HEAD is documented as its GET (Swagger lists no HEAD operations).
        problems.push(...doc.problems(method === 'HEAD' ? 'GET' : method, path, res));
        statuses.push(res.statusCode);
      }
      return { problems, statuses };
    } finally {
      await options.after?.(app);
      await app.close();
    }
  }

  it('every operation, before any data, after the first and a later refresh, on the default composite price', async () => {
    const reads: Request[] = [
      ['GET', '/is-bitcoin-lit'],
      ['GET', '/verdict'],
      ['GET', '/series'],
      ['GET', '/series/{metric}', '/series/price'],
      ['GET', '/series/{metric}', '/series/sentiment?bucket=1d&aggregation=max'],
      ['GET', '/series/combined'],
      ['GET', '/series/verdict'],
      ['GET', '/health/live'],
      ['GET', '/health/ready'],
    ];
    const { problems, statuses } = await problemsOf(`${prefix}:composite`, { price: 'coinbase,kraken', sentiment: 'fear-greed' }, [
      ...reads, // nothing stored yet: the verdict and its run are null, the summary a 503
      ['POST', '/refresh', '/refresh', AUTH], // backfills
      ['POST', '/refresh', '/refresh', AUTH], // no backfill: null
      ...reads, // every venue in, `left_out` null
      // Refused input.
      ['GET', '/series/{metric}', '/series/price?bucket=1w'],
      ['GET', '/series/{metric}', '/series/nope'],
      ['GET', '/series/{metric}', '/series/price?source=fear-greed'],
      ['GET', '/is-bitcoin-lit', '/is-bitcoin-lit?hours=3'],
      ['POST', '/refresh'],
      ['POST', '/refresh', '/refresh?full=yes', AUTH],
      ['POST', '/refresh', '/refresh', { ...AUTH, 'content-type': 'application/json' }, '{"full":true}'],
      ['POST', '/refresh', '/refresh', { ...AUTH, 'content-type': 'application/xml' }, '<full/>'],
      ['POST', '/refresh', '/refresh', { ...AUTH, 'content-type': 'application/json' }, `{"pad":"${'x'.repeat(70_000)}"}`],
      // The event stream's head (HEAD has GET's headers and no stream, which inject could not end).
      ['HEAD', '/events'],
    ]);
    expect(problems).toEqual([]);
    // What was answered: reads before any data, two refreshes, reads after, the refused requests.
    expect(statuses).toEqual([503, 200, 200, 200, 200, 200, 200, 200, 503, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 400, 400, 400, 400, 401, 400, 400, 415, 413, 200]);
  });

  it('documents the patterns and defaults of the history query as the server applies them', async () => {
    const app = await bootApp({ REDIS_KEY_PREFIX: `${prefix}:query`, ...fake.env({ price: 'coinbase', sentiment: 'fear-greed' }) });
    try {
      const doc = (await app.inject({ method: 'GET', url: '/docs-json' })).json();
      const params = Object.fromEntries((doc.paths['/series/{metric}'].get.parameters as Array<{ name: string; schema: Record<string, unknown> }>).map((p) => [p.name, p.schema]));
      expect([params.bucket.default, params.aggregation.default]).toEqual(['1h', 'avg']);
      const cases: Array<[string, string]> = [
        ...['2021-07-07T10:00:00Z', '2021-07-07T10:00Z', '2021-07-07T10:00:00.5+02:00', '2021-07-07', '1625652000000', '2021-07-07T10:00:00', '2021-07-07 10:00:00Z', 'yesterday', '-5'].map((v): [string, string] => ['from', v]),
        ...['30s', '5m', '1h', '1d', '250ms', '1w', '1.5h', '0h', 'h', '01h'].map((v): [string, string] => ['bucket', v]),
      ];
      for (const [name, value] of cases) {
        // A window that takes any documented bucket (a day of 250 ms buckets is refused as too many points).
        const window = name === 'from' ? 'to=2021-07-08' : 'from=2021-07-07T23:59:00Z&to=2021-07-08';
        const res = await app.inject({ method: 'GET', url: `/series/price?${name}=${encodeURIComponent(value)}&${window}` });
        const documented = new RegExp(params[name].pattern as string).test(value);
        expect([name, value, res.statusCode === 400]).toEqual([name, value, !documented]);
      }
    } finally {
      await app.close();
    }
  });

  it('the refresh limit\'s 429, with its Retry-After', async () => {
    const { problems, statuses } = await problemsOf(`${prefix}:limited`, { price: 'coinbase', sentiment: 'fear-greed' }, [1, 2, 3].map(() => ['POST', '/refresh', '/refresh', AUTH] as Request), {
      env: { THROTTLE_REFRESH_LIMIT: '1' },
    });
    expect([problems, statuses]).toEqual([[], [200, 429, 429]]);
  });

  it('every operation while Redis is away: 503s with Retry-After', async () => {
    const server = await RedisServerProcess.start();
    try {
      const { problems, statuses } = await problemsOf(
        `${prefix}:outage`,
        { price: 'coinbase', sentiment: 'fear-greed' },
        [
          ['GET', '/verdict'],
          ['GET', '/series'],
          ['GET', '/series/{metric}', '/series/price'],
          ['GET', '/series/combined'],
          ['GET', '/series/verdict'],
          ['GET', '/is-bitcoin-lit'],
          ['GET', '/health/ready'],
          ['POST', '/refresh', '/refresh', AUTH],
        ],
        {
          env: { REDIS_URL: server.url, REDIS_MAX_RETRIES_PER_REQUEST: '0' },
          before: () => server.stop(),
          // Back, and reconnected, before the app closes: it then quits as it would.
          after: async (app) => {
            await server.start();
            await waitFor('Redis back', async () => (await app.inject({ method: 'GET', url: '/verdict' })).statusCode === 200);
          },
        },
      );
      // The summary has no good answer of its own to serve stale: a 503 too; readiness says so in its own words.
      expect([problems, statuses]).toEqual([[], [503, 503, 503, 503, 503, 503, 503, 503]]);
    } finally {
      await server.destroy();
    }
  });

  it('a failed source (its report null) and a metric with no data (its direction null)', async () => {
    fake.override(PATHS.coinbaseTicker, { status: 500 }).override(PATHS.coinbaseCandles, { status: 500 });
    try {
      const { problems, statuses } = await problemsOf(`${prefix}:failing`, { price: 'coinbase', sentiment: 'fear-greed' }, [
        ['POST', '/refresh', '/refresh', AUTH],
        ['GET', '/is-bitcoin-lit'],
        ['GET', '/verdict'],
        ['GET', '/health/ready'],
      ]);
      expect([problems, statuses]).toEqual([[], [200, 200, 200, 200]]);
    } finally {
      fake.clearOverrides();
    }
  });
});
