import { Module } from '@nestjs/common';
import { CacheFastPath } from './cache.fast-path.js';
import { RedisCacheInterceptor } from './cache.interceptor.js';
import { CacheService } from './cache.service.js';

@Module({
  providers: [CacheService, RedisCacheInterceptor, CacheFastPath],
  exports: [CacheService, RedisCacheInterceptor, CacheFastPath],
})
export class CacheModule {}
