/**
 * Checks real answers against the app's own OpenAPI document (/docs-json), as a client generated
 * from it, or a contract tester, would read them: the status must be documented for the
 * operation, a JSON body must fit the documented schema, and each of the API's own headers sent
 * (API_HEADERS: Retry-After, X-Request-Id, X-RateLimit-*…) must be documented on that status.
 *
 * OpenAPI 3.0's `nullable` is read as ajv reads it (null is allowed where a `type` is given, and
 * an enum must list null), except next to a composition (`allOf: [$ref]`, how @nestjs/swagger
 * writes a nullable object), which is read as "that or null", as contract testers such as
 * schemathesis do.
 */
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Response } from 'light-my-request';

type Json = Record<string, unknown>;

/** The headers the API itself defines (not HTTP's, CORS' or the security set): each one sent must be documented on its status. */
const API_HEADERS = /^(?:x-request-id|x-ratelimit-[a-z-]+|x-cache|x-series-source|retry-after|age|www-authenticate)$/;

/** `nullable` next to allOf/oneOf/anyOf, as "that or null"; refs into the document's components. */
function prepared(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(prepared);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Json = {};
  for (const [key, value] of Object.entries(schema)) {
    out[key] = key === '$ref' && typeof value === 'string' ? value.replace(/^#\//, 'openapi#/') : prepared(value);
  }
  if (out.nullable === true && (out.allOf || out.oneOf || out.anyOf)) {
    const { nullable: _nullable, ...rest } = out;
    return { anyOf: [rest, { type: 'null' }] };
  }
  return out;
}

export class ApiDocument {
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();

  private constructor(private readonly doc: Json) {
    this.ajv.addSchema({ $id: 'openapi', components: prepared(doc.components) });
  }

  static async of(app: NestFastifyApplication): Promise<ApiDocument> {
    return new ApiDocument((await app.inject({ method: 'GET', url: '/docs-json' })).json());
  }

  /** What in `res` (the answer to `method` on the documented `path`) the document does not say; empty when it all fits. */
  problems(method: string, path: string, res: Response): string[] {
    const where = `${method} ${path} ${res.statusCode}`;
    const operation = (this.doc.paths as Record<string, Record<string, Json>>)[path]?.[method.toLowerCase()];
    if (!operation) return [`${method} ${path}: no such operation in the document`];
    const documented = (operation.responses as Record<string, Json>)[String(res.statusCode)];
    if (!documented) return [`${where}: status not documented`];
    const problems: string[] = [];
    const documentedHeaders = new Set(Object.keys((documented.headers ?? {}) as Json).map((h) => h.toLowerCase()));
    for (const name of Object.keys(res.headers)) {
      if (API_HEADERS.test(name) && !documentedHeaders.has(name)) problems.push(`${where}: ${name} sent, not documented`);
    }
    const schema = (documented.content as Record<string, { schema?: unknown }> | undefined)?.['application/json']?.schema;
    if (schema === undefined) return problems;
    const key = JSON.stringify(schema);
    let validate = this.validators.get(key);
    if (!validate) this.validators.set(key, (validate = this.ajv.compile(prepared(schema) as Json)));
    if (!validate(res.json())) {
      for (const e of validate.errors ?? []) problems.push(`${where}: body${e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    }
    return problems;
  }
}
