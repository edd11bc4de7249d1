import { Injectable } from '@nestjs/common';

/** Applies a finished count: throws the 429, or sets the rate-limit headers. */
export type ThrottleVerdict = () => void;

/** Counts ThrottleGuard started for @CountAlongside() handlers, by request, until their interceptor takes them. */
@Injectable()
export class PendingThrottles {
  private readonly byRequest = new WeakMap<object, Promise<ThrottleVerdict>>();

  put(request: object, verdict: Promise<ThrottleVerdict>): void {
    // Never an unhandled rejection, also if the request ends before the interceptor runs.
    verdict.catch(() => undefined);
    this.byRequest.set(request, verdict);
  }

  take(request: object): Promise<ThrottleVerdict> | undefined {
    const verdict = this.byRequest.get(request);
    this.byRequest.delete(request);
    return verdict;
  }
}
