import { INestApplication, LogLevel, ValidationPipe } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { WsAdapter } from '@nestjs/platform-ws';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { AllExceptionsFilter } from './common/all-exceptions.filter.js';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Log levels up to LOG_LEVEL, read before config validation so startup errors are printed. */
export function logLevels(level = process.env.LOG_LEVEL ?? 'log'): LogLevel[] {
  const i = LEVELS.indexOf(level as LogLevel);
  return LEVELS.slice(0, i < 0 ? 4 : i + 1);
}

/**
 * Builds the configured application (used by main.ts and by the e2e tests, so both run the
 * same pipes, filters, Swagger and shutdown hooks).
 */
export async function createApp(env: Record<string, string> = {}): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(env), new FastifyAdapter({ bodyLimit: 64 * 1024 }), {
    logger: logLevels(env.LOG_LEVEL),
    abortOnError: false,
  });
  configureApp(app);
  return app;
}

export function configureApp(app: INestApplication): void {
  app.useGlobalPipes(
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }),
  );
  app.useGlobalFilters(new AllExceptionsFilter(app.get(HttpAdapterHost)));
  // WebSocket gateways (/ws/notifications) on the HTTP server's port, with the plain `ws` library.
  app.useWebSocketAdapter(new WsAdapter(app));
  app.enableShutdownHooks();
  const doc = new DocumentBuilder()
    .setTitle('is-bitcoin-lit')
    .setDescription('Bitcoin price and market sentiment as time series on Redis: hourly summary, ingest.')
    .setVersion('0.1.0')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc), { jsonDocumentUrl: 'docs-json' });
}
