import FindMyWay from 'find-my-way';
import type { HTTPMethod } from 'find-my-way';

/**
 * The methods the app's routes take on a path, so a request with another method gets 405 and
 * `Allow` (RFC 9110 §15.5.6) where a 404 would say there is nothing at that path. Fed by
 * Fastify's onRoute hook and matched with find-my-way (Fastify's own router, same defaults), so
 * a path matches here exactly when Fastify would route it. Catch-all routes (`OPTIONS *`, which
 * @fastify/cors adds when CORS_ORIGINS is set) are left out: they match every path, so they say
 * nothing about this one.
 */
export class AllowedMethods {
  private readonly router = FindMyWay();
  private readonly methods = new Set<HTTPMethod>();

  add(method: string | string[], url: string): void {
    if (url.includes('*')) return;
    for (const m of Array.isArray(method) ? method : [method]) {
      const verb = m.toUpperCase() as HTTPMethod;
      if (this.router.hasRoute(verb, url)) continue;
      this.router.on(verb, url, () => undefined);
      this.methods.add(verb);
    }
  }

  /** The methods routed on `url` (its query string ignored), sorted; empty when none is. */
  of(url: string): string[] {
    return [...this.methods].filter((m) => this.router.find(m, url) !== null).sort();
  }
}
