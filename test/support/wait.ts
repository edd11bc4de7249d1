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

const HOUR_MS = 3_600_000;

/**
 * Date.now(), at least `beforeEndMs` before the next UTC hour and `afterStartMs` past the last:
 * closer to an hour's edge, it waits until `afterStartMs` into the next hour first. For tests
 * whose fakes stamp data around this time (a ticker a moment before it) while the service stamps
 * other data with its own clock moments later (a ticker without a time): all of it must fall in
 * the same hourly bucket, or a bucket holds some venues only. Waits at most 20 s, under the
 * 30 s a hook may take (jest.config.js).
 */
export async function nowClearOfHourEdges(beforeEndMs = 15_000, afterStartMs = 5_000): Promise<number> {
  const into = Date.now() % HOUR_MS;
  const wait = into < afterStartMs ? afterStartMs - into : into > HOUR_MS - beforeEndMs ? HOUR_MS - into + afterStartMs : 0;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  return Date.now();
}
