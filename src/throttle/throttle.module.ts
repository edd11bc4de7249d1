import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PendingThrottles } from './pending-throttles.js';
import { RedisThrottlerStorage } from './redis-throttler.storage.js';
import { ThrottleGuard } from './throttle.guard.js';
import { ThrottleVerdictInterceptor } from './throttle-verdict.interceptor.js';

/** Global rate limiting (see ThrottleGuard); global so @CountAlongside() handlers of any module reach its interceptor. */
@Global()
@Module({
  providers: [RedisThrottlerStorage, PendingThrottles, ThrottleVerdictInterceptor, { provide: APP_GUARD, useClass: ThrottleGuard }],
  exports: [PendingThrottles, ThrottleVerdictInterceptor],
})
export class ThrottleModule {}
