import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import fastifyCompress from '@fastify/compress';
import { BadRequestException, ConsoleLogger, Logger as NestLogger, LogLevel, ValidationPipe } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { WsAdapter } from '@nestjs/platform-ws';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerFactory } from 'fastify';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module.js';
import { CacheFastPath } from './cache/cache.fast-path.js';
import { AllExceptionsFilter, statusText } from './common/all-exceptions.filter.js';
import { AllowedMethods } from './common/allowed-methods.js';
import { documentResponseHeaders } from './common/api-responses.js';
import { jsonBoundsProblem } from './common/json-bounds.js';
import type { ErrorResponseDto } from './common/error-response.dto.js';
import { clientErrorHandler, type OnScreenedAnswer, serveScreened } from './common/http-framing.js';
import { corsOrigins } from './config/cors-origins.js';
import { OpenConnections } from './common/open-connections.js';
import { requestIdOf } from './common/request-id.js';
import { isRoutinePath, loggedPath } from './common/logger.module.js';
import { QueryShapePipe } from './common/query-shape.pipe.js';
import { serveNonWebSocketUpgrades } from './common/upgrade.js';
import { NOTIFICATIONS_WS_PATH } from './notifications/notifications.gateway.js';
import { API_SECURITY_HEADERS, PAGE_HELMET_OPTIONS, securityHeaders } from './common/security-headers.js';
import { Env, validateEnv } from './config/env.validation.js';
import { SUMMARY_PATH } from './summary/summary.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import type { Tally } from './metrics/tallied-histogram.js';

/**
 * The HTTP server: requests are first screened (http-framing.ts: a body that cannot be delimited,
 * a missing or repeated Host, or behind a request refused so: a 400 and the connection closed),
 * then CacheFastPath, then Fastify's handler; a request with an Upgrade header that is no
 * WebSocket handshake is served the same way (upgrade.ts).
 * Configured as Fastify configures the server it creates itself (fastify/lib/server.js), so its
 * timeouts still apply.
 */
function serverWithFastPath(fastPath: () => CacheFastPath | undefined, answered: WeakSet<Duplex>, screened: OnScreenedAnswer): FastifyServerFactory<Server> {
  return (handler, options) => {
    // Node checks request timeouts on this interval (default 30 s), so it bounds how late they fire.
    // Not `optimizeEmptyRequests` (Node >= 24.12, ~10 % less CPU per cached GET on Node 26): it
    // ends the body stream of any request without a length header, and Fastify still waits for
    // the body of one that has a Content-Type, so such a request was never answered.
    const requestTimeout = options.requestTimeout as number;
    const server = createServer({
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, requestTimeout / 4)),
      requireHostHeader: false, // checked by screenRequest instead, to answer in the API's shape
    });
    OpenConnections.track(server);
    const onRequest = serveScreened(
      server,
      answered,
      (req: IncomingMessage, res: ServerResponse) => {
        if (!fastPath()?.serve(req, res)) handler(req, res);
      },
      screened,
    );
    serveNonWebSocketUpgrades(server, [NOTIFICATIONS_WS_PATH], onRequest, screened);
    server.keepAliveTimeout = options.keepAliveTimeout as number;
    server.requestTimeout = requestTimeout;
    server.headersTimeout = Math.min(server.headersTimeout, requestTimeout);
    server.setTimeout(options.connectionTimeout as number);
    if ((options.maxRequestsPerSocket as number) > 0) server.maxRequestsPerSocket = options.maxRequestsPerSocket as number;
    return server;
  };
}

/**
 * The access log line and metrics timing of a request the HTTP server answered before Fastify
 * (screenRequest's 400s, a 417, an Upgrade with a body, what Node's parser refused): the access
 * log's fields and level, with the reason in the message, and a timing with route `unmatched`,
 * as an unrouted request's (method `unknown` when the parser refused it).
 */
