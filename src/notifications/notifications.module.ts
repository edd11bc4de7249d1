import { Module } from '@nestjs/common';
import { SummaryModule } from '../summary/summary.module.js';
import { ThrottleModule } from '../throttle/throttle.module.js';
import { VerdictModule } from '../verdict/verdict.module.js';
import { NotificationsController } from './notifications.controller.js';
import { NotificationsGateway } from './notifications.gateway.js';
import { NotificationsService } from './notifications.service.js';

/** Live notifications: Redis pub/sub between instances, SSE at /events, WebSocket at /ws/notifications. */
@Module({
  imports: [SummaryModule, ThrottleModule, VerdictModule],
  controllers: [NotificationsController],
  providers: [NotificationsService, NotificationsGateway],
  exports: [NotificationsService],
})
export class NotificationsModule {}
