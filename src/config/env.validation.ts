import { plainToInstance, Transform } from 'class-transformer';
import {
  ArrayNotEmpty,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateIf,
  validateSync,
  ValidationError,
} from 'class-validator';
import { type TrustProxy, trustFunction } from './trust-proxy.js';
import { IsUpstreamUrl } from './upstream-url.js';
import { maskPasswordParams } from './url-secrets.js';
import { receiverUrlProblem } from './webhook-url.js';
import {
  DEFAULT_PRICE_SOURCES,
  DEFAULT_SENTIMENT_SOURCE,
  PRICE_SOURCE_IDS,
  PriceSourceId,
  SENTIMENT_SOURCE_IDS,
  SentimentSourceId,
  V1_SOURCE,
} from './source-ids.js';
import { DEFAULT_USER_AGENT } from './user-agent.js';

const toBool = ({ value }: { value: unknown }) => {
  if (typeof value === 'boolean') return value;
  const v = String(value).trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return value; // left as is so @IsBoolean reports it
};
// Digits past 2^53 are not the number they read as (99999999999999999999 would be sent to Redis
// as 100000000000000000000): left as strings, so @IsInt reports them.
const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) && Number.isSafeInteger(Number(value)) ? Number(value) : value;
const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
const toList = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? value.split(',').map((v) => v.trim()).filter((v) => v !== '') : value;

/**
 * TRUST_PROXY: `true` spelled out, `false` (or `0`, `no`, `off`: trust no proxy, the safe
 * reading they always had), otherwise a list of addresses or ranges. Not toBool: "1" read as
 * true would trust every hop (a client could spoof its address); another number is left in the
 * list, where trustFunction refuses it as the hop count it was meant to be.
 */
const toTrustProxy = (arg: { value: unknown }) => {
  const v = typeof arg.value === 'string' ? arg.value.trim().toLowerCase() : arg.value;
  if (v === 'true' || v === true) return true;
  if (v === false || (typeof v === 'string' && ['false', '0', 'no', 'off'].includes(v))) return false;
  return toList(arg);
};

