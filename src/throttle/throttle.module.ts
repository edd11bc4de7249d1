import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { RedisThrottlerStorage } from './redis-throttler.storage.js';
import { ThrottleGuard } from './throttle.guard.js';
import { ThrottleService } from './throttle.service.js';

/** Global rate limiting (see ThrottleGuard), and ThrottleService for what the guard does not see. */
@Module({
  providers: [RedisThrottlerStorage, ThrottleService, { provide: APP_GUARD, useClass: ThrottleGuard }],
  exports: [ThrottleService],
})
export class ThrottleModule {}
