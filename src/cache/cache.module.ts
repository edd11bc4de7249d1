import { Module } from '@nestjs/common';
import { CacheFastPath } from './cache.fast-path.js';
import { CacheInterceptor } from './cache.interceptor.js';
import { CacheService } from './cache.service.js';

@Module({
  providers: [CacheService, CacheInterceptor, CacheFastPath],
  exports: [CacheService, CacheInterceptor, CacheFastPath],
})
export class CacheModule {}
