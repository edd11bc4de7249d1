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
 * The configured source of each metric (PRICE_SOURCE, SENTIMENT_SOURCE), built once. One
 * provider object per source id: senticrypt-v1 serving both metrics is one provider, polled once.
 */
@Injectable()
export class SourceRegistry {
  private readonly bySource = new Map<SourceId, SourceProvider>();
  private readonly byMetric = new Map<MetricName, MetricSource>();

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
    const chosen: Record<MetricName, SourceId> = { price: get('PRICE_SOURCE'), sentiment: get('SENTIMENT_SOURCE') };
    for (const metric of METRIC_NAMES) {
      const id = chosen[metric];
      let provider = this.bySource.get(id);
      if (!provider) {
        provider = createProvider(id, http, providerConfig);
        this.bySource.set(id, provider);
      }
      const spec = provider.metrics.find((s) => s.metric === metric);
      if (!spec) throw new Error(`source ${id} does not provide ${metric}`);
      this.byMetric.set(metric, { provider, spec });
    }
  }

  /** The configured source of `metric`, and how it serves it (unit, cadence). */
  forMetric(metric: MetricName): MetricSource {
    const found = this.byMetric.get(metric);
    if (!found) throw new Error(`no source configured for ${metric}`);
    return found;
  }

  /** The distinct providers in use (senticrypt-v1 once when it serves both metrics). */
  active(): SourceProvider[] {
    return [...this.bySource.values()];
  }
}
