import type { IncomingMessage } from 'node:http';
import { requestIdOf } from './request-id.js';

const req = (id?: string) => ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as unknown as IncomingMessage;

describe('requestIdOf', () => {
  it('reuses a plain incoming X-Request-Id', () => {
    expect(requestIdOf(req('trace-1.2:abc_D'))).toBe('trace-1.2:abc_D');
  });

  it.each([['has space'], ['a'.repeat(129)], ['quote"'], ['line\nbreak'], ['']])('replaces %j with a UUID', (bad) => {
    expect(requestIdOf(req(bad))).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('is stable per request, so the log lines and the response header agree', () => {
    const r = req();
    expect(requestIdOf(r)).toBe(requestIdOf(r));
    expect(requestIdOf(req())).not.toBe(requestIdOf(r));
  });
});
