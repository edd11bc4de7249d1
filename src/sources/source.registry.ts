import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Env } from '../config/env.validation.js';
import { createProvider, ProviderConfig } from './providers/index.js';
import { SourceHttpClient } from './source-http.service.js';
import { METRIC_NAMES, MetricName, MetricSpec, SourceId, SourceProvider } from './source.types.js';

export interface MetricSource {
  provider: SourceProvider;
  spec: MetricSpec;
}

/**
 * The configured sources of each metric (PRICE_SOURCE: one or several venues; SENTIMENT_SOURCE:
 * one), built once. One provider object per source id: senticrypt-v1 serving both metrics is
 * one provider, polled once.
 */
@Injectable()
export class SourceRegistry {
  private readonly bySource = new Map<SourceId, SourceProvider>();
  private readonly byMetric = new Map<MetricName, MetricSource[]>();

  constructor(http: SourceHttpClient, config: ConfigService<Env, true>) {
    const get = <K extends keyof Env>(key: K): Env[K] => config.get(key, { infer: true });
    const providerConfig: ProviderConfig = {
      SENTIMENT_API_URL: get('SENTIMENT_API_URL'),
      SENTIMENT_API_MAX_BYTES: get('SENTIMENT_API_MAX_BYTES'),
      COINBASE_API_URL: get('COINBASE_API_URL'),
      BITSTAMP_API_URL: get('BITSTAMP_API_URL'),
      KRAKEN_API_URL: get('KRAKEN_API_URL'),
      SENTICRYPT_V2_API_URL: get('SENTICRYPT_V2_API_URL'),
      FEAR_GREED_API_URL: get('FEAR_GREED_API_URL'),
    };
    const chosen: Record<MetricName, readonly SourceId[]> = { price: get('PRICE_SOURCE'), sentiment: [get('SENTIMENT_SOURCE')] };
    for (const metric of METRIC_NAMES) {
      const sources: MetricSource[] = [];
      for (const id of chosen[metric]) {
        let provider = this.bySource.get(id);
        if (!provider) {
          provider = createProvider(id, http, providerConfig);
          this.bySource.set(id, provider);
        }
        const spec = provider.metrics.find((s) => s.metric === metric);
        if (!spec) throw new Error(`source ${id} does not provide ${metric}`);
        sources.push({ provider, spec });
      }
      this.byMetric.set(metric, sources);
    }
  }

  /** The configured sources of `metric` in the configured order (price: each venue; sentiment: one), and how each serves it. */
  forMetric(metric: MetricName): readonly MetricSource[] {
    const found = this.byMetric.get(metric);
    if (!found?.length) throw new Error(`no source configured for ${metric}`);
    return found;
  }

  /** The distinct providers in use, price venues first (senticrypt-v1 once when it serves both metrics). */
  active(): SourceProvider[] {
    return [...this.bySource.values()];
  }
}
