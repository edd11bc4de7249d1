import { readFileSync } from 'node:fs';

function packageVersion(): string {
  try {
    // src/config → ../../package.json, and dist/config → ../../package.json (the image has it too).
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Sent to every upstream (UPSTREAM_USER_AGENT overrides it; add a contact there). Coinbase
 * refuses calls without a User-Agent, and every provider asks clients to say who they are.
 */
export const DEFAULT_USER_AGENT = `is-bitcoin-lit/${packageVersion()} (self-hosted BTC price and sentiment poller)`;
