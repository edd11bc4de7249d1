import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BearerToken } from '../common/bearer-token.js';
import { clientErrorHandler, serveScreened } from '../common/http-framing.js';
import { API_SECURITY_HEADERS } from '../common/security-headers.js';
import { Env } from '../config/env.validation.js';
import { METRICS_UNAUTHORIZED } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

/**
 * METRICS_PORT > 0: /metrics on its own listener (HOST:METRICS_PORT) instead of the API port,
 * so it can stay off the public load balancer / ingress. A bare Node server: GET or HEAD
 * /metrics only, METRICS_TOKEN still applies, errors in the API's JSON shape. Started with the
 * app (a port already taken fails startup), closed on shutdown.
 */
@Injectable()
export class MetricsPortServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private readonly port: number;
  private readonly host: string;
  private readonly enabled: boolean;
  private readonly token: BearerToken;
  private server: Server | null = null;

  constructor(
    private readonly metrics: MetricsService,
    config: ConfigService<Env, true>,
  ) {
    this.port = config.get('METRICS_PORT', { infer: true });
    this.host = config.get('HOST', { infer: true });
    this.enabled = config.get('METRICS_ENABLED', { infer: true });
    this.token = new BearerToken(config.get('METRICS_TOKEN', { infer: true }));
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.port === 0 || !this.enabled) return;
    // Requests Node's parser refuses, or the screen (e.g. a missing or repeated Host), get the
    // API's JSON error, as on the API port (Node's own handler answers a bare `400` without a body).
    const answered = new WeakSet<Duplex>();
    const server = createServer({ requireHostHeader: false });
    serveScreened(server, answered, (req, res) => this.handle(req, res));
    server.on('clientError', clientErrorHandler(answered));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.logger.log(`Metrics on http://${this.host}:${this.port}/metrics (not on the API port)`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // idle keep-alive scrapers would hold close() open
    await closed;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // Origin-form, or absolute-form (`GET http://host/metrics`, RFC 9112 §3.2.2), as the API port takes both.
    const url = req.url ?? '';
    const absolute = !url.startsWith('/') && URL.canParse(url) ? new URL(url) : undefined;
    const path = absolute && /^https?:$/.test(absolute.protocol) ? absolute.pathname : url.split('?')[0];
    if (path !== '/metrics') return error(res, 404, 'Not Found', `Cannot ${req.method ?? 'GET'} ${path}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return error(res, 405, 'Method Not Allowed', 'Only GET and HEAD');
    }
    if (this.token.configured && !this.token.matches(req.headers.authorization)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return error(res, 401, 'Unauthorized', METRICS_UNAUTHORIZED);
    }
    this.metrics.render().then(
      (text) => {
        res.writeHead(200, {
          ...API_SECURITY_HEADERS,
          'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
          'Cache-Control': 'no-store',
          'Content-Length': Buffer.byteLength(text),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        this.logger.error(`rendering metrics failed: ${err instanceof Error ? err.message : String(err)}`);
        error(res, 500, 'Internal Server Error', 'Internal server error');
      },
    );
  }
}

function error(res: ServerResponse, statusCode: number, text: string, message: string): void {
  const body = JSON.stringify({ statusCode, error: text, message });
  res.writeHead(statusCode, { ...API_SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
