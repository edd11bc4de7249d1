/** Which source may serve which metric (PRICE_SOURCE / SENTIMENT_SOURCE), and the defaults. */
import type { SourceId } from './source.types.js';

export const PRICE_SOURCE_IDS = ['coinbase', 'bitstamp', 'kraken', 'senticrypt-v1'] as const satisfies readonly SourceId[];
export type PriceSourceId = (typeof PRICE_SOURCE_IDS)[number];

export const SENTIMENT_SOURCE_IDS = ['senticrypt-v2', 'fear-greed', 'senticrypt-v1'] as const satisfies readonly SourceId[];
export type SentimentSourceId = (typeof SENTIMENT_SOURCE_IDS)[number];

/** The live defaults. A deployment that sets only SENTIMENT_API_URL gets senticrypt-v1 for both instead. */
export const DEFAULT_PRICE_SOURCE: PriceSourceId = 'coinbase';
export const DEFAULT_SENTIMENT_SOURCE: SentimentSourceId = 'senticrypt-v2';
