import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createApp } from './app.factory.js';
import { Env } from './config/env.validation.js';

async function main(): Promise<void> {
  const app = await createApp();
  const config = app.get(ConfigService<Env, true>);
  const port = config.get('PORT', { infer: true });
  const host = config.get('HOST', { infer: true });
  await app.listen(port, host);
  new Logger('Bootstrap').log(`Listening on http://${host}:${port} (Swagger UI at /docs)`);
}

main().catch((err: unknown) => {
  // One line: the reason (bad config, Redis unreachable…), no stack trace.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`is-bitcoin-lit failed to start: ${message}\n`);
  process.exit(1);
});
