import { plainToInstance, Transform } from 'class-transformer';
import {
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  ValidateIf,
  validateSync,
  ValidationError,
} from 'class-validator';

const toBool = ({ value }: { value: unknown }) => {
  if (typeof value === 'boolean') return value;
  const v = String(value).trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return value; // left as is so @IsBoolean reports it
};
const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
const toList = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? value.split(',').map((v) => v.trim()).filter((v) => v !== '') : value;

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

  /** Interface to listen on. */
  @IsString() @IsNotEmpty()
  HOST = '0.0.0.0';

  /** redis:// or rediss:// URL, with optional user:password and /db index. */
  @Matches(/^rediss?:\/\/[^\s]+$/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL = 'redis://127.0.0.1:6379';

  /** Prefix of every key the service writes (cache, series, locks). */
  @Matches(/^[A-Za-z0-9_.:{}-]+$/, { message: 'REDIS_KEY_PREFIX may only contain letters, digits and _ . : { } -' })
  REDIS_KEY_PREFIX = 'is-bitcoin-lit';

  /** TCP connect timeout per attempt. */
  @Transform(toInt) @IsInt() @Min(100)
  REDIS_CONNECT_TIMEOUT_MS = 5000;

  /** A command without a reply after this long fails (so requests never hang on Redis). */
  @Transform(toInt) @IsInt() @Min(10)
  REDIS_COMMAND_TIMEOUT_MS = 2000;

  /** How often a command is retried across reconnects before it fails. */
  @Transform(toInt) @IsInt() @Min(0) @Max(20)
  REDIS_MAX_RETRIES_PER_REQUEST = 1;

  /** Reconnect backoff: first delay, doubled per attempt up to REDIS_RETRY_MAX_MS, plus jitter. */
  @Transform(toInt) @IsInt() @Min(10)
  REDIS_RETRY_BASE_MS = 100;

  @Transform(toInt) @IsInt() @Min(10)
  REDIS_RETRY_MAX_MS = 5000;

  /** How long startup waits for Redis before giving up with a one-line error. */
  @Transform(toInt) @IsInt() @Min(0)
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

  /** SentiCrypt v1 feed (http://, https:// or file:// for replays). */
  @Matches(/^(https?|file):\/\/\S+$/, { message: 'SENTIMENT_API_URL must be an http://, https:// or file:// URL' })
  SENTIMENT_API_URL = 'https://api.senticrypt.com/v1/bitcoin.json';

  /** Per-call upstream timeout. */
  @Transform(toInt) @IsInt() @Min(100)
  SENTIMENT_API_TIMEOUT_MS = 10000;

  /** Retries of a transient upstream failure (network error, timeout, 5xx, 429); 4xx and bad payloads are not retried. */
  @Transform(toInt) @IsInt() @Min(0) @Max(10)
  SENTIMENT_API_RETRIES = 2;

  /** First retry delay; doubled per retry, with jitter. */
  @Transform(toInt) @IsInt() @Min(0)
  SENTIMENT_API_RETRY_BASE_MS = 500;

  /** Largest upstream payload accepted, in bytes. */
  @Transform(toInt) @IsInt() @Min(1024)
  SENTIMENT_API_MAX_BYTES = 50 * 1024 * 1024;

  /** Run the ingest job on a schedule inside this process. */
  @Transform(toBool) @IsBoolean()
  INGEST_SCHEDULE_ENABLED = true;

  /** Pause between the end of one scheduled ingest run and the start of the next. */
  @Transform(toInt) @IsInt() @Min(1000)
  INGEST_INTERVAL_MS = 30000;

  /** Run one ingest at startup (in the background: startup does not wait for the upstream). */
  @Transform(toBool) @IsBoolean()
  INGEST_ON_STARTUP = true;

  /** Hourly buckets in the summary. */
  @Transform(toInt) @IsInt() @Min(1) @Max(168)
  SUMMARY_HOURS = 3;

  /** End of the summary window: the latest stored sample, or the current time. */
  @IsIn(['latest', 'now'])
  SUMMARY_ANCHOR: 'latest' | 'now' = 'latest';

  /** Seconds a computed summary stays in the shared Redis cache. */
  @Transform(toInt) @IsInt() @Min(1)
  CACHE_TTL_SECONDS = 120;

  /** Nest log levels up to this one are printed. */
  @IsIn(['fatal', 'error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';

  /** Live notifications (GET /events, WS /ws/notifications): a heartbeat is sent this often. */
  @Transform(toInt) @IsInt() @Min(50)
  NOTIFY_HEARTBEAT_MS = 15000;

  /** Most SSE + WebSocket notification clients one instance serves; more get 503 / close code 1013. */
  @Transform(toInt) @IsInt() @Min(1)
  NOTIFY_MAX_CLIENTS = 1000;

  /** A notification client whose unsent output exceeds this many bytes is too slow and is disconnected. */
  @Transform(toInt) @IsInt() @Min(1024)
  NOTIFY_MAX_BUFFER_BYTES = 1024 * 1024;

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

  /** Largest number of buckets one history query may return per series; more is a 400. */
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  SERIES_MAX_POINTS = 5000;
  /**
   * Lease of the ingest lock (`<prefix>:lock:ingest`) that makes N instances do one scheduled
   * run per tick between them. Renewed every third of it while a run lasts, so it only bounds
   * how long a crashed holder blocks the others.
   */
  @Transform(toInt) @IsInt() @Min(1000)
  INGEST_LOCK_TTL_MS = 15000;

  /**
   * In-process copy of the shared Redis cache: an entry read from Redis is served from memory
   * for this long, so a response can lag a change made in Redis by another instance by at most
   * this much (this instance's own writes show at once). 0 = read Redis on every request.
   */
  @Transform(toInt) @IsInt() @Min(0) @Max(60000)
  CACHE_L1_TTL_MS = 1000;

  // --- Reliability, security and operations -------------------------------------------------

  /** Redis down at startup: `wait` up to REDIS_STARTUP_WAIT_MS then exit non-zero; `degraded` starts anyway, not ready until Redis answers. */
  @IsIn(['wait', 'degraded'])
  REDIS_STARTUP_MODE: 'wait' | 'degraded' = 'wait';

  /** Readiness fails when the last successful ingest (any instance) is older than this (ms); 0 turns the check off. */
  @Transform(toInt) @IsInt() @Min(0)
  HEALTH_INGEST_MAX_AGE_MS = 15 * 60 * 1000;

  /** Readiness gives a Redis PING this long before reporting it down (ms). */
  @Transform(toInt) @IsInt() @Min(10)
  HEALTH_REDIS_TIMEOUT_MS = 1000;

  /** Bearer token required by POST /refresh; unset disables the endpoint (403). At least 16 characters. */
  @ValidateIf((o: EnvironmentVariables) => o.REFRESH_TOKEN !== '')
  @IsString() @MinLength(16, { message: 'REFRESH_TOKEN must be at least 16 characters' })
  REFRESH_TOKEN = '';

  /** Rate limit window (ms), shared by all instances through Redis. */
  @Transform(toInt) @IsInt() @Min(1000)
  THROTTLE_TTL_MS = 60_000;

  /** Requests per client IP per window on every route except health, metrics and the cached summary; 0 turns rate limiting off. */
  @Transform(toInt) @IsInt() @Min(0)
  THROTTLE_LIMIT = 300;

  /** Stricter limit for POST /refresh, per client IP per window. */
  @Transform(toInt) @IsInt() @Min(1)
  THROTTLE_REFRESH_LIMIT = 5;

  /** Trust X-Forwarded-For (set when behind a load balancer / ingress, so limits apply per real client). */
  @Transform(toBool) @IsBoolean()
  TRUST_PROXY = false;

  /** Comma-separated origins allowed by CORS (`*` for any); empty disables CORS. */
  @IsOptional() @IsString()
  CORS_ORIGINS = '';

  /** On SIGTERM: how long the in-flight ingest run and requests may take before the process gives up and exits 1 (ms). */
  @Transform(toInt) @IsInt() @Min(1000)
  SHUTDOWN_TIMEOUT_MS = 25_000;

  /** Serve Prometheus metrics at /metrics. `false` also stops the process collectors (event loop lag, GC…) and request timing. */
  @Transform(toBool) @IsBoolean()
  METRICS_ENABLED = true;

  /**
   * Bearer token GET /metrics requires (`Authorization: Bearer <token>`, compared in constant
   * time; 401 otherwise). Empty: /metrics answers anyone who reaches it. At least 16 characters.
   */
  @ValidateIf((o: EnvironmentVariables) => o.METRICS_TOKEN !== '')
  @IsString() @MinLength(16, { message: 'METRICS_TOKEN must be at least 16 characters' })
  METRICS_TOKEN = '';

  /** Serve /metrics on this port only (its own listener on HOST), not on PORT with the API; 0 = on PORT. */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535)
  METRICS_PORT = 0;

  /**
   * Serve Swagger UI at /docs and the OpenAPI document at /docs-json. Off by default: a public
   * deployment does not need it, and it is the one page of third-party script (swagger-ui) the
   * service would serve, under a CSP that has to allow inline scripts. Turn on for development.
   */
  @Transform(toBool) @IsBoolean()
  DOCS_ENABLED = false;
}

export type Env = EnvironmentVariables;

// When the type is wrong, range messages are noise: report the type check alone.
const TYPE_CHECKS = ['isInt', 'isBoolean', 'isIn', 'matches', 'isString', 'isNotEmpty'];

// Never echo these in an error message (it ends up in logs).
const SECRETS = ['REFRESH_TOKEN', 'METRICS_TOKEN'];

function describe(errors: ValidationError[]): string {
  return errors
    .map((e) => {
      const constraints = e.constraints ?? {};
      const typeCheck = TYPE_CHECKS.find((name) => name in constraints);
      const msgs = typeCheck ? constraints[typeCheck] : Object.values(constraints).join('; ');
      const shown = SECRETS.includes(e.property) ? '"***"' : JSON.stringify(e.value);
      return `${e.property}=${shown}: ${msgs}`;
    })
    .join('\n  ');
}

/** ConfigModule `validate` hook: typed defaults, conversion, and errors that name the variable. */
export function validateEnv(raw: Record<string, unknown>): EnvironmentVariables {
  // Empty strings mean "unset" (docker-compose often passes VAR= ), so defaults apply.
  const cleaned = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ''));
  const env = plainToInstance(EnvironmentVariables, cleaned, { exposeDefaultValues: true });
  const errors = validateSync(env, { skipMissingProperties: false, forbidUnknownValues: false });
  const problems = errors.length > 0 ? [describe(errors)] : [];
  if (env.REDIS_CLUSTER_NODES?.length > 0 && /^rediss?:\/\/[^\s]+$/.test(env.REDIS_URL)) {
    const db = redisUrlDb(env.REDIS_URL);
    if (db !== 0) problems.push(`REDIS_URL: selects DB ${db}, but a Redis Cluster (REDIS_CLUSTER_NODES) has only DB 0`);
  }
  if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) {
    problems.push(`METRICS_PORT=${env.METRICS_PORT}: must differ from PORT (0 serves /metrics on PORT)`);
  }
  if (problems.length > 0) {
    throw new Error(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return env;
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
