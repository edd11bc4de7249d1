import { Module, RequestMethod } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { LoggerModule as PinoLoggerModule } from 'nestjs-pino';
import { destination, type DestinationStream } from 'pino';
import { Env } from '../config/env.validation.js';
import { requestIdOf } from './request-id.js';

// Nest's level names → pino's.
const PINO_LEVEL = { fatal: 'fatal', error: 'error', warn: 'warn', log: 'info', debug: 'debug', verbose: 'trace' } as const;

/**
 * JSON logs (pino via nestjs-pino): one object per line, the request id (`reqId`) on every line
 * logged while serving a request, level from LOG_LEVEL. Credentials never reach a log line.
 *
 * Written to stdout synchronously, like console.log to a pipe. pino's default destination writes
 * asynchronously, and process.exit (main.ts, after a graceful shutdown) flushes what is buffered
 * while an earlier write may still be pending: with a slow reader (a loaded machine, a busy log
 * collector) the last lines came out of order or were lost, e.g. "ingest ok" after
 * "Redis connection closed" although the run had finished first.
 */
@Module({
  imports: [
    PinoLoggerModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) => ({
        // nestjs-pino's default route pattern ('{/*splat}') matches nothing on Nest 12 + Fastify.
        forRoutes: [{ path: '*path', method: RequestMethod.ALL }],
        pinoHttp: [
          {
            level: PINO_LEVEL[config.get('LOG_LEVEL', { infer: true })],
            genReqId: (req) => requestIdOf(req),
            redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]'], censor: '***' },
            customLogLevel: (req, res, err) => accessLogLevel(req.url ?? '', res.statusCode, err !== undefined),
            serializers: {
              // The URL's path only (loggedPath).
              req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, path: loggedPath(req.url) }),
              res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
              // pino-http makes up an Error (with a stack) for every 5xx; the status says it all.
              err: (err: { type?: string; message?: string }) => ({ type: err.type, message: err.message }),
            },
          },
          logDestination(),
        ],
      }),
    }),
  ],
})
export class LoggerModule {}

/** Where log lines go (`fd`: stdout), each written before the logging call returns (see LoggerModule). */
export function logDestination(fd = 1): DestinationStream {
  return destination({ dest: fd, sync: true });
}

/** Longest request path written to a log line; a longer one is cut (the header limit, 16 KiB, bounds it otherwise). */
const MAX_LOGGED_PATH = 512;

/**
 * A request target as logged: its path only, capped. No query string (user input of any size,
 * maybe a token), nor an absolute-form target's scheme, host and credentials
 * (`GET http://user:password@host/path`).
 */
export function loggedPath(url: string | undefined): string {
  let path = (url ?? '').split('?')[0];
  if (!path.startsWith('/') && URL.canParse(path)) path = new URL(path).pathname;
  return path.length > MAX_LOGGED_PATH ? `${path.slice(0, MAX_LOGGED_PATH)}…` : path;
}

/** Whether requests for `path` are logged at debug, not info (probes and scrapes: many, and routine). */
export function isRoutinePath(path: string): boolean {
  return /^\/(health|metrics)\b/.test(path);
}

/**
 * The level of a request's access line: info; warn for 502-504 (Redis or an upstream away:
 * expected, and the reason is logged where it happened); error for other 5xx. Probes and scrapes
 * at debug, a readiness probe's 503 too: "not ready" is its answer, asked every few seconds, and
 * why is logged where it happened (a warn a probe each was six a minute per pod). `failed`:
 * pino-http's error, which it also makes up for every 5xx.
 */
export function accessLogLevel(url: string, status: number, failed: boolean): 'debug' | 'info' | 'warn' | 'error' {
  const routine = isRoutinePath(url);
  if (routine && (status < 500 || status === 503)) return 'debug';
  if (status >= 502 && status <= 504) return 'warn';
  if (failed || status >= 500) return 'error';
  return 'info';
}
