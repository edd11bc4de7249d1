import { type ArgumentMetadata, BadRequestException, type PipeTransform } from '@nestjs/common';

/** Far more than any route takes (a history query has at most five). */
export const MAX_QUERY_PARAMETERS = 16;

/**
 * What every query of this API must be before its DTO's rules run (the ValidationPipe):
 *
 * - Each parameter takes one value. A repeated one (`?from=1&from=2`) arrives as an array,
 *   which the DTO's rules would refuse as a malformed value ("from must be an ISO-8601
 *   time…"); this says what is wrong instead.
 * - No parameter is named after a property every object has (`toString`, `constructor`,
 *   `__proto__`…). The ValidationPipe's whitelist does not see those names, so they passed as
 *   if known: `?toString=1` was a 200 where `?foo=1` is a 400, and on the summary it skipped
 *   the cache (a recomputation per request). Refused in the whitelist's words.
 * - At most MAX_QUERY_PARAMETERS parameters. Each unknown one is a line of the whitelist's 400:
 *   11 KB of two-letter names made a 119 KB answer and 60-190 ms of CPU, on a route that is
 *   not rate limited (the summary's).
 */
export class QueryShapePipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type !== 'query' || typeof value !== 'object' || value === null) return value;
    const count = Object.keys(value).length;
    if (count > MAX_QUERY_PARAMETERS) throw new BadRequestException(`at most ${MAX_QUERY_PARAMETERS} query parameters are accepted (got ${count})`);
    const inherited = Object.keys(value).filter((k) => k in Object.prototype);
    if (inherited.length > 0) throw new BadRequestException(inherited.map((k) => `property ${k} should not exist`));
    const repeated = Object.entries(value).filter(([, v]) => Array.isArray(v)).map(([k]) => k);
    if (repeated.length > 0) throw new BadRequestException(repeated.map((k) => `${k} must be given once`).join('; '));
    return value;
  }
}
