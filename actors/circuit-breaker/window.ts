/**
 * Sliding windows of call outcomes for the breaker's rate rules: count-based (the last N calls)
 * and time-based (the calls of the last D ms, in buckets). Both answer the same question: of the
 * calls in the window, how many failed and how many were slow.
 */
import type { Clock } from '../../framework/clock.ts';

export interface WindowTotals {
  readonly calls: number;
  readonly failures: number;
  readonly slow: number;
}

export interface OutcomeWindow {
  record(failed: boolean, slow: boolean): void;
  totals(): WindowTotals;
  reset(): void;
}

/** The last `size` calls. */
export function countWindow(size: number): OutcomeWindow {
  // one byte per call: bit 0 failed, bit 1 slow
  const ring = new Uint8Array(size);
  let next = 0;
  let filled = 0;
  let failures = 0;
  let slow = 0;
  return {
    record(failed, isSlow) {
      if (filled === size) {
        const old = ring[next]!;
        failures -= old & 1;
        slow -= (old >> 1) & 1;
      } else {
        filled++;
      }
      const v = (failed ? 1 : 0) | (isSlow ? 2 : 0);
      ring[next] = v;
      failures += v & 1;
      slow += (v >> 1) & 1;
      next = next + 1 === size ? 0 : next + 1;
    },
    totals: () => ({ calls: filled, failures, slow }),
    reset() {
      ring.fill(0);
      next = filled = failures = slow = 0;
    },
  };
}

/** Calls of the last `durationMs`, kept in `buckets` buckets (the window slides a bucket at a time). */
export function timeWindow(durationMs: number, buckets: number, clock: Clock): OutcomeWindow {
  const bucketMs = durationMs / buckets;
  const calls = new Float64Array(buckets);
  const fails = new Float64Array(buckets);
  const slows = new Float64Array(buckets);
  let currentBucket = Math.floor(clock.now() / bucketMs);
  const advance = (): number => {
    const b = Math.floor(clock.now() / bucketMs);
    if (b !== currentBucket) {
      // clear every bucket that expired since the last call (at most all of them)
      const steps = Math.min(buckets, b - currentBucket);
      for (let i = 1; i <= steps; i++) {
        const j = (currentBucket + i) % buckets;
        calls[j] = fails[j] = slows[j] = 0;
      }
      currentBucket = b;
    }
    return b % buckets;
  };
  const sum = (a: Float64Array): number => {
    let s = 0;
    for (let i = 0; i < buckets; i++) s += a[i]!;
    return s;
  };
  return {
    record(failed, isSlow) {
      const j = advance();
      calls[j]!++;
      if (failed) fails[j]!++;
      if (isSlow) slows[j]!++;
    },
    totals() {
      advance();
      return { calls: sum(calls), failures: sum(fails), slow: sum(slows) };
    },
    reset() {
      calls.fill(0);
      fails.fill(0);
      slows.fill(0);
    },
  };
}