function screenedReport(app: NestFastifyApplication): OnScreenedAnswer {
  const logger = new NestLogger('HttpServer');
  const timed = app.get(ConfigService<Env, true>).get('METRICS_ENABLED', { infer: true });
  const metrics = app.get(MetricsService);
  return ({ req, requestId, statusCode, message, seconds }) => {
    const method = req?.method ?? 'unknown';
    const path = loggedPath(req?.url);
    // As pino-http's line: its serializers read `url`, and a status only once `headersSent`.
    const line = { req: { id: requestId, method, url: path }, res: { statusCode, headersSent: true }, responseTime: Math.round(seconds * 1000) };
    const text = `request answered before routing: ${message}`;
    if (isRoutinePath(path)) logger.debug(line, text);
    else logger.log(line, text);
    if (timed) metrics.httpDuration.tally({ method, route: 'unmatched', status: String(statusCode) }).observe(seconds);
  };
}

/** Largest request body taken (only POST /refresh takes one, and it must be empty or `{}`). */
const BODY_LIMIT = 64 * 1024;

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** The API's own response headers, readable by a page of a CORS_ORIGINS site. */
const EXPOSED_HEADERS = [
  'X-Request-Id',
  'Retry-After',
  'X-Cache',
  'Age',
  'X-Series-Source',
  ...['', '-refresh'].flatMap((limit) => ['Limit', 'Remaining', 'Reset'].map((part) => `X-RateLimit-${part}${limit}`)),
];

/** Where Swagger UI is served (and /docs-json, /docs-yaml), with DOCS_ENABLED. */
const DOCS_PATH = 'docs';

/** Content types compressed (COMPRESSION_ENABLED): JSON, HTML, plain text (Prometheus) and YAML. */
const COMPRESSIBLE = /^(?:application\/(?:[\w.-]+\+)?json|text\/(?:html|plain|yaml))\s*(?:;|$)/i;

/**
 * On a HEAD route Fastify made from a GET, moves its body-dropping onSend hook (last when
 * Fastify adds the route) behind the compression plugin's, added after it by the plugin's
 * onRoute hook, so the plugin sets the answer's headers as on the GET.
 */
function compressBeforeHeadDrop(onSend: unknown): void {
  if (!Array.isArray(onSend)) return;
  const drop = onSend.findIndex((hook: { name?: string }) => hook.name === 'headRouteOnSendHandler');
  if (drop >= 0 && drop < onSend.length - 1) onSend.push(...onSend.splice(drop, 1));
}

/** Log levels up to LOG_LEVEL, read before config validation so startup errors are printed. */
export function logLevels(level = process.env.LOG_LEVEL ?? 'log'): LogLevel[] {
  const i = LEVELS.indexOf(level as LogLevel);
  return LEVELS.slice(0, i < 0 ? 4 : i + 1);
}

/**
 * Builds the configured application (used by main.ts and by the e2e tests, so both run the
 * same pipes, filters, security headers, metrics and Swagger).
 */
