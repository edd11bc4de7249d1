import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/**
 * An enum property that may be null, documented as OpenAPI 3.0.3 wants it: null listed among
 * the values. With `nullable` alone, validators and generators held to the enum refused the
 * null the API sends.
 */
export const nullableEnum = (values: readonly string[]) => ApiProperty({ enum: [...values, null], nullable: true });

/**
 * A whole number (a count, milliseconds, a status): `integer`, not the `number` the Swagger plugin
 * infers from TypeScript, so generated clients get an int/long rather than a double or decimal.
 */
export const ApiInteger = (optional = false) => (optional ? ApiPropertyOptional({ type: 'integer' }) : ApiProperty({ type: 'integer' }));
