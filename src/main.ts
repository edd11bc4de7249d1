import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { INestApplication, LoggerService } from '@nestjs/common';
import type { Env } from './config/env.validation.js';

async function main(): Promise<void> {
  // Before anything else, even loading Nest and the app (a second or more): a signal during
  // startup, which can also wait for Redis for a while, then ends it with exit 0.
  const shutdown = exitOnSignals();
  // A throw no handler caught (a timer, an event listener, a rejected promise nothing awaited):
  // the same graceful shutdown, exit 1, instead of dying mid-write with leases still held.
  process.on('uncaughtException', (err, origin) => shutdown.crashed(err, origin));
  // .env under the real environment (which wins), before anything reads either: createApp sets
  // up Fastify (TRUST_PROXY) and the logger (LOG_LEVEL) before ConfigModule would load .env.
  if (existsSync('.env')) process.loadEnvFile('.env');
  const [{ createApp }, { ConfigService }, { Logger }, { HealthController }] = await Promise.all([
    import('./app.factory.js'),
    import('@nestjs/config'),
    import('@nestjs/common'),
    import('./health/health.controller.js'),
  ]);
  const app = await createApp();
  const config = app.get(ConfigService<Env, true>);
  const port = config.get('PORT', { infer: true });
  const host = config.get('HOST', { infer: true });
  // Before listen: listening starts the startup ingest and the webhook loops, which a signal must shut down gracefully.
  const drainMs = config.get('SHUTDOWN_DRAIN_MS', { infer: true });
  // The drain: readiness red at once, the shutdown itself drainMs later.
  const drain = () => app.get(HealthController).beforeApplicationShutdown();
  shutdown.started({ app, timeoutMs: config.get('SHUTDOWN_TIMEOUT_MS', { infer: true }), drainMs, drain, logger: new Logger('Shutdown') });
  await app.listen(port, host);
  const docs = config.get('DOCS_ENABLED', { infer: true }) ? 'Swagger UI at /docs' : 'Swagger UI off: DOCS_ENABLED=false';
  // The URL is one to reach it from this machine (Nest gives 127.0.0.1 for 0.0.0.0); the address is what is exposed.
  const bound = app.getHttpServer().address() as AddressInfo;
  const exposed = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  new Logger('Bootstrap').log(`Listening on ${await app.getUrl()} (bound to ${exposed}; ${docs})`);
  shutdown.listening();
}

/**
 * An uncaught exception (or a promise rejection nothing handled, which Node raises as one) is
 * logged at fatal level with its stack (on stderr if the log cannot be written), then shuts the
 * process down as SIGTERM does (drain included), but exits 1: in-flight requests are answered,
 * Redis is quit and leases are released. During startup it exits 1 at once with one line. Each
 * one during the shutdown is logged and the shutdown goes on; SHUTDOWN_TIMEOUT_MS bounds it.
 *
 * SIGTERM/SIGINT: readiness 503, and SHUTDOWN_DRAIN_MS of serving as usual (0 by default) while a
 * load balancer stops sending; then abort upstream calls in flight (the ingest run in progress ends as a failure),
 * stop the schedule, let in-flight requests finish, close the HTTP server, QUIT Redis, then exit
 * 0 (Nest's own signal hooks re-raise the signal, which exits 143). After SHUTDOWN_TIMEOUT_MS it
 * gives up and exits 1. A signal during startup exits 0 at once (nothing is served yet); one
 * while the app starts listening (its startup work begins then) shuts it down gracefully once it
 * listens (closing it mid-listen failed the startup). A second signal changes nothing (an
 * orchestrator repeating SIGTERM must not cut the graceful shutdown short).
 */
interface Running {
  app: INestApplication;
  timeoutMs: number;
  /** SHUTDOWN_DRAIN_MS, and what turns readiness red for it. */
  drainMs: number;
  drain: () => void;
  logger: LoggerService;
}

/** An uncaught error's stack (or value) for the log, capped: a thrown value may be anything. */
function describeUncaught(err: unknown): string {
  let text: string;
  try {
    text = err instanceof Error ? String(err.stack ?? `${err.name}: ${err.message}`) : `non-Error value thrown: ${typeof err}`;
  } catch {
    text = 'an error whose stack could not be read';
  }
  return text.length > 4096 ? `${text.slice(0, 4096)}…` : text;
}

function exitOnSignals(): { started(running: Running): void; listening(): void; crashed(err: unknown, origin: string): void } {
  let closing = false;
  let exitCode = 0;
  let running: Running | undefined;
  let listening = false;
  let closeWhenListening = false;
  const close = () => {
    const { app, drainMs, drain, logger } = running!;
    if (drainMs > 0) {
      drain();
      logger.log(`readiness is 503; serving ${drainMs} ms more (SHUTDOWN_DRAIN_MS) before closing`);
      setTimeout(() => closeNow(app), drainMs);
    } else {
      closeNow(app);
    }
  };
  const closeNow = (app: INestApplication) => {
    app.close().then(
      () => process.exit(exitCode),
      (err: unknown) => {
        process.stderr.write(`is-bitcoin-lit: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      running?.logger.log(`${signal}: already shutting down`);
      return;
    }
    closing = true;
    if (running === undefined) {
      process.stderr.write(`is-bitcoin-lit: ${signal} during startup; exiting\n`);
      process.exit(0);
    }
    running.logger.log(`${signal}: shutting down gracefully`);
    shutDown();
  };
  const crashed = (err: unknown, origin: string) => {
    exitCode = 1;
    // Also for an exit without process.exit (the event loop emptied during the shutdown).
    process.exitCode = 1;
    if (running === undefined) {
      // Before the logger and the app exist: one line, as for any failed startup.
      const first = describeUncaught(err).split('\n', 1)[0];
      process.stderr.write(`is-bitcoin-lit failed to start: ${origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception'}: ${first}\n`);
      process.exit(1);
    }
    const what = origin === 'unhandledRejection' ? 'unhandled promise rejection' : 'uncaught exception';
    const line = `${what}; ${closing ? 'already shutting down' : 'shutting down gracefully, then exit 1'}\n${describeUncaught(err)}`;
    try {
      running.logger.fatal?.(line);
    } catch {
      // The log itself failed (stdout gone: EIO, ENOSPC): a throw here would exit 7 at once.
      try {
        process.stderr.write(`is-bitcoin-lit: ${line}\n`);
      } catch {
        // Nowhere left to say it; the shutdown still runs.
      }
    }
    if (closing) return;
    closing = true;
    shutDown();
  };
  const shutDown = () => {
    const { timeoutMs } = running!;
    setTimeout(() => {
      process.stderr.write(`is-bitcoin-lit: shutdown took longer than ${timeoutMs} ms; exiting\n`);
      process.exit(1);
    }, timeoutMs).unref();
    if (listening) close();
    else closeWhenListening = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    crashed,
    started: (what) => void (running = what),
    listening: () => {
      listening = true;
      if (closeWhenListening) close();
    },
  };
}

main().catch((err: unknown) => {
  // One line: the reason (bad config, Redis unreachable…), no stack trace.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`is-bitcoin-lit failed to start: ${message}\n`);
  process.exit(1);
});