export async function createApp(env: Record<string, string> = {}): Promise<NestFastifyApplication> {
  // The adapter needs TRUST_PROXY and HTTP_REQUEST_TIMEOUT_MS before Nest (and ConfigModule) exist: validated the same way.
  const { TRUST_PROXY: trustProxy, HTTP_REQUEST_TIMEOUT_MS: requestTimeout } = validateEnv({ ...process.env, ...env });
  // Created before the app, so the server below reaches CacheFastPath and the access log through these variables.
  let fastPath: CacheFastPath | undefined;
  let reportScreened: OnScreenedAnswer | undefined;
  const screened: OnScreenedAnswer = (answer) => reportScreened?.(answer);
  // Connections answered 400 in front of Fastify: the parser's error on their unread body is not answered again.
  const answered = new WeakSet<Duplex>();
  const adapter = new FastifyAdapter({
    bodyLimit: BODY_LIMIT,
    trustProxy,
    requestTimeout,
    genReqId: requestIdOf,
    // The default 'reqId' label and Fastify's own request logging stay off: pino-http logs requests.
    logger: false,
    // Cached GETs are answered in front of Fastify; every other request goes to its handler.
    serverFactory: serverWithFastPath(() => fastPath, answered, screened),
    clientErrorHandler: clientErrorHandler(answered, screened),
    // The router refuses a malformed URL (400) or an over-long route parameter (414) before any
    // hook or filter runs: answered here in the API's error shape, with the headers the onRequest
    // hook below would have set (Fastify's own body has a `code` and no request id).
    frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const status = error.statusCode ?? 400;
      const body: ErrorResponseDto = { statusCode: status, error: statusText(status), message: error.message, requestId: request.id };
      void reply.headers(API_SECURITY_HEADERS).header('X-Request-Id', request.id).code(status).send(body);
      // No hook runs for it (no access line, no timing): reported as the server's own refusals are.
      screened({ req: request.raw, requestId: request.id, statusCode: status, message: `the router refused its URL (${error.code})`, seconds: reply.elapsedTime / 1000 });
    },
  });
  // The first hook of every request Fastify handles, added before Nest registers its
  // middleware: the API security headers (helmet's, computed once) and the request id. HTML
  // pages get helmet's full set on top (onSend, once the content type is known), which replaces
  // the API set's CSP and X-Frame-Options.
  const pageSecurity = securityHeaders(PAGE_HELMET_OPTIONS);
  const fastify = adapter.getInstance();
  // Every route, as Nest and Swagger add them: a request whose method is not one of its path's gets 405.
  const allowed = new AllowedMethods();
  fastify.addHook('onRoute', (route) => allowed.add(route.method, route.url));
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.headers(API_SECURITY_HEADERS);
    reply.header('X-Request-Id', request.id);
    done();
  });
  // Shutdown: once Fastify is closing (new requests get a 503), every 250 ms until the server
  // has closed, close the connections on which no answer is coming and that sent nothing since
  // the previous look (see OpenConnections); this first look only notes what each has sent.
  fastify.addHook('preClose', (done) => {
    const connections = OpenConnections.of(fastify.server);
    if (connections) {
      connections.dropUnanswerable();
      const sweeper = setInterval(() => connections.dropUnanswerable(), 250).unref();
      fastify.server.once('close', () => clearInterval(sweeper));
    }
    done();
  });
  fastify.addHook('onSend', (request, reply, payload, done) => {
    // A reply sent before the hook above ran (@fastify/cors answers preflights from its own
    // onRequest hook, which Nest registers ahead of ours) gets the same headers here.
    if (!reply.hasHeader('x-request-id')) reply.headers(API_SECURITY_HEADERS).header('X-Request-Id', request.id);
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('text/html')) reply.headers(pageSecurity);
    done(null, payload);
  });
  // useLogger() below replaces Nest's process-wide static logger; start each app from a console
  // logger at its own LOG_LEVEL (tests boot several apps in one process). Startup messages are
  // buffered until the JSON logger is up; a failed startup prints only main.ts's one line.
  NestLogger.overrideLogger(new ConsoleLogger({ logLevels: logLevels(env.LOG_LEVEL) }));
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(env), adapter, {
    logger: logLevels(env.LOG_LEVEL),
    bufferLogs: true,
    autoFlushLogs: false, // a failed startup is reported by main.ts in one line, not a stack trace
    abortOnError: false,
  });
  fastPath = app.get(CacheFastPath);
  app.useLogger(app.get(Logger));
  reportScreened = screenedReport(app);
  app.flushLogs(); // autoFlushLogs is off, so the buffered startup lines are written here
  await configureApp(app, allowed);
  return app;
}