/** A comma-separated list (blank entries ignored) of `*` or origins as browsers send them: scheme://host[:port]. */
const CORS_LIST = /^\s*(?:(?:\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/?#,]+)\s*)?(?:,\s*(?:(?:\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/?#,]+)\s*)?)*$/;

/**
 * Longest delay a Node timer takes (2^31-1 ms, about 24.8 days); a longer one fires after 1 ms
 * (TimeoutOverflowWarning): an interval would busy-loop, a timeout would expire at once. Bounds
 * every setting that ends up in setTimeout / setInterval / AbortSignal.timeout.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TimerMax = () =>
  Max(MAX_TIMER_MS, { message: `$property must not be greater than ${MAX_TIMER_MS} (about 24.8 days, the longest a Node timer waits)` });

/** host:port with a host name, IPv4 or [IPv6] address and a port 1-65535. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/;

/**
 * Every setting the service reads, with its default. Documented in .env.example; a bad value
 * fails startup with the variable's name and what is expected.
 */
export class EnvironmentVariables {
  /** HTTP port. */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535)
  PORT = 3000;

  /** Interface to listen on (a host name or address: no blanks). */
  @IsString() @Matches(/^[^\s]+$/, { message: 'HOST must be a host name or an address, without blanks' })
  HOST = '0.0.0.0';

  /** redis:// or rediss:// URL, with optional user:password and /db index. */
  @Matches(/^rediss?:\/\/[^\s]+$/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL = 'redis://127.0.0.1:6379';

  /** Prefix of every key the service writes (cache, series, locks). */
  @Matches(/^[A-Za-z0-9_.:{}-]+$/, { message: 'REDIS_KEY_PREFIX may only contain letters, digits and _ . : { } -' })
  REDIS_KEY_PREFIX = 'is-bitcoin-lit';

  /** TCP connect timeout per attempt. */
  @Transform(toInt) @IsInt() @Min(100) @TimerMax()
  REDIS_CONNECT_TIMEOUT_MS = 5000;

  /** A command without a reply after this long fails (so requests never hang on Redis). */
  @Transform(toInt) @IsInt() @Min(10) @TimerMax()
  REDIS_COMMAND_TIMEOUT_MS = 2000;

  /** How often a command is retried across reconnects before it fails. */
  @Transform(toInt) @IsInt() @Min(0) @Max(20)
  REDIS_MAX_RETRIES_PER_REQUEST = 1;

  /** Reconnect backoff: first delay, doubled per attempt up to REDIS_RETRY_MAX_MS, plus jitter. */
  @Transform(toInt) @IsInt() @Min(10) @TimerMax()
  REDIS_RETRY_BASE_MS = 100;

  @Transform(toInt) @IsInt() @Min(10) @TimerMax()
  REDIS_RETRY_MAX_MS = 5000;

  /** How long startup waits for Redis before giving up with a one-line error (at least 100 ms: a connection takes time). */
  @Transform(toInt) @IsInt() @Min(100) @TimerMax()
  REDIS_STARTUP_WAIT_MS = 30000;

  /** RESP protocol version: 3 (default) or 2. Replies are parsed either way. */
  @Transform(toInt) @IsIn([2, 3])
  REDIS_PROTOCOL: 2 | 3 = 3;

  /** Time-series backend: auto (probe the server), native (TS.* commands) or portable (sorted sets + Lua). */
  @IsIn(['auto', 'native', 'portable'])
  TIMESERIES_BACKEND: 'auto' | 'native' | 'portable' = 'auto';

  /** RETENTION of the raw series in ms (0 = keep forever). Default 30 days. */
  @Transform(toInt) @IsInt() @Min(0)
  TIMESERIES_RETENTION_MS = 30 * 24 * 3600 * 1000;

  /** Samples per TS.MADD command, so no single command grows without bound. */
  @Transform(toInt) @IsInt() @Min(1) @Max(100000)
  TIMESERIES_MADD_CHUNK = 1000;

  // --- Sources (src/sources; docs/ingest.md "Sources") ------------------------------------------

  /**
   * Where price comes from: a comma-separated list of exchanges (coinbase, kraken, bitstamp),
   * each its own series, combined into a composite price (median of the venues' hourly means);
   * one name is that venue alone, as before. senticrypt-v1 only alone. Default all three
   * exchanges, but senticrypt-v1 when SENTIMENT_API_URL is set and this is not (upgrade safety).
   */
  @Transform(toList) @IsArray() @ArrayNotEmpty({ message: 'PRICE_SOURCE must name at least one source' })
  @ArrayUnique({ message: 'PRICE_SOURCE must not name a source twice' })
  @IsIn(PRICE_SOURCE_IDS, { each: true, message: `PRICE_SOURCE must be a comma-separated list of: ${PRICE_SOURCE_IDS.join(', ')}` })
  PRICE_SOURCE: PriceSourceId[] = [...DEFAULT_PRICE_SOURCES];

  /**
   * Composite price: in an hour, a venue more than this many percent from the median of the
   * other venues is left out of that hour (and counted in metrics.price). Percent, e.g. 2 or 0.5.
   */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'PRICE_OUTLIER_PCT must be a number of percent, e.g. 2 or 0.5' })
  @Min(0.01) @Max(50)
  PRICE_OUTLIER_PCT = 2;

  /**
   * A polled price more than this many percent from the venue's previous one, of less than
   * PRICE_STALE_AFTER_MS before, is an invalid record, not stored (docs/ingest.md). 0 turns it off.
   */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'PRICE_MAX_JUMP_PCT must be a number of percent, e.g. 20 (0: off)' })
  @Min(0) @Max(1000)
  PRICE_MAX_JUMP_PCT = 20;

  /**
   * Where sentiment comes from: senticrypt-v2 | fear-greed | senticrypt-v1. Default
   * senticrypt-v2, but senticrypt-v1 when SENTIMENT_API_URL is set and this is not.
   * senticrypt-v1 for both metrics or neither (v1MixProblems).
   */
  @IsIn(SENTIMENT_SOURCE_IDS)
  SENTIMENT_SOURCE: SentimentSourceId = DEFAULT_SENTIMENT_SOURCE;

  /** Coinbase Exchange base URL; /products/BTC-USD/ticker and /products/BTC-USD/candles are appended. */
  @IsUpstreamUrl('base')
  COINBASE_API_URL = 'https://api.exchange.coinbase.com';

  /** Bitstamp API v2 base URL; /ticker/btcusd/ and /ohlc/btcusd/ are appended. */
  @IsUpstreamUrl('base')
  BITSTAMP_API_URL = 'https://www.bitstamp.net/api/v2';

  /** Kraken public API base URL; /Ticker and /OHLC are appended. */
  @IsUpstreamUrl('base')
  KRAKEN_API_URL = 'https://api.kraken.com/0/public';

  /** SentiCrypt v2 base URL; /all.json is appended. */
  @IsUpstreamUrl('base')
  SENTICRYPT_V2_API_URL = 'https://api.senticrypt.com/v2';

  /** alternative.me base URL; /fng/ is appended. */
  @IsUpstreamUrl('base')
  FEAR_GREED_API_URL = 'https://api.alternative.me';

  /** Per-call timeout of every upstream call, redirects and body included (alias: SENTIMENT_API_TIMEOUT_MS). */
  @Transform(toInt) @IsInt() @Min(100) @TimerMax()
  UPSTREAM_TIMEOUT_MS = 10000;

  /** Retries of a transient upstream failure (network error, timeout, 5xx, 408, 429); other failures are not retried (alias: SENTIMENT_API_RETRIES). */
  @Transform(toInt) @IsInt() @Min(0) @Max(10)
  UPSTREAM_RETRIES = 2;

  /** First retry delay; doubled per retry, with jitter (alias: SENTIMENT_API_RETRY_BASE_MS). */
  @Transform(toInt) @IsInt() @Min(0)
  UPSTREAM_RETRY_BASE_MS = 500;

  /** Longest Retry-After (429/503) the client waits before retrying; an upstream asking for more fails the run at once and its source is skipped until then (docs/ingest.md). */
  @Transform(toInt) @IsInt() @Min(0) @Max(300000)
  UPSTREAM_RETRY_AFTER_MAX_MS = 10000;

  /**
   * Least time between two calls to one price venue (ms), retries included. Unset: each venue's
   * own spacing under its published limit (Kraken 1000, Coinbase 125, Bitstamp 100). Set it
   * for a mirror with other limits; tests shorten it.
   */
  @IsOptional() @Transform(toInt) @IsInt() @Min(0) @Max(60000)
  UPSTREAM_MIN_INTERVAL_MS?: number;

  /** User-Agent sent to every upstream; put a contact (URL or e-mail) in it for a public deployment. */
  @IsString() @Matches(/^[\x21-\x7e][\x20-\x7e]{0,199}$/, { message: 'UPSTREAM_USER_AGENT must be 1-200 printable ASCII characters' })
  UPSTREAM_USER_AGENT = DEFAULT_USER_AGENT;

  /** SentiCrypt v1 feed: the full URL (http://, https://, or file:// and an absolute path for replays). Setting it alone selects v1 for both metrics. */
  @IsUpstreamUrl('feed')
  SENTIMENT_API_URL = 'https://api.senticrypt.com/v1/bitcoin.json';

  /** Deprecated alias of UPSTREAM_TIMEOUT_MS (used when that is not set). */
  @Transform(toInt) @IsInt() @Min(100) @TimerMax()
  SENTIMENT_API_TIMEOUT_MS = 10000;

  /** Deprecated alias of UPSTREAM_RETRIES (used when that is not set). */
  @Transform(toInt) @IsInt() @Min(0) @Max(10)
  SENTIMENT_API_RETRIES = 2;

  /** Deprecated alias of UPSTREAM_RETRY_BASE_MS (used when that is not set). */
  @Transform(toInt) @IsInt() @Min(0)
  SENTIMENT_API_RETRY_BASE_MS = 500;

  /** Largest SentiCrypt v1 payload accepted, in bytes (the real feed is ~0.4 MB). */
  @Transform(toInt) @IsInt() @Min(1024)
  SENTIMENT_API_MAX_BYTES = 4 * 1024 * 1024;

  /** Run the ingest job on a schedule inside this process. */
  @Transform(toBool) @IsBoolean()
  INGEST_SCHEDULE_ENABLED = true;

  /** Pause between the end of one scheduled ingest run and the start of the next. */
  @Transform(toInt) @IsInt() @Min(1000) @TimerMax()
  INGEST_INTERVAL_MS = 30000;

  /**
   * How far ahead of this server's clock a sample's timestamp may be (clock skew). A record
   * dated further ahead is invalid, never stored: retention counts back from a series' newest
   * sample, so one sample dated years ahead would trim the whole history, and a poll only sends
   * samples newer than the newest stored, so nothing would be stored after it.
   */
  @Transform(toInt) @IsInt() @Min(0)
  INGEST_MAX_AHEAD_MS = 5 * 60 * 1000;

  /** Run one ingest at startup (in the background: startup does not wait for the upstream). */
  @Transform(toBool) @IsBoolean()
  INGEST_ON_STARTUP = true;

  /** Pause between runs of a source that serves only daily indices (senticrypt-v2, fear-greed). */
  @Transform(toInt) @IsInt() @Min(1000) @TimerMax()
  INGEST_DAILY_INTERVAL_MS = 10 * 60 * 1000;

  /**
   * Hours of history fetched when a source's series are empty (first start, Redis lost the data)
   * or have a gap, where the provider keeps history; 0 turns backfill off. Default 30 days: a
   * price venue's last 24 h at 1-minute resolution, the rest hourly (docs/ingest.md).
   */
  @Transform(toInt) @IsInt() @Min(0) @Max(24 * 30)
  BACKFILL_HOURS = 24 * 30;

  /** The summary flags price as stale when its newest sample is older than this (ms). */
  @Transform(toInt) @IsInt() @Min(1000)
  PRICE_STALE_AFTER_MS = 10 * 60 * 1000;

  /**
   * The summary flags sentiment as stale when its newest sample is older than this (ms). A daily
   * index's newest value is up to two days old: SentiCrypt v2 stores complete days only, so just
   * before midnight it is yesterday's 00:00 value, 48 h old (72 h leaves room for a late upstream).
   */
  @Transform(toInt) @IsInt() @Min(1000)
  SENTIMENT_STALE_AFTER_MS = 72 * 3600 * 1000;

  /** Hourly buckets in the summary, 2-168: a direction compares the last hour with the first, so one hour is always flat. */
  @Transform(toInt) @IsInt() @Min(2) @Max(168)
  SUMMARY_HOURS = 3;

  /**
   * End of the summary window: the latest stored sample, the current time, or `auto`: the
   * latest sample when both metrics come from the frozen SentiCrypt v1 feed, else now.
   */
  @IsIn(['auto', 'latest', 'now'])
  SUMMARY_ANCHOR: 'auto' | 'latest' | 'now' = 'auto';

  /** Seconds a computed summary stays in the shared Redis cache. */
  @Transform(toInt) @IsInt() @Min(1)
  CACHE_TTL_SECONDS = 120;

  /** Nest log levels up to this one are printed. */
  @IsIn(['fatal', 'error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';

  /** Live notifications (GET /events, WS /ws/notifications): a heartbeat is sent this often. */
  @Transform(toInt) @IsInt() @Min(50) @TimerMax()
  NOTIFY_HEARTBEAT_MS = 15000;

  /** Most SSE + WebSocket notification clients one instance serves; more get 503 (SSE and WebSocket handshakes). */
  @Transform(toInt) @IsInt() @Min(1)
  NOTIFY_MAX_CLIENTS = 1000;

  /**
   * Most notification clients one client IP may hold on an instance (the rate limit's IP: the
   * X-Forwarded-For client with TRUST_PROXY; an IPv6 client's /64); more get 429. Without it, one
   * address could take all NOTIFY_MAX_CLIENTS slots in half a second and lock everyone out.
   */
  @Transform(toInt) @IsInt() @Min(1)
  NOTIFY_MAX_CLIENTS_PER_IP = 50;

  /**
   * A notification client whose unsent output exceeds this many bytes is too slow and is
   * disconnected. 64 KiB holds some fifty ingest events, several minutes of them.
   */
  @Transform(toInt) @IsInt() @Min(1024)
  NOTIFY_MAX_BUFFER_BYTES = 64 * 1024;

  // --- Verdict alerts (webhooks) ---------------------------------------------------------------

  /**
   * Webhook receivers of `verdict.changed`, comma-separated: https:// URLs, or http:// to a
   * loopback host. Empty: no webhooks.
   */
  @Transform(toList) @IsArray() @ArrayUnique()
  ALERT_WEBHOOK_URLS: string[] = [];

  /** HMAC-SHA256 key of the `X-Signature` header; required (16+ characters) when ALERT_WEBHOOK_URLS is set. */
  @IsString()
  ALERT_WEBHOOK_SECRET = '';

  /**
   * While the secret is rotated: the one receivers may still verify with. Each webhook is then
   * signed with both (two v1 values in `X-Signature`); unset once every receiver has the new one.
   */
  @IsString()
  ALERT_WEBHOOK_PREVIOUS_SECRET = '';

  /** Timeout of one delivery attempt (ms): connect, request and response. */
  @Transform(toInt) @IsInt() @Min(100) @Max(60_000)
  ALERT_WEBHOOK_TIMEOUT_MS = 5000;

  /** Attempts of one delivery (the first included) before it is given up; only 5xx, 408, 429 and network errors are retried. */
  @Transform(toInt) @IsInt() @Min(1) @Max(100)
  ALERT_WEBHOOK_MAX_ATTEMPTS = 10;

  /** Delay before the second attempt (ms), doubled for each next one (with jitter) up to ALERT_WEBHOOK_RETRY_MAX_MS. */
  @Transform(toInt) @IsInt() @Min(10)
  ALERT_WEBHOOK_RETRY_BASE_MS = 5000;

  /** Longest delay between two attempts (ms), a receiver's Retry-After included. */
  @Transform(toInt) @IsInt() @Min(10)
  ALERT_WEBHOOK_RETRY_MAX_MS = 3_600_000;

  /** How often each instance looks for due deliveries it did not queue itself (ms). */
  @Transform(toInt) @IsInt() @Min(10) @Max(60_000)
  ALERT_WEBHOOK_POLL_MS = 1000;

  /**
   * Deliveries kept per receiver (queued, in flight or waiting for a retry); queueing one more
   * gives up the oldest, so a dead receiver and a flapping verdict cannot grow Redis without end.
   */
  @Transform(toInt) @IsInt() @Min(1) @Max(100_000)
  ALERT_WEBHOOK_MAX_PENDING = 100;

  /**
   * Lifetime of a receiver's queue keys in Redis (ms), refreshed by every instance serving the
   * receiver each time it looks for due deliveries or queues one: the queue of a receiver that
   * no instance serves any more (removed from ALERT_WEBHOOK_URLS, or its URL changed) is gone
   * this long after the last instance stopped serving it. At least 10 × (ALERT_WEBHOOK_POLL_MS +
   * ALERT_WEBHOOK_TIMEOUT_MS), the longest gap between two refreshes, and best over an hour
   * (shorter, a receiver served again may be sent the last change once more by catch-up).
   */
  @Transform(toInt) @IsInt() @Min(1000)
  ALERT_WEBHOOK_KEY_TTL_MS = 7 * 24 * 3_600_000;

  /**
   * Redis Cluster seed nodes, comma-separated host:port ("10.0.0.1:7000,10.0.0.2:7000"); the
   * rest of the cluster is discovered from them. Empty: one Redis server at REDIS_URL. When
   * set, REDIS_URL only supplies the username, password and TLS (rediss://) for every node,
   * and must not select a DB (a cluster has only DB 0).
   */
  @Transform(toList) @IsArray() @ArrayUnique()
  @Matches(HOST_PORT, { each: true, message: 'REDIS_CLUSTER_NODES must be a comma-separated list of host:port' })
  REDIS_CLUSTER_NODES: string[] = [];

  // --- History (GET /series…) and compactions -------------------------------------------

  /** RETENTION of the hourly compactions (TS.CREATERULE … 3600000) in ms; 0 keeps everything. Default 2 years. */
  @Transform(toInt) @IsInt() @Min(0)
  TIMESERIES_HOURLY_RETENTION_MS = 2 * 365 * 24 * 3600 * 1000;

  /** RETENTION of the daily compactions (TS.CREATERULE … 86400000) in ms; 0 keeps everything (the default). */
  @Transform(toInt) @IsInt() @Min(0)
  TIMESERIES_DAILY_RETENTION_MS = 0;

  /**
   * A third compaction tier of 5 minutes (off by default): sub-hour buckets that are multiples
   * of 5 min (5m, 15m, 30m) then read compactions instead of the raw series (24 h @ 5 min: about
   * half the time), for 6 more rules per series, which makes bulk writes (a first ingest, a
   * backfill) about a third slower on plain Redis (docs/performance.md). The dashboard reads
   * hourly buckets and does not need it.
   */
  @Transform(toBool) @IsBoolean()
  TIMESERIES_5MIN_TIER = false;

  /**
   * RETENTION of the 5-minute compactions (TS.CREATERULE … 300000) in ms, with
   * TIMESERIES_5MIN_TIER; 0 keeps everything. Default 7 days; older than this, such queries
   * read the raw series (TIMESERIES_RETENTION_MS).
   */
  @Transform(toInt) @IsInt() @Min(0)
  TIMESERIES_5MIN_RETENTION_MS = 7 * 24 * 3600 * 1000;

  /** Largest number of buckets one history query may return per series; more is a 400. */
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  SERIES_MAX_POINTS = 5000;

  /**
   * Most raw samples, as a time span, one history query may read (std.*, var.*, twa, a bucket no
   * compaction tier divides, GET /series/verdict, ranges the compactions do not cover yet),
   * counted up to the raw retention; more is a 400. On plain Redis such a read is one script
   * over every sample in range, so this bounds how long one read holds Redis (with the default
   * 30-day retention it only bites when TIMESERIES_RETENTION_MS is raised or 0). Default 31 days.
   */
  @Transform(toInt) @IsInt() @Min(60_000)
  SERIES_MAX_RAW_SPAN_MS = 31 * 24 * 3600 * 1000;

  /**
   * Raw reads of more than a day of samples that one instance runs at once; further ones wait
   * their turn (up to 16 per slot, then a 503 with Retry-After), so a burst of such queries
   * cannot queue seconds of Redis work ahead of every other command.
   */
  @Transform(toInt) @IsInt() @Min(1) @Max(64)
  SERIES_RAW_READS = 2;
  /**
   * Lease of the ingest lock (`<prefix>:lock:ingest:<source>`, `<prefix>:lock:ingest` for SentiCrypt v1) that makes N instances do one scheduled
   * run per tick between them. Renewed every third of it while a run lasts, so it only bounds
   * how long a crashed holder blocks the others.
   */
  @Transform(toInt) @IsInt() @Min(1000) @TimerMax()
  INGEST_LOCK_TTL_MS = 15000;

  /**
   * In-process copy of the shared Redis cache: an entry read from Redis is served from memory
   * for this long, then for up to as long again while one read refreshes it, so a response can
   * lag a change made in Redis by another instance by less than twice this (this instance's own
   * writes show at once). 0 = read Redis on every request.
   */
  @Transform(toInt) @IsInt() @Min(0) @Max(60000)
  CACHE_L1_TTL_MS = 1000;

  // --- Reliability, security and operations -------------------------------------------------

  /** Redis down at startup: `wait` up to REDIS_STARTUP_WAIT_MS then exit non-zero; `degraded` starts anyway, not ready until Redis answers. */
  @IsIn(['wait', 'degraded'])
  REDIS_STARTUP_MODE: 'wait' | 'degraded' = 'wait';

  /**
   * Readiness fails when the last successful ingest (any instance) is older than this (ms); 0 turns
   * the check off. With the schedule on, it must be greater than INGEST_INTERVAL_MS.
   */
  @Transform(toInt) @IsInt() @Min(0)
  HEALTH_INGEST_MAX_AGE_MS = 15 * 60 * 1000;

  /** Readiness gives a Redis PING this long before reporting it down (ms). */
  @Transform(toInt) @IsInt() @Min(10) @TimerMax()
  HEALTH_REDIS_TIMEOUT_MS = 1000;

  /**
   * Bearer token required by POST /refresh; unset disables the endpoint (403). 16 to 512
   * visible ASCII characters: anything else no Authorization header matches (src/common/bearer-token.ts).
   */
  @ValidateIf((o: EnvironmentVariables) => o.REFRESH_TOKEN !== '')
  @IsString() @Matches(/^[\x21-\x7e]{16,512}$/, { message: 'REFRESH_TOKEN must be 16 to 512 visible ASCII characters (no spaces): what an Authorization header can carry' })
  REFRESH_TOKEN = '';

  /** Rate limit window (ms), shared by all instances through Redis. */
  @Transform(toInt) @IsInt() @Min(1000)
  THROTTLE_TTL_MS = 60_000;

  /** Requests per client IP and route per window on every route except health, metrics, /docs, /docs-json, /docs-yaml and the cached summary; 0 turns this limit off. */
  @Transform(toInt) @IsInt() @Min(0)
  THROTTLE_LIMIT = 300;

  /** Stricter limit for POST /refresh, per client IP per window. */
  @Transform(toInt) @IsInt() @Min(1)
  THROTTLE_REFRESH_LIMIT = 5;

  /**
   * Behind a load balancer / ingress, whose X-Forwarded-For names the client (rate limits,
   * notification slots): the proxies' addresses or ranges, comma-separated (`10.0.0.0/8`,
   * `loopback`, `uniquelocal`…), so the client is the nearest address they did not send; or
   * `true` to believe every hop (the first entry, which the client itself wrote when the proxy
   * appends to the header rather than replaces it). `false`: the peer's address. No hop counts.
   */
  @Transform(toTrustProxy)
  @ValidateIf((_env: unknown, v: unknown) => typeof v !== 'boolean')
  @IsArray({ message: 'TRUST_PROXY must be true, false or a comma-separated list of proxy addresses or ranges' })
  TRUST_PROXY: TrustProxy = false;

  /**
   * Longest a client may take to send a whole request (headers and body), in ms; then 408 and
   * the connection is closed. Fastify's default (none) would let a client trickling a body hold
   * a connection forever. Responses (the SSE stream, a long ingest) are not limited by it.
   */
  @Transform(toInt) @IsInt() @Min(1000) @TimerMax()
  HTTP_REQUEST_TIMEOUT_MS = 30_000;

  /**
   * Comma-separated origins allowed by CORS (`*` for any); empty disables CORS. Each is compared
   * with the browser's Origin header as is, so it must be one: scheme://host[:port], no path.
   * Also which other sites' pages may open the WebSocket (NotificationsGateway, originAllowed).
   */
  @IsOptional() @IsString()
  @Matches(CORS_LIST, { message: 'CORS_ORIGINS must be * or comma-separated origins: scheme://host[:port], no path or trailing slash' })
  CORS_ORIGINS = '';

  /** On SIGTERM: how long in-flight requests and the shutdown may take before the process gives up and exits 1 (ms); upstream calls are aborted at once. */
  @Transform(toInt) @IsInt() @Min(1000) @TimerMax()
  SHUTDOWN_TIMEOUT_MS = 25_000;

  /**
   * On SIGTERM, how long to keep serving with readiness already 503 before the shutdown starts
   * (ms): a load balancer takes a few seconds to stop sending to an instance, and requests it
   * sends meanwhile to a closed port are refused. Counts within SHUTDOWN_TIMEOUT_MS. 0: none.
   */
  @Transform(toInt) @IsInt() @Min(0) @TimerMax()
  SHUTDOWN_DRAIN_MS = 0;

  /** Serve Prometheus metrics at /metrics. `false` also stops the process collectors (event loop lag, GC…) and request timing. */
  @Transform(toBool) @IsBoolean()
  METRICS_ENABLED = true;

  /**
   * Bearer token GET /metrics requires (`Authorization: Bearer <token>`, compared in constant
   * time; 401 otherwise). Empty: /metrics answers anyone who reaches it. At least 16 characters.
   */
  @ValidateIf((o: EnvironmentVariables) => o.METRICS_TOKEN !== '')
  @IsString() @Matches(/^[\x21-\x7e]{16,512}$/, { message: 'METRICS_TOKEN must be 16 to 512 visible ASCII characters (no spaces): what an Authorization header can carry' })
  METRICS_TOKEN = '';

  /** Serve /metrics on this port only (its own listener on HOST), not on PORT with the API; 0 = on PORT. */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535)
  METRICS_PORT = 0;

  /**
   * Serve Swagger UI at /docs and the OpenAPI document at /docs-json (a product feature, on by
   * default). A public deployment that does not need it turns it off: it is the one page of
   * third-party script (swagger-ui) the service serves, under a CSP that allows inline scripts.
   */
  @Transform(toBool) @IsBoolean()
  DOCS_ENABLED = true;

  /**
   * JSON, HTML and text answers of 1 KiB or more in gzip, when the client accepts it
   * (`Accept-Encoding`): a 30-day /series is ~45 KB of JSON, ~9 KB in gzip. Off behind a proxy
   * that compresses already, to spend no CPU on it twice.
   */
  @Transform(toBool) @IsBoolean()
  COMPRESSION_ENABLED = true;
}

