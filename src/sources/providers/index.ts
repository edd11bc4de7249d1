/** Builds a provider from the validated configuration. */
import type { Env } from '../../config/env.validation.js';
import type { SourceHttpClient } from '../source-http.service.js';
import type { SourceId, SourceProvider } from '../source.types.js';
import { SenticryptV1Provider } from './senticrypt-v1.provider.js';

export type ProviderConfig = Pick<
  Env,
  | 'SENTIMENT_API_URL'
  | 'SENTIMENT_API_MAX_BYTES'
  | 'COINBASE_API_URL'
  | 'BITSTAMP_API_URL'
  | 'KRAKEN_API_URL'
  | 'SENTICRYPT_V2_API_URL'
  | 'FEAR_GREED_API_URL'
>;

/** A configured base URL without its trailing slash, so documented paths can be appended. */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

export function createProvider(id: SourceId, http: SourceHttpClient, config: ProviderConfig): SourceProvider {
  switch (id) {
    case 'senticrypt-v1':
      return new SenticryptV1Provider(http, { url: config.SENTIMENT_API_URL, maxBytes: config.SENTIMENT_API_MAX_BYTES });
    default:
      throw new Error(`source ${id} is not implemented yet`);
  }
}
