import type { Sample } from '../timeseries/timeseries.types.js';

/**
 * A venue's price samples (oldest first) without those that moved more than `maxJumpPct` percent
 * from the venue's previous price of less than `windowMs` before: its newest stored sample
 * (`reference`), then each sample kept. Stored (DUPLICATE_POLICY FIRST), one absurd tick stays
 * in its hour, day and every tier for good, and with two venues it is half of the composite:
 * a venue's `999999998` made the hour's price 500 million. Bitcoin has not moved 20 % within
 * minutes on the venues used; single venues' flash crashes (87 % in a minute) are what this keeps
 * out. The window makes it heal: once the reference is older than `windowMs` (the venue stale,
 * or a bad reference), the next sample is taken as it comes. `maxJumpPct` 0 keeps everything.
 */
export function withoutPriceJumps(samples: readonly Sample[], reference: Sample | null, maxJumpPct: number, windowMs: number): { kept: Sample[]; dropped: number } {
  if (maxJumpPct <= 0) return { kept: [...samples], dropped: 0 };
  const kept: Sample[] = [];
  let previous = reference;
  for (const s of samples) {
    const after = previous !== null && s.timestamp > previous.timestamp;
    if (after && s.timestamp - previous!.timestamp < windowMs && Math.abs(s.value / previous!.value - 1) * 100 > maxJumpPct) continue;
    kept.push(s);
    if (previous === null || after) previous = s;
  }
  return { kept, dropped: samples.length - kept.length };
}
