import { HttpException, HttpStatus, ServiceUnavailableException } from '@nestjs/common';

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
