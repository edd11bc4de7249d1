import { sameSlotKey } from '../redis/key-slot.js';
import { validateEnv } from './env.validation.js';

describe('validateEnv', () => {
  it('applies documented defaults', () => {
    const env = validateEnv({});
    expect(env).toMatchObject({
      PORT: 3000,
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_KEY_PREFIX: 'is-bitcoin-lit',
      TIMESERIES_BACKEND: 'auto',
      INGEST_INTERVAL_MS: 30000,
      INGEST_SCHEDULE_ENABLED: true,
      SUMMARY_HOURS: 3,
      SUMMARY_ANCHOR: 'auto',
      CACHE_TTL_SECONDS: 120,
      SENTIMENT_API_URL: 'https://api.senticrypt.com/v1/bitcoin.json',
      BACKFILL_HOURS: 720,
      TIMESERIES_HOURLY_RETENTION_MS: 2 * 365 * 24 * 3600 * 1000,
      TIMESERIES_DAILY_RETENTION_MS: 0,
      TIMESERIES_5MIN_TIER: false,
      TIMESERIES_5MIN_RETENTION_MS: 7 * 24 * 3600 * 1000,
    });
    // Unset: each price venue paces its calls under its own published limit.
    expect(env.UPSTREAM_MIN_INTERVAL_MS).toBeUndefined();
    expect(validateEnv({ UPSTREAM_MIN_INTERVAL_MS: '' }).UPSTREAM_MIN_INTERVAL_MS).toBeUndefined();
    expect(validateEnv({ UPSTREAM_MIN_INTERVAL_MS: '0' }).UPSTREAM_MIN_INTERVAL_MS).toBe(0);
  });

  it('converts strings from the environment; empty means unset', () => {
    const env = validateEnv({ PORT: '8080', INGEST_SCHEDULE_ENABLED: 'false', REDIS_PROTOCOL: '2', SUMMARY_HOURS: '' });
    expect(env.PORT).toBe(8080);
    expect(env.INGEST_SCHEDULE_ENABLED).toBe(false);
    expect(env.REDIS_PROTOCOL).toBe(2);
    expect(env.SUMMARY_HOURS).toBe(3);
  });

  it('SUMMARY_HOURS takes 2 to 168 hours', () => {
    expect(validateEnv({ SUMMARY_HOURS: '2' }).SUMMARY_HOURS).toBe(2);
    expect(validateEnv({ SUMMARY_HOURS: '168' }).SUMMARY_HOURS).toBe(168);
    expect(() => validateEnv({ SUMMARY_HOURS: '1' })).toThrow('SUMMARY_HOURS=1: SUMMARY_HOURS must not be less than 2');
  });

  // A Node timer longer than 2^31-1 ms (~24.8 days) fires after 1 ms instead (TimeoutOverflowWarning):
  // an interval would busy-loop (ingest every millisecond), a timeout would fire at once.
  const TIMER_OVERFLOW = String(2 ** 31);
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['TIMESERIES_BACKEND', 'mongo'],
    ['INGEST_SCHEDULE_ENABLED', 'perhaps'],
    ['INGEST_INTERVAL_MS', '10'],
    ['INGEST_MAX_AHEAD_MS', '-1'],
    ['HOST', ' '],
    ['REDIS_STARTUP_WAIT_MS', '0'], // startup could never succeed
    ['SENTIMENT_API_URL', 'ftp://x'],
    ['SUMMARY_ANCHOR', 'yesterday'],
    ['SUMMARY_HOURS', '1'], // the first hour is the last: every direction would be flat
    ['SUMMARY_HOURS', '169'],
    ['REDIS_PROTOCOL', '4'],
    ['PRICE_SOURCE', 'senticrypt-v2'],
    ['PRICE_SOURCE', 'binance'],
    ['SENTIMENT_SOURCE', 'coinbase'],
    ['COINBASE_API_URL', 'file:///tmp/x'],
    ['KRAKEN_API_URL', 'api.kraken.com'],
    ['UPSTREAM_TIMEOUT_MS', '5'],
    ['UPSTREAM_RETRIES', '11'],
    ['UPSTREAM_USER_AGENT', 'bad\nagent'],
    ['SENTIMENT_API_MAX_BYTES', '10'],
    ['UPSTREAM_MIN_INTERVAL_MS', '-1'],
    ['UPSTREAM_MIN_INTERVAL_MS', 'fast'],
    ['BACKFILL_HOURS', '721'],
    ['TIMESERIES_5MIN_RETENTION_MS', '-1'],
    ['TIMESERIES_5MIN_RETENTION_MS', 'a week'],
    ['TIMESERIES_5MIN_TIER', 'maybe'],
    ['PORT', '-1'],
    ['PORT', '3000abc'],
    ['PORT', '1.5'],
    ['REDIS_URL', 'redis://'],
    ['REDIS_URL', '127.0.0.1:6379'],
    ['REDIS_CONNECT_TIMEOUT_MS', '0'],
    ['REDIS_CONNECT_TIMEOUT_MS', TIMER_OVERFLOW],
    ['REDIS_COMMAND_TIMEOUT_MS', '0'],
    ['REDIS_COMMAND_TIMEOUT_MS', 'soon'],
    ['REDIS_COMMAND_TIMEOUT_MS', TIMER_OVERFLOW],
    ['REDIS_RETRY_BASE_MS', TIMER_OVERFLOW],
    ['REDIS_RETRY_MAX_MS', TIMER_OVERFLOW],
    ['REDIS_STARTUP_WAIT_MS', '-1'],
    ['REDIS_STARTUP_WAIT_MS', TIMER_OVERFLOW],
    ['UPSTREAM_TIMEOUT_MS', '0'],
    ['UPSTREAM_TIMEOUT_MS', '1000000000000'],
    ['SENTIMENT_API_TIMEOUT_MS', TIMER_OVERFLOW],
    ['INGEST_INTERVAL_MS', '0'],
    ['INGEST_INTERVAL_MS', '1000000000000'],
    ['INGEST_DAILY_INTERVAL_MS', TIMER_OVERFLOW],
    ['INGEST_LOCK_TTL_MS', TIMER_OVERFLOW],
    ['NOTIFY_HEARTBEAT_MS', '0'],
    ['NOTIFY_HEARTBEAT_MS', TIMER_OVERFLOW],
    ['HEALTH_REDIS_TIMEOUT_MS', TIMER_OVERFLOW],
    ['HTTP_REQUEST_TIMEOUT_MS', TIMER_OVERFLOW],
    ['SHUTDOWN_TIMEOUT_MS', TIMER_OVERFLOW],
    ['THROTTLE_LIMIT', '-1'],
    ['THROTTLE_LIMIT', 'lots'],
    ['THROTTLE_TTL_MS', '0'],
    ['THROTTLE_REFRESH_LIMIT', '0'],
    ['CACHE_L1_TTL_MS', '-1'],
    ['CACHE_L1_TTL_MS', '60001'],
    ['CACHE_TTL_SECONDS', '0'],
    ['PRICE_SOURCE', 'Coinbase'],
    ['ALERT_WEBHOOK_TIMEOUT_MS', '0'],
    ['ALERT_WEBHOOK_TIMEOUT_MS', '60001'],
    ['ALERT_WEBHOOK_MAX_ATTEMPTS', '0'],
    ['ALERT_WEBHOOK_POLL_MS', '0'],
    ['ALERT_WEBHOOK_RETRY_BASE_MS', '-5'],
    ['ALERT_WEBHOOK_MAX_PENDING', '0'],
    // Beyond 2^53 the digits are not the number Redis would be sent (1e20 is "100000000000000000000").
    ['TIMESERIES_RETENTION_MS', '99999999999999999999'],
    ['TIMESERIES_HOURLY_RETENTION_MS', '9007199254740993'],
  ])('fails naming %s=%s', (name, value) => {
    expect(() => validateEnv({ [name]: value })).toThrow(new RegExp(`^Invalid configuration:\\n  ${name}=`));
  });

  it.each([
    ['ALERT_WEBHOOK_URLS', { ALERT_WEBHOOK_URLS: 'ftp://hooks.example/x', ALERT_WEBHOOK_SECRET: 's'.repeat(16) }],
    ['ALERT_WEBHOOK_URLS', { ALERT_WEBHOOK_URLS: 'http://hooks.example/x', ALERT_WEBHOOK_SECRET: 's'.repeat(16) }],
    ['ALERT_WEBHOOK_URLS', { ALERT_WEBHOOK_URLS: 'https://hooks.example/x,https://HOOKS.example:443/x', ALERT_WEBHOOK_SECRET: 's'.repeat(16) }], // one receiver twice
    ['ALERT_WEBHOOK_SECRET', { ALERT_WEBHOOK_URLS: 'https://hooks.example/x' }],
    ['ALERT_WEBHOOK_SECRET', { ALERT_WEBHOOK_URLS: 'https://hooks.example/x', ALERT_WEBHOOK_SECRET: 'short' }],
    ['ALERT_WEBHOOK_PREVIOUS_SECRET', { ALERT_WEBHOOK_URLS: 'https://hooks.example/x', ALERT_WEBHOOK_SECRET: 's'.repeat(16), ALERT_WEBHOOK_PREVIOUS_SECRET: 'short' }],
    ['ALERT_WEBHOOK_PREVIOUS_SECRET', { ALERT_WEBHOOK_URLS: 'https://hooks.example/x', ALERT_WEBHOOK_SECRET: 's'.repeat(16), ALERT_WEBHOOK_PREVIOUS_SECRET: 's'.repeat(16) }],
  ])('bad webhook setting: fails naming %s', (name, env) => {
    expect(() => validateEnv(env)).toThrow(new RegExp(`^Invalid configuration:\\n  ${name}: `));
  });

  describe('REDIS_URL', () => {
    // Passed the redis:// pattern, then ioredis threw "Invalid URL" at startup without naming
    // the variable, or selected DB NaN.
    it.each(['redis://host:abc', 'redis://host:99999', 'redis://[bad:6379', 'redis://host:6379/abc', 'redis://host:6379/-1', 'redis://host:6379?db=abc', 'redis://host?db=-1'])('refuses %s, naming it', (url) => {
      expect(() => validateEnv({ REDIS_URL: url })).toThrow(/^Invalid configuration:\n {2}REDIS_URL=/);
    });

    it.each(['redis://:pw@host:6379/2', 'rediss://user:p%40ss@host:6380', 'redis://host', 'redis://[::1]:6379/0', 'redis://host:6379?db=3'])('accepts %s', (url) => {
      expect(validateEnv({ REDIS_URL: url }).REDIS_URL).toBe(url);
    });

    it('never echoes the password of a REDIS_URL it refuses', () => {
      for (const url of ['http://user:s3cr/et@host:6379', 'redis//:s3cr/et@host', 'redis://:s3cr/et@host:abc']) {
        expect(() => validateEnv({ REDIS_URL: url })).toThrow(/^Invalid configuration:\n {2}REDIS_URL="[^"]*\*\*\*@host/);
        expect(() => validateEnv({ REDIS_URL: url })).not.toThrow(/s3cr/);
      }
    });

    it('never echoes a password given in the query of a REDIS_URL it refuses (ioredis reads ?password=)', () => {
      for (const url of ['redis://host:abc/?password=hunter2', 'redis://host:6379/x?db=1&PASS=hunter2', 'http://host/?Password=hunter2#f', 'redis://[::1/?pass%77ord=hunter2']) {
        expect(() => validateEnv({ REDIS_URL: url })).toThrow(/^Invalid configuration:\n {2}REDIS_URL="[^"]*=\*\*\*/);
        expect(() => validateEnv({ REDIS_URL: url })).not.toThrow(/hunter2/);
      }
    });
  });

  describe('upstream URLs', () => {
    const BASES = ['COINBASE_API_URL', 'KRAKEN_API_URL', 'BITSTAMP_API_URL', 'SENTICRYPT_V2_API_URL', 'FEAR_GREED_API_URL'];
    // These passed a ^https?://\S+$ pattern, then failed every run as a "transient" TypeError.
    const UNFETCHABLE = ['http://127.0.0.1:99999', 'http://[::1', 'http://[::1]:0x50', 'https://exa mple.com', 'https://'];

    it.each(BASES.flatMap((name) => [...UNFETCHABLE, 'ftp://mirror.example', 'file:///tmp/x'].map((url) => [name, url])))('refuses %s=%s, naming it', (name, url) => {
      expect(() => validateEnv({ [name]: url })).toThrow(new RegExp(`^Invalid configuration:\\n {2}${name}=[^\\n]*: ${name} must be an http:// or https:// URL`));
    });

    // Paths are appended to a base URL: after a query or fragment they would not be a path.
    it.each(BASES.flatMap((name) => ['https://mirror.example/api?key=1', 'https://mirror.example/api#x', 'https://mirror.example/api?'].map((url) => [name, url])))(
      'refuses %s=%s: no query or fragment in a base URL',
      (name, url) => {
        expect(() => validateEnv({ [name]: url })).toThrow(`${name} is a base URL the paths are appended to: no ?query or #fragment`);
      },
    );

    it.each(BASES)('accepts a mirror as %s (port, path, trailing slash, IPv6)', (name) => {
      for (const url of ['http://127.0.0.1:8080/mirror/', 'https://mirror.example/api/v2', 'http://[::1]:9000']) {
        expect(validateEnv({ [name]: url })[name as 'COINBASE_API_URL']).toBe(url);
      }
    });

    it.each([...UNFETCHABLE, 'ftp://x'])('refuses SENTIMENT_API_URL=%s, naming it', (url) => {
      expect(() => validateEnv({ SENTIMENT_API_URL: url })).toThrow(/^Invalid configuration:\n {2}SENTIMENT_API_URL=[^\n]*: SENTIMENT_API_URL must be an http:\/\/, https:\/\/ or file:\/\/ URL/);
    });

    it('SENTIMENT_API_URL is a full URL: a query is fine; file:// needs an absolute path, not a host', () => {
      for (const url of ['https://mirror.example/v1/bitcoin.json?token=1', 'file:///data/replay.json', 'file://localhost/data/replay.json']) {
        expect(validateEnv({ SENTIMENT_API_URL: url }).SENTIMENT_API_URL).toBe(url);
      }
      // The replay reader refused it at every run ("not a local file URL"): "test" is read as a host.
      expect(() => validateEnv({ SENTIMENT_API_URL: 'file://test/fixtures/replay.json' })).toThrow(
        /^Invalid configuration:\n {2}SENTIMENT_API_URL="file:\/\/test\/fixtures\/replay.json": SENTIMENT_API_URL must name an absolute path after file:\/\//,
      );
    });
  });

  it('refuses a SHUTDOWN_DRAIN_MS that leaves no time for the shutdown itself', () => {
    expect(validateEnv({ SHUTDOWN_DRAIN_MS: '5000' }).SHUTDOWN_DRAIN_MS).toBe(5000);
    expect(() => validateEnv({ SHUTDOWN_DRAIN_MS: '25000' })).toThrow(/SHUTDOWN_DRAIN_MS=25000 must be shorter than SHUTDOWN_TIMEOUT_MS=25000/);
  });

  describe('TRUST_PROXY', () => {
    it.each([['true', true], [' TRUE ', true], ['false', false], ['False', false], ['0', false], ['no', false], ['OFF', false]])('reads %s as %s', (value, expected) => {
      expect(validateEnv({ TRUST_PROXY: value }).TRUST_PROXY).toBe(expected);
    });

    it('reads a list of addresses and ranges', () => {
      expect(validateEnv({ TRUST_PROXY: '10.0.0.0/8, loopback,::1' }).TRUST_PROXY).toEqual(['10.0.0.0/8', 'loopback', '::1']);
    });

    // Express/Fastify users write hop counts: "1" was read as true (every hop trusted, so any
    // client could pick its address) and "2" by proxy-addr as the address 0.0.0.2 (none trusted).
    it.each(['1', '2', '10.0.0.1, 2'])('refuses the hop count in %s, saying to list the proxies instead', (value) => {
      expect(() => validateEnv({ TRUST_PROXY: value })).toThrow(
        /^Invalid configuration:\n {2}TRUST_PROXY: "\d+" looks like a hop count, which is not supported: list the proxies' addresses or CIDR ranges instead/,
      );
    });

    it.each(['yes', 'on'])('refuses %s: trusting every hop must be spelled out as true', (value) => {
      expect(() => validateEnv({ TRUST_PROXY: value })).toThrow(/^Invalid configuration:\n {2}TRUST_PROXY: /);
    });
  });

  describe('CORS_ORIGINS', () => {
    // @fastify/cors compares each entry with the Origin header byte for byte, and a browser's
    // Origin is scheme://host[:port]: a path or trailing slash never matched, CORS silently off.
    it.each(['https://dash.example/', 'dash.example', 'https://dash.example/app', 'https://a.example, https://b.example/'])('refuses %s, naming it', (value) => {
      expect(() => validateEnv({ CORS_ORIGINS: value })).toThrow(/^Invalid configuration:\n {2}CORS_ORIGINS=/);
    });

    it.each(['*', 'https://dash.example', ' https://a.example , http://localhost:5173,', 'https://[::1]:8443'])('accepts %s', (value) => {
      expect(validateEnv({ CORS_ORIGINS: value }).CORS_ORIGINS).toBe(value);
    });
  });

  describe('REDIS_KEY_PREFIX', () => {
    // Braces are allowed for a {hash tag} prefix (docs/cluster.md); braces without a usable tag
    // made every companion key (compactions, meta) a RangeError at the first write, not at startup.
    it.each(['{}', 'a{b', 'a}b', 'app{}', 'x}{'])('refuses %s, naming it', (prefix) => {
      expect(() => validateEnv({ REDIS_KEY_PREFIX: prefix })).toThrow(/^Invalid configuration:\n {2}REDIS_KEY_PREFIX=/);
    });

    it.each(['is-bitcoin-lit', '{is-bitcoin-lit}', 'app:{tenant-1}', 'a.b_c:d'])('accepts %s', (prefix) => {
      expect(validateEnv({ REDIS_KEY_PREFIX: prefix }).REDIS_KEY_PREFIX).toBe(prefix);
    });

    it('agrees with the key builder: accepted exactly when sameSlotKey can name a companion key', () => {
      for (const prefix of ['{}', 'a{b', 'a}b', 'app{}', 'x}{', '{a}{', '}{a}', 'a{b}c', '{is-bitcoin-lit}', 'plain']) {
        const key = `${prefix}:price:coinbase`;
        const builds = (() => {
          try {
            sameSlotKey(key, 'sum:1h');
            return true;
          } catch {
            return false;
          }
        })();
        const accepted = (() => {
          try {
            validateEnv({ REDIS_KEY_PREFIX: prefix });
            return true;
          } catch {
            return false;
          }
        })();
        expect([prefix, accepted]).toEqual([prefix, builds]);
      }
    });
  });

  it('the timer-backed settings accept up to 2^31-1 ms, the longest a Node timer waits', () => {
    const longest = String(2 ** 31 - 1);
    expect(validateEnv({ INGEST_INTERVAL_MS: longest, SHUTDOWN_TIMEOUT_MS: longest, HEALTH_INGEST_MAX_AGE_MS: '0' }).INGEST_INTERVAL_MS).toBe(2 ** 31 - 1);
    // Not a timer: retention and staleness may be longer than that.
    expect(validateEnv({ TIMESERIES_RETENTION_MS: String(10 * 365 * 24 * 3600 * 1000) }).TIMESERIES_RETENTION_MS).toBe(10 * 365 * 24 * 3600 * 1000);
  });

  describe('sources', () => {
    it('defaults to the live sources: three exchanges for price, senticrypt-v2 for sentiment', () => {
      expect(validateEnv({})).toMatchObject({
        PRICE_SOURCE: ['coinbase', 'kraken', 'bitstamp'],
        PRICE_OUTLIER_PCT: 2,
        SENTIMENT_SOURCE: 'senticrypt-v2',
        COINBASE_API_URL: 'https://api.exchange.coinbase.com',
        BITSTAMP_API_URL: 'https://www.bitstamp.net/api/v2',
        KRAKEN_API_URL: 'https://api.kraken.com/0/public',
        SENTICRYPT_V2_API_URL: 'https://api.senticrypt.com/v2',
        FEAR_GREED_API_URL: 'https://api.alternative.me',
        UPSTREAM_TIMEOUT_MS: 10000,
        UPSTREAM_RETRIES: 2,
        UPSTREAM_RETRY_BASE_MS: 500,
        UPSTREAM_RETRY_AFTER_MAX_MS: 10000,
        SENTIMENT_API_MAX_BYTES: 4 * 1024 * 1024,
      });
      expect(validateEnv({}).UPSTREAM_USER_AGENT).toMatch(/^is-bitcoin-lit\/\d+\.\d+\.\d+ \(/);
    });

    it('upgrade safety: SENTIMENT_API_URL alone (every deployment before live sources) keeps v1 for both metrics', () => {
      expect(validateEnv({ SENTIMENT_API_URL: 'http://127.0.0.1:9/v1/bitcoin.json' })).toMatchObject({
        PRICE_SOURCE: ['senticrypt-v1'],
        SENTIMENT_SOURCE: 'senticrypt-v1',
      });
      expect(validateEnv({ SENTIMENT_API_URL: 'file:///data/replay.json' })).toMatchObject({
        PRICE_SOURCE: ['senticrypt-v1'],
        SENTIMENT_SOURCE: 'senticrypt-v1',
      });
    });

    it('an explicit choice wins over the upgrade default, per metric', () => {
      expect(validateEnv({ SENTIMENT_API_URL: 'https://x/v1.json', PRICE_SOURCE: 'kraken', SENTIMENT_SOURCE: 'fear-greed' })).toMatchObject({
        PRICE_SOURCE: ['kraken'],
        SENTIMENT_SOURCE: 'fear-greed',
      });
      expect(validateEnv({ SENTIMENT_API_URL: 'https://x/v1.json', PRICE_SOURCE: 'senticrypt-v1' })).toMatchObject({
        PRICE_SOURCE: ['senticrypt-v1'],
        SENTIMENT_SOURCE: 'senticrypt-v1',
      });
      expect(validateEnv({ SENTIMENT_SOURCE: 'fear-greed' })).toMatchObject({ PRICE_SOURCE: ['coinbase', 'kraken', 'bitstamp'], SENTIMENT_SOURCE: 'fear-greed' });
    });

    // The frozen v1 feed's samples are a day of 2021: with the other metric live, no summary
    // window holds both and the verdict is `unknown` forever.
    it.each([
      [{ SENTIMENT_API_URL: 'file:///data/replay.json', PRICE_SOURCE: 'coinbase' }, /^Invalid configuration:\n {2}SENTIMENT_SOURCE="senticrypt-v1" \(its default when SENTIMENT_API_URL is set\) with PRICE_SOURCE="coinbase": .*; set SENTIMENT_SOURCE to a live source \(senticrypt-v2, fear-greed\), or PRICE_SOURCE=senticrypt-v1 to replay the feed$/],
      [{ SENTIMENT_API_URL: 'https://x/v1.json', SENTIMENT_SOURCE: 'fear-greed' }, /^Invalid configuration:\n {2}PRICE_SOURCE="senticrypt-v1" \(its default when SENTIMENT_API_URL is set\) with SENTIMENT_SOURCE="fear-greed": .*; set PRICE_SOURCE to live venues/],
      [{ SENTIMENT_SOURCE: 'senticrypt-v1' }, /^Invalid configuration:\n {2}SENTIMENT_SOURCE="senticrypt-v1" with PRICE_SOURCE="coinbase,kraken,bitstamp": senticrypt-v1 is the frozen 2021 feed and serves both metrics or neither/],
      [{ PRICE_SOURCE: 'senticrypt-v1', SENTIMENT_SOURCE: 'senticrypt-v2' }, /^Invalid configuration:\n {2}PRICE_SOURCE="senticrypt-v1" with SENTIMENT_SOURCE="senticrypt-v2": /],
    ])('refuses senticrypt-v1 for one metric only: %j', (env, message) => {
      expect(() => validateEnv(env)).toThrow(message);
    });

    it('reports a v1 mix only when both settings are otherwise valid (their own rule names them)', () => {
      expect(() => validateEnv({ PRICE_SOURCE: 'coinbase,senticrypt-v1' })).toThrow(/^Invalid configuration:\n {2}PRICE_SOURCE="coinbase,senticrypt-v1": [^\n]*$/);
      expect(() => validateEnv({ PRICE_SOURCE: 'binance', SENTIMENT_SOURCE: 'senticrypt-v1' })).toThrow(/^Invalid configuration:\n {2}PRICE_SOURCE=[^\n]*$/);
    });

    it('an empty SENTIMENT_API_URL means unset: live defaults', () => {
      expect(validateEnv({ SENTIMENT_API_URL: '' })).toMatchObject({ PRICE_SOURCE: ['coinbase', 'kraken', 'bitstamp'], SENTIMENT_SOURCE: 'senticrypt-v2' });
    });

    it('PRICE_SOURCE takes a comma-separated list of venues (spaces allowed); one name is that venue alone', () => {
      expect(validateEnv({ PRICE_SOURCE: ' kraken , bitstamp' }).PRICE_SOURCE).toEqual(['kraken', 'bitstamp']);
      expect(validateEnv({ PRICE_SOURCE: 'coinbase' }).PRICE_SOURCE).toEqual(['coinbase']);
      expect(validateEnv({ PRICE_SOURCE: 'senticrypt-v1', SENTIMENT_SOURCE: 'senticrypt-v1' }).PRICE_SOURCE).toEqual(['senticrypt-v1']);
    });

    it.each(['coinbase,binance', 'kraken,kraken', ',', 'coinbase,senticrypt-v2'])('refuses PRICE_SOURCE=%s, naming it', (value) => {
      expect(() => validateEnv({ PRICE_SOURCE: value })).toThrow(/^Invalid configuration:\n {2}PRICE_SOURCE=/);
    });

    it('refuses senticrypt-v1 among other price sources, naming PRICE_SOURCE and why', () => {
      expect(() => validateEnv({ PRICE_SOURCE: 'coinbase,senticrypt-v1' })).toThrow(
        /^Invalid configuration:\n {2}PRICE_SOURCE="coinbase,senticrypt-v1": senticrypt-v1 cannot be combined with other price sources/,
      );
    });

    it('PRICE_OUTLIER_PCT is a positive percentage, decimals allowed', () => {
      expect(validateEnv({ PRICE_OUTLIER_PCT: '0.5' }).PRICE_OUTLIER_PCT).toBe(0.5);
      for (const bad of ['abc', '0', '-1', '51', '2%']) {
        expect(() => validateEnv({ PRICE_OUTLIER_PCT: bad })).toThrow(/^Invalid configuration:\n {2}PRICE_OUTLIER_PCT=/);
      }
    });

    it('SENTIMENT_API_TIMEOUT_MS / _RETRIES / _RETRY_BASE_MS still work, as aliases of the UPSTREAM_* names', () => {
      const env = validateEnv({ SENTIMENT_API_TIMEOUT_MS: '200', SENTIMENT_API_RETRIES: '0', SENTIMENT_API_RETRY_BASE_MS: '10' });
      expect(env).toMatchObject({ UPSTREAM_TIMEOUT_MS: 200, UPSTREAM_RETRIES: 0, UPSTREAM_RETRY_BASE_MS: 10 });
      expect(validateEnv({ SENTIMENT_API_RETRIES: '0', UPSTREAM_RETRIES: '3' }).UPSTREAM_RETRIES).toBe(3);
    });

    it('a bad alias value fails naming the variable that was set', () => {
      expect(() => validateEnv({ SENTIMENT_API_RETRIES: '99' })).toThrow(/^Invalid configuration:\n {2}SENTIMENT_API_RETRIES=99: [^\n]*$/);
    });
  });

  describe('REDIS_CLUSTER_NODES', () => {
    it('is empty by default (one server at REDIS_URL)', () => {
      expect(validateEnv({}).REDIS_CLUSTER_NODES).toEqual([]);
    });

    it('reads a comma-separated host:port list, spaces allowed, IPv6 in brackets', () => {
      expect(validateEnv({ REDIS_CLUSTER_NODES: ' redis-1:7000, 10.0.0.2:7001 ,[::1]:7002,' }).REDIS_CLUSTER_NODES).toEqual([
        'redis-1:7000',
        '10.0.0.2:7001',
        '[::1]:7002',
      ]);
    });

    it.each(['redis-1', 'redis-1:0', 'redis-1:65536', 'redis://redis-1:7000', 'a:1,a:1'])('refuses %s', (value) => {
      expect(() => validateEnv({ REDIS_CLUSTER_NODES: value })).toThrow(/^Invalid configuration:\n {2}REDIS_CLUSTER_NODES=/);
    });

    it('refuses a REDIS_URL that selects a DB other than 0 (a cluster has only DB 0)', () => {
      expect(() => validateEnv({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://:pw@x:6379/2' })).toThrow(
        /^Invalid configuration:\n {2}REDIS_URL: selects DB 2, but a Redis Cluster \(REDIS_CLUSTER_NODES\) has only DB 0$/,
      );
      expect(validateEnv({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'rediss://u:pw@x:6379/0' }).REDIS_URL).toBe('rediss://u:pw@x:6379/0');
      expect(validateEnv({ REDIS_URL: 'redis://x:6379/2' }).REDIS_URL).toBe('redis://x:6379/2'); // fine without a cluster
    });
  });

  // Long enough, but no `Authorization: Bearer` header can match it (the matcher takes 1-512
  // visible ASCII characters): POST /refresh would be a 401 forever, so startup refuses it.
  it.each([['spaces', 'a long token with spaces'], ['a tab', 'long-token\twith-a-tab'], ['non-ASCII', 'long-token-with-é-in-it'], ['513 characters', 'x'.repeat(513)]])(
    'rejects a REFRESH_TOKEN with %s, naming it and the allowed characters, without echoing it',
    (_what, token) => {
      expect(() => validateEnv({ REFRESH_TOKEN: token })).toThrow(
        'REFRESH_TOKEN="***": REFRESH_TOKEN must be 16 to 512 visible ASCII characters (no spaces): what an Authorization header can carry',
      );
    },
  );

  it('defaults the operations settings: wait for Redis, refresh disabled, rate limits on', () => {
    expect(validateEnv({})).toMatchObject({
      REDIS_STARTUP_MODE: 'wait',
      REFRESH_TOKEN: '',
      THROTTLE_LIMIT: 300,
      THROTTLE_REFRESH_LIMIT: 5,
      HEALTH_INGEST_MAX_AGE_MS: 900000,
      CORS_ORIGINS: '',
      TRUST_PROXY: false,
      METRICS_ENABLED: true,
      METRICS_TOKEN: '',
      METRICS_PORT: 0,
      DOCS_ENABLED: true,
    });
  });

  it('rejects a short METRICS_TOKEN without echoing it, and a METRICS_PORT equal to PORT', () => {
    expect(() => validateEnv({ METRICS_TOKEN: 'scrape-me' })).toThrow('METRICS_TOKEN="***": METRICS_TOKEN must be 16 to 512 visible ASCII characters');
    // Longer, but never matchable in an Authorization header: refused at startup, not a 401 forever.
    expect(() => validateEnv({ METRICS_TOKEN: 'a long token with spaces' })).toThrow(/METRICS_TOKEN must be 16 to 512/);
    expect(() => validateEnv({ METRICS_TOKEN: 'x'.repeat(513) })).toThrow(/METRICS_TOKEN must be 16 to 512/);
    expect(validateEnv({ METRICS_TOKEN: 'x'.repeat(16) }).METRICS_TOKEN).toBe('x'.repeat(16));
    expect(() => validateEnv({ METRICS_TOKEN: 'scrape-me' })).not.toThrow(/scrape-me/);
    expect(() => validateEnv({ PORT: '9100', METRICS_PORT: '9100' })).toThrow('METRICS_PORT=9100: must differ from PORT');
    // Readiness allowing less than the pause between scheduled runs would go red between every two.
    expect(() => validateEnv({ INGEST_INTERVAL_MS: '600000', HEALTH_INGEST_MAX_AGE_MS: '600000' })).toThrow(
      'HEALTH_INGEST_MAX_AGE_MS=600000: must be greater than INGEST_INTERVAL_MS (600000)',
    );
    expect(validateEnv({ INGEST_INTERVAL_MS: '600000', HEALTH_INGEST_MAX_AGE_MS: '0' }).HEALTH_INGEST_MAX_AGE_MS).toBe(0);
    expect(validateEnv({ INGEST_INTERVAL_MS: '600000', HEALTH_INGEST_MAX_AGE_MS: '600000', INGEST_SCHEDULE_ENABLED: 'false' }).INGEST_INTERVAL_MS).toBe(600000);
    expect(validateEnv({ INGEST_INTERVAL_MS: '600000', HEALTH_INGEST_MAX_AGE_MS: '1800000' }).HEALTH_INGEST_MAX_AGE_MS).toBe(1800000);
    expect(validateEnv({ METRICS_PORT: '9100' }).METRICS_PORT).toBe(9100);
  });

  it('ALERT_WEBHOOK_KEY_TTL_MS: 7 days by default, and far longer than the gap between two refreshes (poll + attempt)', () => {
    expect(validateEnv({}).ALERT_WEBHOOK_KEY_TTL_MS).toBe(7 * 24 * 3_600_000);
    expect(validateEnv({ ALERT_WEBHOOK_KEY_TTL_MS: '1500', ALERT_WEBHOOK_POLL_MS: '50', ALERT_WEBHOOK_TIMEOUT_MS: '100' }).ALERT_WEBHOOK_KEY_TTL_MS).toBe(1500);
    expect(() => validateEnv({ ALERT_WEBHOOK_KEY_TTL_MS: '59999' })).toThrow(
      'ALERT_WEBHOOK_KEY_TTL_MS=59999: must be at least 10 × (ALERT_WEBHOOK_POLL_MS + ALERT_WEBHOOK_TIMEOUT_MS) = 60000',
    );
    expect(() => validateEnv({ ALERT_WEBHOOK_KEY_TTL_MS: '500', ALERT_WEBHOOK_POLL_MS: '10', ALERT_WEBHOOK_TIMEOUT_MS: '100' })).toThrow(/ALERT_WEBHOOK_KEY_TTL_MS/);
  });

  it('rejects a short REFRESH_TOKEN without echoing it', () => {
    expect(() => validateEnv({ REFRESH_TOKEN: 'hunter2' })).toThrow('REFRESH_TOKEN="***": REFRESH_TOKEN must be 16 to 512 visible ASCII characters');
    expect(() => validateEnv({ REFRESH_TOKEN: 'hunter2' })).not.toThrow(/hunter2/);
    expect(validateEnv({ REFRESH_TOKEN: 'x'.repeat(16) }).REFRESH_TOKEN).toBe('x'.repeat(16));
    expect(validateEnv({ REFRESH_TOKEN: '~'.repeat(512) }).REFRESH_TOKEN).toBe('~'.repeat(512));
    expect(() => validateEnv({ REDIS_STARTUP_MODE: 'later' })).toThrow(/REDIS_STARTUP_MODE="later"/);
  });
});
