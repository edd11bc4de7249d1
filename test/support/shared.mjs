// Plain JavaScript so that both the e2e support (TypeScript, see wait.ts) and the bench scripts
// (bench/*.mjs, run by node as they are) use these; the types are in shared.d.mts.
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Calls `check` every `intervalMs` until it returns a truthy value, and returns that value.
 * Throws when `timeoutMs` has passed, naming `what`; an error thrown by `check` is thrown at once
 * (catch inside `check` what is expected while waiting, e.g. a connection refused).
 */
export async function waitFor(what, check, { timeoutMs = 20_000, intervalMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A loopback port nothing listens on right now (the OS picks it by a bind to port 0). */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address();
  await new Promise((resolve) => server.close(() => resolve()));
  return port;
}
