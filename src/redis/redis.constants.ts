/** Injection token of the app's one shared ioredis client. */
export const REDIS_CLIENT = Symbol('REDIS_CLIENT');