export type Env = EnvironmentVariables;

// When the type is wrong, range messages are noise: report the type check alone.
const TYPE_CHECKS = ['isInt', 'isNumber', 'isBoolean', 'isIn', 'matches', 'isString', 'isNotEmpty'];

// Never echo these in an error message (it ends up in logs). Webhook URLs often carry a token
// (path, query) or credentials.
const SECRETS = ['REFRESH_TOKEN', 'METRICS_TOKEN', 'ALERT_WEBHOOK_SECRET', 'ALERT_WEBHOOK_PREVIOUS_SECRET', 'ALERT_WEBHOOK_URLS'];

/**
 * A URL with whatever precedes its last `@` (user and password) replaced by ***, and any
 * `?password=` too, parseable or not.
 */
function maskUrlSecrets(url: string): string {
  const at = url.lastIndexOf('@');
  const slashes = url.indexOf('//');
  const from = slashes >= 0 && slashes < at ? slashes + 2 : 0;
  return maskPasswordParams(at < 0 ? url : `${url.slice(0, from)}***${url.slice(at)}`);
}

function describe(errors: ValidationError[]): string {
  return errors
    .map((e) => {
      const constraints = e.constraints ?? {};
      const typeCheck = TYPE_CHECKS.find((name) => name in constraints);
      const msgs = typeCheck ? constraints[typeCheck] : Object.values(constraints).join('; ');
      const shown = SECRETS.includes(e.property)
        ? '"***"'
        : JSON.stringify(e.property.endsWith('_URL') && typeof e.value === 'string' ? maskUrlSecrets(e.value) : e.value);
      return `${e.property}=${shown}: ${msgs}`;
    })
    .join('\n  ');
}

