import { maskPasswordParams } from '../config/url-secrets.js';

/** The URL with any password replaced (userinfo or `?password=`), safe to log. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return maskPasswordParams(u.toString());
  } catch {
    return '<unparseable REDIS_URL>';
  }
}
