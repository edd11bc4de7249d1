import { jest } from '@jest/globals';
import { ExecutionContext, ForbiddenException, Logger, UnauthorizedException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { RefreshTokenGuard } from './refresh-token.guard.js';

const TOKEN = 'a-long-enough-refresh-token';
const guard = (token: string) => new RefreshTokenGuard({ get: () => token } as unknown as ConfigService<never, true>);
const ctx = (authorization?: unknown) =>
  ({ switchToHttp: () => ({ getRequest: () => ({ headers: { authorization } }) }) }) as unknown as ExecutionContext;

describe('RefreshTokenGuard', () => {
  beforeAll(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  it('lets the right bearer token through', () => {
    expect(guard(TOKEN).canActivate(ctx(`Bearer ${TOKEN}`))).toBe(true);
  });

  it.each([[undefined], [''], [TOKEN], [`Bearer ${TOKEN} `], [`bearer ${TOKEN}`], [`Bearer ${TOKEN.slice(0, -1)}`], [`Bearer ${TOKEN}x`], [['Bearer', TOKEN]]])(
    'rejects %j with 401',
    (authorization) => {
      expect(() => guard(TOKEN).canActivate(ctx(authorization))).toThrow(UnauthorizedException);
    },
  );

  it('is disabled (403) without a configured token, whatever is sent', () => {
    expect(() => guard('').canActivate(ctx('Bearer '))).toThrow(ForbiddenException);
    expect(() => guard('').canActivate(ctx(`Bearer ${TOKEN}`))).toThrow(ForbiddenException);
  });
});
