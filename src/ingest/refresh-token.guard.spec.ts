import { jest } from '@jest/globals';
import { ExecutionContext, ForbiddenException, Logger, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { RefreshTokenGuard } from './refresh-token.guard.js';

const TOKEN = 'a-long-enough-refresh-token';
const guard = (token: string) => new RefreshTokenGuard({ get: () => token } as unknown as ConfigService<never, true>);
const sent: Record<string, string> = {};
const reply = { header: (name: string, value: string) => (sent[name] = value) };
const ctx = (authorization?: unknown) =>
  ({ switchToHttp: () => ({ getRequest: () => ({ headers: { authorization } }), getResponse: () => reply }) }) as unknown as ExecutionContext;

describe('RefreshTokenGuard', () => {
  beforeAll(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  // RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 §2.1: one or more spaces after it.
  it.each([[`Bearer ${TOKEN}`], [`bearer ${TOKEN}`], [`BEARER ${TOKEN}`], [`Bearer  ${TOKEN}`]])('lets the right bearer token through: %j', (authorization) => {
    expect(guard(TOKEN).canActivate(ctx(authorization))).toBe(true);
  });

  it.each([[undefined], [''], [TOKEN], [`Bearer ${TOKEN} `], [`Bearer${TOKEN}`], [`Bearer\t${TOKEN}`], [`Basic ${TOKEN}`], [`Bearer ${TOKEN.slice(0, -1)}`], [`Bearer ${TOKEN}x`], [['Bearer', TOKEN]]])(
    'rejects %j with 401 and WWW-Authenticate: Bearer',
    (authorization) => {
      delete sent['WWW-Authenticate'];
      expect(() => guard(TOKEN).canActivate(ctx(authorization))).toThrow(UnauthorizedException);
      expect(sent['WWW-Authenticate']).toBe('Bearer');
    },
  );

  it('is disabled (403) without a configured token, whatever is sent', () => {
    expect(() => guard('').canActivate(ctx('Bearer '))).toThrow(ForbiddenException);
    expect(() => guard('').canActivate(ctx(`Bearer ${TOKEN}`))).toThrow(ForbiddenException);
  });
});
