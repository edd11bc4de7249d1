import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { RedisThrottlerStorage } from './redis-throttler.storage.js';
import { ThrottleGuard } from './throttle.guard.js';

/** Global rate limiting (see ThrottleGuard). */
@Module({
  providers: [RedisThrottlerStorage, { provide: APP_GUARD, useClass: ThrottleGuard }],
})
export class ThrottleModule {}
