import { Module } from '@nestjs/common';
import { RedisCacheInterceptor } from './cache.interceptor.js';
import { CacheService } from './cache.service.js';

@Module({
  providers: [CacheService, RedisCacheInterceptor],
  exports: [CacheService, RedisCacheInterceptor],
})
export class CacheModule {}
