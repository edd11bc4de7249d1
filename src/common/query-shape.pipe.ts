import { type ArgumentMetadata, BadRequestException, type PipeTransform } from '@nestjs/common';

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
 */
export class QueryShapePipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type !== 'query' || typeof value !== 'object' || value === null) return value;
    const inherited = Object.keys(value).filter((k) => k in Object.prototype);
    if (inherited.length > 0) throw new BadRequestException(inherited.map((k) => `property ${k} should not exist`));
    const repeated = Object.entries(value).filter(([, v]) => Array.isArray(v)).map(([k]) => k);
    if (repeated.length > 0) throw new BadRequestException(repeated.map((k) => `${k} must be given once`).join('; '));
    return value;
  }
}
