import { createHash, timingSafeEqual } from 'node:crypto';

// RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 §2.1: `Bearer` 1*SP token.
const BEARER = /^bearer +([\x21-\x7e]{1,512})$/i;

/** SHA-256 first, so both sides have the same length and the comparison is constant time. */
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** A configured secret checked against `Authorization: Bearer <token>` headers in constant time. */
export class BearerToken {
  private readonly expected: Buffer | null;

  constructor(token: string) {
    this.expected = token ? digest(token) : null;
  }

  /** Whether a token is configured at all. */
  get configured(): boolean {
    return this.expected !== null;
  }

  /** True when `header` is `Bearer <the token>`; false for anything else, or when no token is configured. */
  matches(header: unknown): boolean {
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    return this.expected !== null && match !== null && timingSafeEqual(digest(match[1]), this.expected);
  }
}
