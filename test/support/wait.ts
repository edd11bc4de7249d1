/**
 * Waiting in tests: `waitFor` (poll until truthy), `sleep`, `freePort`. One implementation,
 * shared with bench/ (shared.mjs); never assert on how long something took.
 */
export { freePort, sleep, waitFor } from './shared.mjs';
export type { WaitOptions } from './shared.mjs';

/** Numbers worth reporting (recovery time, 503 latency…), printed when REPORT_NUMBERS=1; never asserted. */
export function report(name: string, value: unknown): void {
  if (process.env.REPORT_NUMBERS === '1') process.stdout.write(`[numbers] ${name}: ${JSON.stringify(value)}\n`);
}
