/**
 * The source ids the configuration accepts (PRICE_SOURCE / SENTIMENT_SOURCE) and their defaults.
 * Owned by config, which imports nothing from the features: src/sources takes its SourceId from
 * here, so settings flow one way (config → sources → ingest → series → readers).
 */
export const SOURCE_IDS = ['coinbase', 'bitstamp', 'kraken', 'senticrypt-v2', 'fear-greed', 'senticrypt-v1'] as const;
export type SourceId = (typeof SOURCE_IDS)[number];

export const PRICE_SOURCE_IDS = ['coinbase', 'bitstamp', 'kraken', 'senticrypt-v1'] as const satisfies readonly SourceId[];
export type PriceSourceId = (typeof PRICE_SOURCE_IDS)[number];

export const SENTIMENT_SOURCE_IDS = ['senticrypt-v2', 'fear-greed', 'senticrypt-v1'] as const satisfies readonly SourceId[];
export type SentimentSourceId = (typeof SENTIMENT_SOURCE_IDS)[number];

/**
 * The live defaults: the composite of three exchanges for price. A deployment that sets only
 * SENTIMENT_API_URL gets senticrypt-v1 for both instead (upgrade safety).
 */
export const DEFAULT_PRICE_SOURCES: readonly PriceSourceId[] = ['coinbase', 'kraken', 'bitstamp'];
export const DEFAULT_SENTIMENT_SOURCE: SentimentSourceId = 'senticrypt-v2';

/** The frozen v1 feed serves price and sentiment in one record: it is never one venue among others. */
export const V1_SOURCE = 'senticrypt-v1' satisfies SourceId;
