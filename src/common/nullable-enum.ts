import { ApiProperty } from '@nestjs/swagger';

/**
 * An enum property that may be null, documented as OpenAPI 3.0.3 wants it: null listed among
 * the values. With `nullable` alone, validators and generators held to the enum refused the
 * null the API sends.
 */
export const nullableEnum = (values: readonly string[]) => ApiProperty({ enum: [...values, null], nullable: true });
