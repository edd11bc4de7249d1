import { existsSync } from 'node:fs';
import { INestApplication, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createApp } from './app.factory.js';
import { Env } from './config/env.validation.js';

async function main(): Promise<void> {
  // Before startup, which can wait for Redis for a while: a signal then ends it with exit 0.
  const shutdown = exitOnSignals();
  // .env under the real environment (which wins), before anything reads either: createApp sets
  // up Fastify (TRUST_PROXY) and the logger (LOG_LEVEL) before ConfigModule would load .env.
  if (existsSync('.env')) process.loadEnvFile('.env');
  const app = await createApp();
  const config = app.get(ConfigService<Env, true>);
  const port = config.get('PORT', { infer: true });
  const host = config.get('HOST', { infer: true });
  // Before listen: listening starts the startup ingest and the webhook loops, which a signal must shut down gracefully.
  shutdown.started(app, config.get('SHUTDOWN_TIMEOUT_MS', { infer: true }));
  await app.listen(port, host);
  const docs = config.get('DOCS_ENABLED', { infer: true }) ? 'Swagger UI at /docs' : 'Swagger UI off: DOCS_ENABLED=false';
  new Logger('Bootstrap').log(`Listening on ${await app.getUrl()} (${docs})`);
}

/**
 * SIGTERM/SIGINT: abort upstream calls in flight (the ingest run in progress ends as a failure),
 * stop the schedule, let in-flight requests finish, close the HTTP server, QUIT Redis, then exit 0 (Nest's own signal hooks re-raise the
 * signal, which exits 143). After SHUTDOWN_TIMEOUT_MS it gives up and exits 1. A signal during
 * startup exits 0 at once (nothing is served yet); a second signal changes nothing (an
 * orchestrator repeating SIGTERM must not cut the graceful shutdown short).
 */
function exitOnSignals(): { started(app: INestApplication, timeoutMs: number): void } {
  const logger = new Logger('Shutdown');
  let closing = false;
  let running: { app: INestApplication; timeoutMs: number } | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.log(`${signal}: already shutting down`);
      return;
    }
    closing = true;
    if (running === undefined) {
      process.stderr.write(`is-bitcoin-lit: ${signal} during startup; exiting\n`);
      process.exit(0);
    }
    const { app, timeoutMs } = running;
    logger.log(`${signal}: shutting down gracefully`);
    setTimeout(() => {
      process.stderr.write(`is-bitcoin-lit: shutdown took longer than ${timeoutMs} ms; exiting\n`);
      process.exit(1);
    }, timeoutMs).unref();
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`is-bitcoin-lit: shutdown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return { started: (app, timeoutMs) => void (running = { app, timeoutMs }) };
}

main().catch((err: unknown) => {
  // One line: the reason (bad config, Redis unreachable…), no stack trace.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`is-bitcoin-lit failed to start: ${message}\n`);
  process.exit(1);
});
