import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { defer, lastValueFrom, Observable } from 'rxjs';
import { PendingThrottles } from './pending-throttles.js';

/**
 * The second half of @CountAlongside(): runs the handler while the rate-limit count that
 * ThrottleGuard started is in flight, then applies the count's verdict before anything is sent:
 * a 429 replaces the handler's answer or error (and drops the headers the handler set), as if
 * the guard had refused the request first.
 */
@Injectable()
export class ThrottleVerdictInterceptor implements NestInterceptor {
  constructor(private readonly pending: PendingThrottles) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const verdict = this.pending.take(http.getRequest<object>());
    if (!verdict) return next.handle();
    return defer(async () => {
      const reply = http.getResponse<FastifyReply>();
      const before = new Set(Object.keys(reply.getHeaders()));
      const [count, answer] = await Promise.allSettled([verdict, lastValueFrom(next.handle())]);
      if (count.status === 'rejected') throw count.reason;
      try {
        count.value(); // throws the 429, or sets the X-RateLimit-* headers
      } catch (err) {
        for (const name of Object.keys(reply.getHeaders())) if (!before.has(name)) reply.removeHeader(name);
        throw err;
      }
      if (answer.status === 'rejected') throw answer.reason;
      return answer.value;
    });
  }
}
