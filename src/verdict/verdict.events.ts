import { Injectable, Logger } from '@nestjs/common';
import { AsyncEvents } from '../common/async-events.js';
import type { VerdictChangedEventDto } from './dto/verdict.dto.js';

/**
 * The verdict changed. Emitted in the one process whose evaluation made the transition in Redis
 * (so once across instances): alerts queue the webhooks. The live clients (SSE, WebSocket) get
 * it from the transition script itself, which publishes it on the events channel.
 */
@Injectable()
export class VerdictEvents extends AsyncEvents<VerdictChangedEventDto> {
  constructor() {
    super(new Logger(VerdictEvents.name));
  }
}