export async function configureApp(app: NestFastifyApplication, allowed?: AllowedMethods): Promise<void> {
  const config = app.get(ConfigService<Env, true>);
  const metrics = app.get(MetricsService);
  const fastify = app.getHttpAdapter().getInstance();
  // One tally per (method, route pattern, status), looked up by a string key: labelling each
  // observation cost ~15% of the cached summary's throughput, and prom-client's labelled child
  // still validates and hashes its labels per call (see TalliedHistogram). Bounded: routes are
  // patterns ('unmatched' for 404s), methods and statuses are few.
  // Not timed at all with METRICS_ENABLED=false: nothing would ever read it.
  const durations = new Map<string, Tally>();
  if (config.get('METRICS_ENABLED', { infer: true })) {
    fastify.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched';
      const key = `${request.method} ${reply.statusCode} ${route}`;
      let histogram = durations.get(key);
      if (!histogram) {
        histogram = metrics.httpDuration.tally({ method: request.method, route, status: String(reply.statusCode) });
        durations.set(key, histogram);
      }
      histogram.observe(reply.elapsedTime / 1000);
      done();
    });
  }
  const origins = corsOrigins(config.get('CORS_ORIGINS', { infer: true }));
  // strictPreflight off: an OPTIONS that is no preflight (no Origin or no
  // Access-Control-Request-Method) gets the plugin's empty 204, not its text/plain 400. The API's
  // own headers are exposed: a page could read none of them (only the CORS-safelisted ones).
  // Request headers stay mirrored: a page's tracing headers (traceparent, baggage…) must pass.
  if (origins.length) {
    app.enableCors({ origin: origins.includes('*') ? true : origins, methods: ['GET', 'POST'], maxAge: 600, strictPreflight: false, exposedHeaders: EXPOSED_HEADERS });
  }
  // Answers from 1 KiB (the plugin's threshold) in gzip, when Accept-Encoding allows it.
  if (config.get('COMPRESSION_ENABLED', { infer: true })) {
    // As they are: the summary, whose hits are answered from memory ahead of Fastify (a miss
    // compressed and a hit not would answer one URL two ways), and Swagger UI's static files
    // (1.8 MB of script and style, recompressed on every request).
    fastify.addHook('onRoute', (route) => {
      if (route.url === `/${SUMMARY_PATH}` || route.url === `/${DOCS_PATH}/*`) route.compress = false;
    });
    await app.register(fastifyCompress, {
      // gzip at its fastest level: answers are built per request, and it gets most of the saving
      // (a 30-day /series, 45 KB: 9 KB in 0.3 ms; level 6, 8.9 KB in 0.7). Brotli (8 KB) was
      // left out: each of its streams held ~1 MB for a client that did not read, and a few
      // hundred such clients grew the process by hundreds of MB that it did not give back.
      encodings: ['gzip'],
      zlibOptions: { level: 1 },
      // JSON, HTML and the text of /metrics and /docs-yaml; not event streams.
      customTypes: COMPRESSIBLE,
      // Request bodies are never inflated: the only one taken (POST /refresh) must be empty.
      globalDecompression: false,
    });
    // A HEAD answer carries the headers its GET would (RFC 9110, 9.3.2: Content-Encoding, Vary,
    // no uncompressed Content-Length): Fastify's HEAD route drops the body in its own onSend
    // hook, which came first, so the plugin saw no body and left the headers as they were.
    fastify.addHook('onRoute', (route) => {
      if (route.method === 'HEAD') compressBeforeHeadDrop(route.onSend);
    });
  }
  // An empty body sent with `Content-Type: application/json` (generated clients set it on every
  // POST) is no body, as without the header; Fastify's parser answered it 400. Any other body is
  // parsed as Nest's default parser does (Fastify's, refusing prototype poisoning).
  const fastifyJson = fastify.getDefaultJsonParser('error', 'error');
  // A body nested past MAX_JSON_DEPTH is refused before parsing: parsed, it overflowed the stack
  // in class-transformer (a 500).
  app.useBodyParser<Server>('application/json', { bodyLimit: BODY_LIMIT }, (req, body, done) => {
    if (body.length === 0) return done(null, undefined);
    const text = body.toString();
    const tooComplex = jsonBoundsProblem(text);
    if (tooComplex !== undefined) return done(new BadRequestException(`the JSON body is not parsed: ${tooComplex}`), undefined);
    void fastifyJson(req, text, done);
  });
  app.useGlobalPipes(
    new QueryShapePipe(),
    new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }),
  );
  app.useGlobalFilters(new AllExceptionsFilter(app.get(HttpAdapterHost), metrics, allowed));
  // WebSocket gateways (/ws/notifications) on the HTTP server's port, with the plain `ws` library.
  app.useWebSocketAdapter(new WsAdapter(app));
  // No app.enableShutdownHooks(): main.ts handles SIGTERM/SIGINT itself so the exit code is 0.
  const doc = new DocumentBuilder()
    .setTitle('is-bitcoin-lit')
    .setDescription('Bitcoin price and market sentiment as time series on Redis: hourly summary, ingest.')
    .setVersion('0.1.0')
    // An opaque token, not the JWT that Nest's default bearerFormat would tell client generators.
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'opaque', description: 'REFRESH_TOKEN, for POST /refresh' })
    .build();
  // Off unless DOCS_ENABLED (see env.validation.ts): /docs and /docs-json are then plain 404s.
  if (config.get('DOCS_ENABLED', { infer: true })) {
    SwaggerModule.setup(DOCS_PATH, app, () => documentResponseHeaders(SwaggerModule.createDocument(app, doc)), { jsonDocumentUrl: 'docs-json' });
  }
}
