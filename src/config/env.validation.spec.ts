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
      SUMMARY_ANCHOR: 'latest',
      CACHE_TTL_SECONDS: 120,
      SENTIMENT_API_URL: 'https://api.senticrypt.com/v1/bitcoin.json',
    });
  });

  it('converts strings from the environment; empty means unset', () => {
    const env = validateEnv({ PORT: '8080', INGEST_SCHEDULE_ENABLED: 'false', REDIS_PROTOCOL: '2', SUMMARY_HOURS: '' });
    expect(env.PORT).toBe(8080);
    expect(env.INGEST_SCHEDULE_ENABLED).toBe(false);
    expect(env.REDIS_PROTOCOL).toBe(2);
    expect(env.SUMMARY_HOURS).toBe(3);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['TIMESERIES_BACKEND', 'mongo'],
    ['INGEST_SCHEDULE_ENABLED', 'perhaps'],
    ['INGEST_INTERVAL_MS', '10'],
    ['SENTIMENT_API_URL', 'ftp://x'],
    ['SUMMARY_ANCHOR', 'yesterday'],
    ['REDIS_PROTOCOL', '4'],
  ])('fails naming %s=%s', (name, value) => {
    expect(() => validateEnv({ [name]: value })).toThrow(new RegExp(`^Invalid configuration:\\n  ${name}=`));
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

  it('defaults the operations settings: wait for Redis, refresh disabled, rate limits on', () => {
    expect(validateEnv({})).toMatchObject({
      REDIS_STARTUP_MODE: 'wait',
      REFRESH_TOKEN: '',
      THROTTLE_LIMIT: 300,
      THROTTLE_REFRESH_LIMIT: 5,
      HEALTH_INGEST_MAX_AGE_MS: 900000,
      CORS_ORIGINS: '',
      TRUST_PROXY: false,
    });
  });

  it('rejects a short REFRESH_TOKEN without echoing it', () => {
    expect(() => validateEnv({ REFRESH_TOKEN: 'hunter2' })).toThrow('REFRESH_TOKEN="***": REFRESH_TOKEN must be at least 16 characters');
    expect(() => validateEnv({ REFRESH_TOKEN: 'hunter2' })).not.toThrow(/hunter2/);
    expect(() => validateEnv({ REDIS_STARTUP_MODE: 'later' })).toThrow(/REDIS_STARTUP_MODE="later"/);
  });
});
