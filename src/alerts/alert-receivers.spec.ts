import { validateEnv } from '../config/env.validation.js';
import { receiverUrlProblem } from '../config/webhook-url.js';
import { toReceiver } from './alert-receivers.js';

describe('webhook receivers', () => {
  it('allows https anywhere and http to loopback only', () => {
    for (const ok of ['https://hooks.example.com/x?token=1', 'http://127.0.0.1:8080/hook', 'http://localhost/h', 'http://[::1]:9/h', 'http://127.1.2.3/']) {
      expect([ok, receiverUrlProblem(ok)]).toEqual([ok, null]);
    }
    for (const bad of ['http://hooks.example.com/x', 'http://10.0.0.1/', 'http://127.0.0.1.example.com/', 'ftp://127.0.0.1/', 'file:///etc/passwd', 'not a url']) {
      expect([bad, receiverUrlProblem(bad)]).toEqual([bad, expect.any(String)]);
    }
  });

  it('names a receiver by a digest of its URL and logs its origin only', () => {
    expect(toReceiver('https://u:p@hooks.example.com/secret-path?token=abc')).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{12}$/),
      url: 'https://u:p@hooks.example.com/secret-path?token=abc',
      label: 'https://hooks.example.com',
    });
  });

  it('fails startup naming ALERT_WEBHOOK_URLS or ALERT_WEBHOOK_SECRET, never echoing a URL or the secret', () => {
    const run = (env: Record<string, string>) => {
      try {
        validateEnv(env);
        return 'ok';
      } catch (err) {
        return (err as Error).message;
      }
    };
    const secret = 'a-long-enough-secret-123';
    expect(run({ ALERT_WEBHOOK_URLS: 'https://a.example/h, http://127.0.0.1:9/h', ALERT_WEBHOOK_SECRET: secret })).toBe('ok');
    const plain = run({ ALERT_WEBHOOK_URLS: 'https://a.example/h,http://hooks.example.com/tok123', ALERT_WEBHOOK_SECRET: secret });
    expect(plain).toContain('ALERT_WEBHOOK_URLS: URL #2 http:// is only allowed to a loopback host');
    expect(plain).not.toContain('tok123');
    const noSecret = run({ ALERT_WEBHOOK_URLS: 'https://a.example/h', ALERT_WEBHOOK_SECRET: 'short-secret' });
    expect(noSecret).toContain('ALERT_WEBHOOK_SECRET: must be set (16+ characters)');
    expect(noSecret).not.toContain('short-secret');
    expect(run({ ALERT_WEBHOOK_RETRY_BASE_MS: '0' })).toContain('ALERT_WEBHOOK_RETRY_BASE_MS');
    const twice = run({ ALERT_WEBHOOK_URLS: 'https://u:pw1@a.example/h?token=tok456,https://u:pw1@a.example/h?token=tok456', ALERT_WEBHOOK_SECRET: secret });
    expect(twice).toContain('ALERT_WEBHOOK_URLS');
    expect(twice).toContain('unique');
    expect(twice).not.toMatch(/tok456|pw1/);
  });
});
