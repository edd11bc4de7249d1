import { HttpService } from '@nestjs/axios';
import type { ConfigService } from '@nestjs/config';
import axios from 'axios';
import { Env, validateEnv } from '../config/env.validation.js';
import { SourceHttpClient } from './source-http.service.js';
import { SourceRegistry } from './source.registry.js';

const http = new SourceHttpClient(new HttpService(axios.create()), {
  timeoutMs: 1000,
  retries: 0,
  retryBaseMs: 1,
  retryAfterMaxMs: 1000,
  userAgent: 'test',
  maxRedirects: 0,
});

function registry(raw: Record<string, string>): SourceRegistry {
  const env = validateEnv(raw);
  const config = { get: (key: keyof Env) => env[key] } as unknown as ConfigService<Env, true>;
  return new SourceRegistry(http, config);
}

describe('SourceRegistry', () => {
  it('upgrade path: SENTIMENT_API_URL alone → one senticrypt-v1 provider serving both metrics', () => {
    const r = registry({ SENTIMENT_API_URL: 'file:///tmp/replay.json' });
    expect(r.forMetric('price').provider.id).toBe('senticrypt-v1');
    expect(r.forMetric('price').spec).toEqual({ metric: 'price', unit: 'USD', cadence: 'tick' });
    expect(r.forMetric('sentiment').provider).toBe(r.forMetric('price').provider);
    expect(r.forMetric('sentiment').spec.unit).toBe('score -1..1');
    expect(r.active().map((p) => p.id)).toEqual(['senticrypt-v1']);
  });
});
