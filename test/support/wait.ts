const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a truthy value; fails after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | false | null | undefined>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

/** Numbers worth reporting (recovery time, 503 latency…), printed when REPORT_NUMBERS=1; never asserted. */
export function report(name: string, value: unknown): void {
  if (process.env.REPORT_NUMBERS === '1') process.stdout.write(`[numbers] ${name}: ${JSON.stringify(value)}\n`);
}
