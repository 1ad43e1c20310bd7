/**
 * A hybrid logical clock (Kulkarni et al., 2014): timestamps that follow the injected clock's time
 * when it moves forward, never go backwards, and move past every timestamp this clock has
 * observed — so a write made after reading a version gets a later version, whatever the clocks'
 * skew between the writer and the reader.
 */
import type { Clock } from '../../framework/clock.ts';

/** A hybrid-logical-clock timestamp: physical ms plus a logical counter for ties. */
export interface HlcTimestamp {
  readonly wallMs: number;
  readonly logical: number;
}

/** One node's hybrid logical clock. */
export interface HybridLogicalClock {
  /** A timestamp later than every one returned or observed before. */
  now(): HlcTimestamp;
  /** Take a timestamp seen on a message into account (the next `now()` is later than it). */
  observe(ts: HlcTimestamp): void;
}

/** Orders timestamps: negative when `a` is earlier, 0 when equal, positive when later. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  return a.wallMs !== b.wallMs ? a.wallMs - b.wallMs : a.logical - b.logical;
}

/**
 * A hybrid logical clock on `clock` (never the wall clock directly).
 * @example
 * const hlc = createHlc(system.clock);
 * const ts = hlc.now();  // { wallMs, logical }
 */
export function createHlc(clock: Clock): HybridLogicalClock {
  let wallMs = 0;
  let logical = 0;
  return {
    now() {
      const pt = Math.floor(clock.now());
      if (pt > wallMs) {
        wallMs = pt;
        logical = 0;
      } else {
        logical++;
      }
      return { wallMs, logical };
    },
    observe(ts) {
      if (ts.wallMs > wallMs) {
        wallMs = ts.wallMs;
        logical = ts.logical;
      } else if (ts.wallMs === wallMs && ts.logical > logical) {
        logical = ts.logical;
      }
    },
  };
}
