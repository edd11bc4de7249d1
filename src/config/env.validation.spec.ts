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
