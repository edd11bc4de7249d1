import { API_HELMET_OPTIONS, API_SECURITY_HEADERS, PAGE_HELMET_OPTIONS, securityHeaders } from './security-headers.js';

describe('securityHeaders', () => {
  it("computes helmet's full set for pages, lower-cased, with a CSP that lets Swagger UI and the dashboard run", () => {
    const headers = securityHeaders(PAGE_HELMET_OPTIONS);
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

  it('gives API responses the OWASP REST set and nothing that only matters to rendered pages', () => {
    expect(securityHeaders(API_HELMET_OPTIONS)).toEqual({
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
    });
    expect(API_SECURITY_HEADERS).toEqual(securityHeaders(API_HELMET_OPTIONS));
  });

  it('follows the options it is given', () => {
    expect(securityHeaders({ contentSecurityPolicy: false, frameguard: { action: 'deny' } })).toMatchObject({ 'x-frame-options': 'DENY' });
    expect(securityHeaders({ contentSecurityPolicy: false })).not.toHaveProperty('content-security-policy');
  });
});
