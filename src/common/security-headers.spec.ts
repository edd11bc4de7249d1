import { securityHeaders } from './security-headers.js';

describe('securityHeaders', () => {
  it("computes helmet's headers for our policy once, lower-cased", () => {
    const headers = securityHeaders();
    expect(headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'SAMEORIGIN',
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
    });
    expect(headers['content-security-policy']).toContain("default-src 'self'");
    expect(headers['content-security-policy']).toContain("script-src 'self' 'unsafe-inline'");
    expect(headers['content-security-policy']).toContain("img-src 'self' data: validator.swagger.io");
    expect(headers).not.toHaveProperty('x-powered-by');
  });

  it('follows the options it is given', () => {
    expect(securityHeaders({ contentSecurityPolicy: false, frameguard: { action: 'deny' } })).toMatchObject({ 'x-frame-options': 'DENY' });
    expect(securityHeaders({ contentSecurityPolicy: false })).not.toHaveProperty('content-security-policy');
  });
});
