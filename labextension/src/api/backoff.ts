/**
 * Reconnect delays: exponential growth with "equal jitter" (half fixed, half random), so a
 * server restart is not met by every open view at the same instant, yet each retry still
 * waits at least half its step. Steps double from 0.5–1 s up to a 15–30 s cap (docs/architecture.md:
 * 0.5 s → 30 s); every delay is within [baseMs, capMs].
 */

export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  /** A number in [0, 1); injectable for tests. */
  random?: () => number;
}

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;

export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? BACKOFF_BASE_MS;
    this.capMs = options.capMs ?? BACKOFF_CAP_MS;
    this.random = options.random ?? Math.random;
  }

  /** Retries since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next retry (and count it). */
  next(): number {
    // the step for attempt n is base·2^(n+1), capped; the exponent is capped too so it never overflows
    const step = Math.min(this.capMs, this.baseMs * 2 ** (Math.min(this.attempt, 30) + 1));
    this.attempt += 1;
    const r = Math.min(Math.max(this.random(), 0), 1);
    const delay = step / 2 + (r * step) / 2;
    return Math.min(this.capMs, Math.max(this.baseMs, delay));
  }

  reset(): void {
    this.attempt = 0;
  }
}
