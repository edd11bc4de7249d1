/** The URL with any password replaced, safe to log. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable REDIS_URL>';
  }
}
