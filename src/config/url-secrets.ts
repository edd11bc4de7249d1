/**
 * Query parameters that carry a password: ioredis reads `password` from a redis:// URL's query
 * (`?password=…`), and `pass` is the other common spelling. Compared case-insensitively.
 */
const PASSWORD_PARAMS = new Set(['password', 'pass']);

/** A query key as URLSearchParams (and so ioredis) reads it: percent-decoded, `+` a space. */
const decodeKey = (key: string) => new URLSearchParams(`${key}=`).keys().next().value ?? '';

/**
 * `url` with the value of every password query parameter replaced by ***, safe to log. Works
 * on the text, so on a URL no parser accepts too (config errors echo such URLs); the userinfo
 * password is masked by the callers.
 */
export function maskPasswordParams(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const end = hash < 0 ? url.length : hash;
  const query = url
    .slice(q + 1, end)
    .split('&')
    .map((pair) => {
      const key = pair.split('=', 1)[0];
      return PASSWORD_PARAMS.has(decodeKey(key).toLowerCase()) ? `${key}=***` : pair;
    })
    .join('&');
  return `${url.slice(0, q + 1)}${query}${url.slice(end)}`;
}
