import { Controller, Get, HttpException, Res } from '@nestjs/common';
import {
  ApiExcludeEndpoint,
  ApiExtension,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ErrorResponseDto } from '../common/error-response.dto.js';
import { clientKey } from '../common/client-address.js';
import { RetryLaterException, TooManyRequestsException } from '../common/errors.js';
import { VerdictChangedEventDto } from '../verdict/dto/verdict.dto.js';
import { HeartbeatEventDto, IngestEventDto, StatusEventDto } from './dto/notification-event.dto.js';
import { NotificationsService, SLOT_RETRY_AFTER_SECONDS } from './notifications.service.js';
import { NOTIFICATIONS_WS_PATH } from './notifications.gateway.js';
import { onConnectionClose, SSE_RETRY_MS } from './sse.js';
import { RATE_LIMITS_EXTENSION, RETRY_AFTER_HEADER } from '../common/api-responses.js';

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no', // nginx: do not buffer the stream
};

/**
 * The stream's headers, after those Fastify's hooks already set on the reply (the API security
 * headers, X-Request-Id, CORS): a hijacked reply is written raw, without them.
 */
function sseHead(reply: FastifyReply): Record<string, string | number | string[]> {
  const head: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) head[name] = value;
  return { ...head, ...SSE_HEADERS };
}

const EXAMPLE = [
  'retry: 3000',
  '',
  'id: 1',
  'event: heartbeat',
  'data: {"type":"heartbeat","time":"2026-11-22T14:00:15.000Z"}',
  '',
  'id: 2',
  'event: ingest',
  'data: {"type":"ingest","source":"senticrypt-v1","latestSampleTime":"2021-07-07T17:30:18.000Z","stored":4948,"report":{…},"summary":{…}}',
  '',
  'id: 3',
  'event: status',
  'data: {"type":"status","redis":"down"}',
  '',
].join('\n');

/** Each event's `type`, and the schema of its JSON. */
const EVENT_SCHEMAS = {
  ingest: getSchemaPath(IngestEventDto),
  'verdict.changed': getSchemaPath(VerdictChangedEventDto),
  heartbeat: getSchemaPath(HeartbeatEventDto),
  status: getSchemaPath(StatusEventDto),
};

@ApiTags('notifications')
@Controller()
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  /**
   * Written straight to the raw response (not `@Sse()`) so each write can first check how much
   * output the client has not taken yet, and drop it when that is over the limit.
   */
  @Get('events')
  @ApiOperation({
    summary: 'Live notifications (Server-Sent Events)',
    description:
      'A text/event-stream that stays open. `event: ingest` after every ingest run on any instance that stored samples (IngestEventDto); ' +
        '`event: verdict.changed` once (across instances) when the verdict changes (VerdictChangedEventDto); ' +
      '`event: heartbeat` every NOTIFY_HEARTBEAT_MS (HeartbeatEventDto); `event: status` when this instance loses or regains its Redis subscription ' +
      '(StatusEventDto; after `down`, ingest events may have been missed). Every message has an `id:` (a sequence number of the instance, not replayable) ' +
      'and one line of JSON in `data:` whose `type` matches the event name. Clients that do not keep up (more than NOTIFY_MAX_BUFFER_BYTES unsent) are disconnected. ' +
      'The same JSON objects are sent as text frames over the WebSocket at /ws/notifications. Try it: `curl -N http://localhost:3000/events`.',
  })
  @ApiProduces('text/event-stream')
  @ApiExtraModels(IngestEventDto, VerdictChangedEventDto, HeartbeatEventDto, StatusEventDto, ErrorResponseDto)
  @ApiOkResponse({
    description: 'An endless event stream; the schema is that of the JSON in each `data:` line',
    content: {
      'text/event-stream': {
        schema: {
          oneOf: Object.values(EVENT_SCHEMAS).map(($ref) => ({ $ref })),
          // The mapping is needed: without it, `type` would have to name the schema (IngestEventDto).
          discriminator: { propertyName: 'type', mapping: EVENT_SCHEMAS },
        },
        example: EXAMPLE,
      },
    },
  })
  @ApiServiceUnavailableResponse({
    // Spelled out: @ApiProduces would otherwise label the JSON error as text/event-stream.
    content: { 'application/json': { schema: { $ref: getSchemaPath(ErrorResponseDto) } } },
    description: 'NOTIFY_MAX_CLIENTS clients are already connected to this instance',
    headers: RETRY_AFTER_HEADER,
  })
  @ApiTooManyRequestsResponse({
    content: { 'application/json': { schema: { $ref: getSchemaPath(ErrorResponseDto) } } },
    description: 'NOTIFY_MAX_CLIENTS_PER_IP clients from this address are already connected to this instance (or the rate limit)',
    headers: RETRY_AFTER_HEADER,
  })
  // Rate limited as every route (its 429 above says so too): the stream's head carries X-RateLimit-*.
  @ApiExtension(RATE_LIMITS_EXTENSION, ['default'])
  events(@Res() reply: FastifyReply): void {
    // Fastify answers HEAD with the GET handler: headers only, no stream, no slot taken.
    if (reply.request.method === 'HEAD') {
      reply.hijack();
      reply.raw.writeHead(200, sseHead(reply)).end();
      return;
    }
    // The connection, not only the response: a response pipelined behind another one on the
    // connection has no socket yet, and Node 20 never emits its 'close' when the connection
    // closes (Node 24 does), so its slot would never be released.
    const connection = reply.request.raw.socket;
    if (reply.raw.destroyed || connection.destroyed) {
      // The client hung up before we got here (e.g. while the rate limit waited for Redis): its
      // 'close' has fired already, so a slot taken now would never be released.
      reply.hijack();
      return;
    }
    const slot = this.notifications.connect('sse', clientKey(reply.request.ip));
    if ('refused' in slot) {
      throw slot.refused === 'full'
        ? new RetryLaterException(slot.message, SLOT_RETRY_AFTER_SECONDS)
        : new TooManyRequestsException(slot.message, SLOT_RETRY_AFTER_SECONDS);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, sseHead(reply));
    res.socket?.setNoDelay(true);
    res.write(`retry: ${SSE_RETRY_MS}\n\n`);
    const subscription = slot.notifications.subscribe({
      next: (n) => {
        if (res.destroyed || res.writableEnded) return;
        // writableLength counts what Node holds for this socket beyond the kernel's buffers.
        if (this.notifications.isBacklogged(res.writableLength)) {
          this.notifications.recordDrop('sse', `${res.writableLength} bytes unsent`);
          res.destroy();
          return;
        }
        res.write(n.sse);
      },
      complete: () => res.end(),
    });
    const closed = () => {
      res.off('close', closed);
      stopWaiting();
      subscription.unsubscribe();
      slot.release();
    };
    res.once('close', closed);
    const stopWaiting = onConnectionClose(connection, closed);
  }

  /**
   * The WebSocket's path asked without `Upgrade: websocket` (an address bar, curl): a 426 saying
   * how to connect, with the Upgrade header RFC 9110 §15.5.22 asks for, where it was Fastify's 404.
   */
  @Get(NOTIFICATIONS_WS_PATH.slice(1))
  @ApiExcludeEndpoint()
  upgradeRequired(@Res({ passthrough: true }) reply: FastifyReply): never {
    void reply.header('Upgrade', 'websocket');
    throw new HttpException(`${NOTIFICATIONS_WS_PATH} is a WebSocket endpoint: connect with a WebSocket client (ws://…)`, 426);
  }
}
