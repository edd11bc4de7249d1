/**
 * Lets one kind of warning through at most once per `intervalMs`, saying how many were held back
 * since: during a Redis outage each request logged two warnings of its own (~400 lines in 25 s
 * per instance at a few requests a second), besides its access line.
 */
export class LogSampler {
  private last = -Infinity;
  private held = 0;

  constructor(
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** What to append to the line when it may be logged now (`''`, or how many were held back), else undefined. */
  take(): string | undefined {
    const t = this.now();
    if (t - this.last < this.intervalMs) {
      this.held++;
      return undefined;
    }
    const note = this.held > 0 ? ` (${this.held} more like it not logged since the last)` : '';
    this.last = t;
    this.held = 0;
    return note;
  }
}
