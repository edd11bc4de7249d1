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
  it('defaults to the live sources: three exchanges for price, senticrypt-v2 for sentiment', () => {
    const r = registry({});
    expect(r.forMetric('price')).toMatchObject(
      ['coinbase', 'kraken', 'bitstamp'].map((id) => ({ provider: { id }, spec: { metric: 'price', unit: 'USD', cadence: 'tick' } })),
    );
    expect(r.forMetric('sentiment')).toMatchObject([
      { provider: { id: 'senticrypt-v2' }, spec: { metric: 'sentiment', unit: 'score -1..1', cadence: 'daily' } },
    ]);
    expect(r.active().map((p) => p.id)).toEqual(['coinbase', 'kraken', 'bitstamp', 'senticrypt-v2']);
  });

  it('a PRICE_SOURCE list is one provider per venue, in the order given', () => {
    const r = registry({ PRICE_SOURCE: 'bitstamp, kraken' });
    expect(r.forMetric('price').map((s) => s.provider.id)).toEqual(['bitstamp', 'kraken']);
    expect(r.active().map((p) => p.id)).toEqual(['bitstamp', 'kraken', 'senticrypt-v2']);
  });

  it.each([
    ['bitstamp', 'fear-greed', 'index 0..100'],
    ['kraken', 'senticrypt-v2', 'score -1..1'],
  ])('builds %s + %s', (price, sentiment, unit) => {
    const r = registry({ PRICE_SOURCE: price, SENTIMENT_SOURCE: sentiment });
    expect(r.forMetric('price')[0].provider.id).toBe(price);
    expect(r.forMetric('sentiment')[0].provider.id).toBe(sentiment);
    expect(r.forMetric('sentiment')[0].spec.unit).toBe(unit);
    expect(r.active()).toHaveLength(2);
  });

  it('kraken says how far back its backfill reaches', () => {
    expect(registry({ PRICE_SOURCE: 'kraken' }).forMetric('price')[0].provider.backfillReachMs).toBe(12 * 3600 * 1000);
  });

  it('explicit choices win over the v1 upgrade default', () => {
    const r = registry({ SENTIMENT_API_URL: 'file:///tmp/replay.json', PRICE_SOURCE: 'coinbase', SENTIMENT_SOURCE: 'fear-greed' });
    expect(r.active().map((p) => p.id)).toEqual(['coinbase', 'fear-greed']);
  });

  it('upgrade path: SENTIMENT_API_URL alone → one senticrypt-v1 provider serving both metrics', () => {
    const r = registry({ SENTIMENT_API_URL: 'file:///tmp/replay.json' });
    expect(r.forMetric('price')[0].provider.id).toBe('senticrypt-v1');
    expect(r.forMetric('price')[0].spec).toEqual({ metric: 'price', unit: 'USD', cadence: 'tick' });
    expect(r.forMetric('sentiment')[0].provider).toBe(r.forMetric('price')[0].provider);
    expect(r.forMetric('sentiment')[0].spec.unit).toBe('score -1..1');
    expect(r.active().map((p) => p.id)).toEqual(['senticrypt-v1']);
  });
});
