/** Injection token of the app's one shared ioredis client. */
export const REDIS_CLIENT = Symbol('REDIS_CLIENT');

/**
 * Injection token of the pub/sub subscriber connection: a connection in subscribe mode cannot
 * run other commands, so it is separate from REDIS_CLIENT (same settings).
 */
export const REDIS_SUBSCRIBER = Symbol('REDIS_SUBSCRIBER');