/** ConfigModule `validate` hook: typed defaults, conversion, and errors that name the variable. */
export function validateEnv(raw: Record<string, unknown>): EnvironmentVariables {
  // Empty strings mean "unset" (docker-compose often passes VAR= ), so defaults apply.
  const cleaned = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ''));
  const setExplicitly = new Set(Object.keys(cleaned));
  applyUpgradeDefaults(cleaned);
  const env = plainToInstance(EnvironmentVariables, cleaned, { exposeDefaultValues: true });
  const errors = validateSync(env, { skipMissingProperties: false, forbidUnknownValues: false });
  const problems = errors.length > 0 ? [describe(errors)] : [];
  // Braces only as a {hash tag}: without one no companion key (compaction, meta) can share its
  // series' cluster slot, and sameSlotKey would throw at the first write instead of here.
  const prefix = env.REDIS_KEY_PREFIX;
  if (typeof prefix === 'string' && /[{}]/.test(prefix) && !/[^A-Za-z0-9_.:{}-]/.test(prefix) && !hasHashTag(prefix)) {
    problems.push(`REDIS_KEY_PREFIX=${JSON.stringify(prefix)}: braces only around a non-empty hash tag, e.g. {is-bitcoin-lit} (docs/cluster.md)`);
  }
  const redisUrlOk = typeof env.REDIS_URL === 'string' && /^rediss?:\/\/[^\s]+$/.test(env.REDIS_URL);
  const urlProblem = redisUrlOk ? redisUrlProblem(env.REDIS_URL) : undefined;
  if (urlProblem) problems.push(`REDIS_URL=${JSON.stringify(maskUrlSecrets(env.REDIS_URL))}: ${urlProblem}`);
  if (env.REDIS_CLUSTER_NODES?.length > 0 && redisUrlOk && !urlProblem) {
    const db = redisUrlDb(env.REDIS_URL);
    if (db !== 0) problems.push(`REDIS_URL: selects DB ${db}, but a Redis Cluster (REDIS_CLUSTER_NODES) has only DB 0`);
  }
  if (Array.isArray(env.PRICE_SOURCE) && env.PRICE_SOURCE.length > 1 && env.PRICE_SOURCE.includes(V1_SOURCE)) {
    problems.push(
      `PRICE_SOURCE=${JSON.stringify(env.PRICE_SOURCE.join(','))}: ${V1_SOURCE} cannot be combined with other price sources (the frozen v1 feed is used alone)`,
    );
  }
  problems.push(...v1MixProblems(env, setExplicitly));
  if (env.SHUTDOWN_DRAIN_MS >= env.SHUTDOWN_TIMEOUT_MS) {
    problems.push(`SHUTDOWN_DRAIN_MS=${env.SHUTDOWN_DRAIN_MS} must be shorter than SHUTDOWN_TIMEOUT_MS=${env.SHUTDOWN_TIMEOUT_MS} (the drain counts within it)`);
  }
  // Runs start INGEST_INTERVAL_MS after the previous one ends: a shorter allowed age turns every
  // instance unready between two successful runs.
  if (env.INGEST_SCHEDULE_ENABLED === true && env.HEALTH_INGEST_MAX_AGE_MS > 0 && env.HEALTH_INGEST_MAX_AGE_MS <= env.INGEST_INTERVAL_MS) {
    problems.push(
      `HEALTH_INGEST_MAX_AGE_MS=${env.HEALTH_INGEST_MAX_AGE_MS}: must be greater than INGEST_INTERVAL_MS (${env.INGEST_INTERVAL_MS}), well above it to ride out a failed run, or 0 to turn the check off`,
    );
  }
  if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) {
    problems.push(`METRICS_PORT=${env.METRICS_PORT}: must differ from PORT (0 serves /metrics on PORT)`);
  }
  problems.push(...alertProblems(env));
  if (Array.isArray(env.TRUST_PROXY)) {
    try {
      trustFunction(env.TRUST_PROXY);
    } catch (err) {
      problems.push(`TRUST_PROXY: ${(err as Error).message} (addresses or ranges such as 10.0.0.0/8, or loopback, linklocal, uniquelocal)`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  // After validation, so a bad old value is reported under the name that was set.
  for (const [current, old] of DEPRECATED_ALIASES) {
    if (!(current in cleaned) && old in cleaned) env[current] = env[old];
  }
  return env;
}

/**
 * senticrypt-v1 for one metric only: its samples are the frozen feed's day of 2021, the other
 * metric's are live, so a summary window never holds both and the verdict is `unknown` forever.
 * Reported only when both settings are otherwise valid (their own rules name them).
 */
function v1MixProblems(env: EnvironmentVariables, setExplicitly: Set<string>): string[] {
  const price = Array.isArray(env.PRICE_SOURCE) ? env.PRICE_SOURCE : [];
  const priceV1 = price.length === 1 && price[0] === V1_SOURCE;
  const priceLive = price.length > 0 && price.every((id) => id !== V1_SOURCE && PRICE_SOURCE_IDS.includes(id));
  const sentimentV1 = env.SENTIMENT_SOURCE === V1_SOURCE;
  const sentimentLive = !sentimentV1 && SENTIMENT_SOURCE_IDS.includes(env.SENTIMENT_SOURCE);
  if (!(priceV1 && sentimentLive) && !(priceLive && sentimentV1)) return [];
  const [v1Name, otherName, otherValue, live] = priceV1
    ? ['PRICE_SOURCE', 'SENTIMENT_SOURCE', env.SENTIMENT_SOURCE, 'live venues (coinbase, kraken, bitstamp)']
    : ['SENTIMENT_SOURCE', 'PRICE_SOURCE', price.join(','), 'a live source (senticrypt-v2, fear-greed)'];
  const defaulted = setExplicitly.has(v1Name) ? '' : ' (its default when SENTIMENT_API_URL is set)';
  return [
    `${v1Name}="${V1_SOURCE}"${defaulted} with ${otherName}=${JSON.stringify(otherValue)}: ${V1_SOURCE} is the frozen 2021 feed and serves both metrics or neither ` +
      `(with the other metric live no summary window holds both: verdict unknown forever); set ${v1Name} to ${live}, or ${otherName}=${V1_SOURCE} to replay the feed`,
  ];
}

/** Webhook receivers: each URL allowed (named by its position, never echoed: it may carry a token), and a secret to sign with. */
function alertProblems(env: EnvironmentVariables): string[] {
  const urls = Array.isArray(env.ALERT_WEBHOOK_URLS) ? env.ALERT_WEBHOOK_URLS : [];
  const problems = urls.flatMap((url, i) => {
    const problem = receiverUrlProblem(url);
    return problem ? [`ALERT_WEBHOOK_URLS: URL #${i + 1} ${problem}`] : [];
  });
  // Two spellings of one URL (host case, default port…) would be two receivers, each sent every change.
  const canonical = urls.map((url) => URL.canParse(url) ? new URL(url).href : url);
  canonical.forEach((url, i) => {
    const first = canonical.indexOf(url);
    if (first < i) problems.push(`ALERT_WEBHOOK_URLS: URL #${i + 1} is URL #${first + 1} written another way (one receiver, it would get every change twice)`);
  });
  if (urls.length > 0 && (typeof env.ALERT_WEBHOOK_SECRET !== 'string' || env.ALERT_WEBHOOK_SECRET.length < 16)) {
    problems.push('ALERT_WEBHOOK_SECRET: must be set (16+ characters) when ALERT_WEBHOOK_URLS is, to sign the webhooks');
  }
  const previous = env.ALERT_WEBHOOK_PREVIOUS_SECRET;
  if (typeof previous === 'string' && previous !== '' && (previous.length < 16 || previous === env.ALERT_WEBHOOK_SECRET)) {
    problems.push('ALERT_WEBHOOK_PREVIOUS_SECRET: when set, 16+ characters and not ALERT_WEBHOOK_SECRET (it is the secret being replaced)');
  }
  // A served receiver refreshes its keys at least once per poll plus attempt: far more often than they expire.
  const refreshMs = env.ALERT_WEBHOOK_POLL_MS + env.ALERT_WEBHOOK_TIMEOUT_MS;
  if (Number.isInteger(env.ALERT_WEBHOOK_KEY_TTL_MS) && Number.isInteger(refreshMs) && env.ALERT_WEBHOOK_KEY_TTL_MS < 10 * refreshMs) {
    problems.push(
      `ALERT_WEBHOOK_KEY_TTL_MS=${env.ALERT_WEBHOOK_KEY_TTL_MS}: must be at least 10 × (ALERT_WEBHOOK_POLL_MS + ALERT_WEBHOOK_TIMEOUT_MS) = ${10 * refreshMs}, so a served receiver's queue never expires`,
    );
  }
  return problems;
}

/** Old names still honoured: [new, old]. The new name wins when both are set. */
type NumericAlias = 'SENTIMENT_API_TIMEOUT_MS' | 'SENTIMENT_API_RETRIES' | 'SENTIMENT_API_RETRY_BASE_MS';
const DEPRECATED_ALIASES: ReadonlyArray<['UPSTREAM_TIMEOUT_MS' | 'UPSTREAM_RETRIES' | 'UPSTREAM_RETRY_BASE_MS', NumericAlias]> = [
  ['UPSTREAM_TIMEOUT_MS', 'SENTIMENT_API_TIMEOUT_MS'],
  ['UPSTREAM_RETRIES', 'SENTIMENT_API_RETRIES'],
  ['UPSTREAM_RETRY_BASE_MS', 'SENTIMENT_API_RETRY_BASE_MS'],
];

/**
 * Upgrade safety: every deployment before live sources set SENTIMENT_API_URL (the v1 feed) and
 * nothing else, and must keep working exactly as before: v1 for both metrics. So an explicit
 * SENTIMENT_API_URL makes senticrypt-v1 the default of any of PRICE_SOURCE / SENTIMENT_SOURCE
 * not set. Without it the defaults are the live coinbase + senticrypt-v2.
 */
function applyUpgradeDefaults(env: Record<string, unknown>): void {
  if ('SENTIMENT_API_URL' in env) {
    if (!('PRICE_SOURCE' in env)) env.PRICE_SOURCE = 'senticrypt-v1';
    if (!('SENTIMENT_SOURCE' in env)) env.SENTIMENT_SOURCE = 'senticrypt-v1';
  }
}

/**
 * What ioredis would refuse or misread in a URL that passed the redis:// pattern: it parses it
 * with WHATWG URL (a bad port or host throws "Invalid URL" at startup, naming nothing) and
 * selects DB Number(path) (a path like /abc selects DB NaN).
 */
function redisUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a valid URL (host, then an optional port 1-65535 and /DB index)';
  }
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) return 'the path must be a DB index (a number), e.g. redis://host:6379/2';
  // ioredis reads ?db= too: a non-number there made it send SELECT NaN, an uncaught error.
  const query = u.searchParams.get('db');
  if (query !== null && !/^\d+$/.test(query)) return 'db= must be a DB index (a number), e.g. redis://host:6379?db=2';
  return undefined;
}

/** Redis's hash-tag rule (as src/redis/key-slot.ts hashTag; config imports no feature): a non-empty `{…}`. */
function hasHashTag(key: string): boolean {
  const open = key.indexOf('{');
  return open >= 0 && key.indexOf('}', open + 1) > open + 1;
}

/** The DB index a redis:// URL selects (path `/N` or `?db=N`, as ioredis reads it); 0 by default. */
function redisUrlDb(url: string): number | string {
  try {
    const u = new URL(url);
    const raw = u.pathname.replace(/^\//, '') || (u.searchParams.get('db') ?? '');
    return raw === '' ? 0 : /^\d+$/.test(raw) ? Number(raw) : raw;
  } catch {
    return 0; // an unparseable URL is reported by its own rule
  }
}
