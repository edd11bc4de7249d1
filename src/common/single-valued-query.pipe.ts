import { type ArgumentMetadata, BadRequestException, type PipeTransform } from '@nestjs/common';

/**
 * Every query parameter of this API takes one value. A repeated one (`?from=1&from=2`) arrives
 * as an array, which the DTO's rules would refuse as a malformed value ("from must be an
 * ISO-8601 time…"); this says what is wrong instead. Runs before the ValidationPipe.
 */
export class SingleValuedQueryPipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type !== 'query' || typeof value !== 'object' || value === null) return value;
    const repeated = Object.entries(value).filter(([, v]) => Array.isArray(v)).map(([k]) => k);
    if (repeated.length > 0) throw new BadRequestException(repeated.map((k) => `${k} must be given once`).join('; '));
    return value;
  }
}
