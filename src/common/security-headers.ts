import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * Pages a browser renders (the dashboard, Swagger UI): helmet's full set, with a CSP that
 * allows their inline styles/scripts and data: images. Without helmet's default
 * upgrade-insecure-requests: the service speaks plain HTTP (TLS, where there is any, ends at a
 * proxy), and a page opened over http by any name but localhost had every script, fetch and
 * event stream rewritten to https://, where nothing answers: a dead dashboard and an empty
 * Swagger UI. Behind a TLS proxy the page comes over https and its own requests are https
 * anyway (they are relative).
 */
export const PAGE_HELMET_OPTIONS: Readonly<HelmetOptions> = {
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:', 'validator.swagger.io'],
      scriptSrc: ["'self'", "'unsafe-inline'"],
      upgradeInsecureRequests: null,
    },
  },
};

/**
 * Everything else is data (JSON, SSE, metrics text) that no browser renders as a page: the set
 * the OWASP REST Security Cheat Sheet asks of API responses (nosniff, HSTS, no framing, a CSP
 * that allows nothing). helmet's other headers only affect rendered documents, and measured with
 * `npm run bench` its ~0.7 KB full set cost about a third of the cached summary's requests/s,
 * mostly in the client and the kernel (a bare server sending the same headers slows as much).
 */
export const API_HELMET_OPTIONS: Readonly<HelmetOptions> = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  referrerPolicy: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xFrameOptions: { action: 'deny' },
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
};

/**
 * The headers helmet sets for `options`, computed once. Our policies do not depend on the
 * request, and helmet's per-request middleware (re-serializing the CSP, through Fastify's
 * middleware layer) cost about a third of the cached summary's throughput in `npm run bench`.
 */
export function securityHeaders(options: Readonly<HelmetOptions>): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
      return res;
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
    getHeader: (name: string) => headers[name.toLowerCase()],
  };
  let failed: unknown;
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    failed = err;
  });
  if (failed) throw failed instanceof Error ? failed : new Error('helmet failed', { cause: failed });
  return headers;
}

/** The API set, computed once: every response has it (CacheFastPath's hits included). */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze(securityHeaders(API_HELMET_OPTIONS));
