import { BadRequestException, HttpException, HttpStatus, ServiceUnavailableException } from '@nestjs/common';

/** A 503 that tells the client when to come back (`Retry-After`, seconds). */
export class RetryLaterException extends ServiceUnavailableException {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** A 429 that tells the client when to come back (`Retry-After`, seconds). */
export class TooManyRequestsException extends HttpException {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, HttpStatus.TOO_MANY_REQUESTS);
  }
}

/** `work`'s result; a RangeError (a query parameter the parser refused, its message naming it) becomes a 400. */
export async function badRequestOnRangeError<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw err instanceof RangeError ? new BadRequestException(err.message) : err;
  }
}
