import { Module } from '@nestjs/common';
import { LeaseLockService } from './lease-lock.service.js';

/** Lease locks on the app's Redis client (REDIS_CLIENT is global). */
@Module({
  providers: [LeaseLockService],
  exports: [LeaseLockService],
})
export class LockModule {}
