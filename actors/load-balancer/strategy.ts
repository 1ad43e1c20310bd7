/**
 * How a load balancer picks a backend: pure functions of the candidates' load figures and a seeded
 * Rng, so every strategy is testable without a network.
 */
import type { Rng } from '../../framework/clock.ts';

/** Balancing strategies. */
export const LoadBalancingStrategy = {
  RoundRobin: 'round-robin',
  Random: 'random',
  LeastOutstanding: 'least-outstanding',
  /** Power of two choices over a peak EWMA of latency × (outstanding + 1), as in Finagle and Linkerd. */
  P2cEwma: 'p2c-ewma',
  /** No client-side choice: members share a NATS queue group and the server picks (./queue-group.ts). */
  QueueGroup: 'queue-group',
} as const;
export type LoadBalancingStrategy = (typeof LoadBalancingStrategy)[keyof typeof LoadBalancingStrategy];
/** The strategies in which the balancer itself picks the backend. */
export type PickerStrategy = Exclude<LoadBalancingStrategy, 'queue-group'>;

export const STRATEGIES: readonly LoadBalancingStrategy[] = Object.values(LoadBalancingStrategy);

/** What a strategy sees of a backend. */
export interface Candidate {
  readonly address: string;
  /** Requests sent to it and not yet answered. */
  readonly outstanding: number;
  /** Its latency estimate (peak EWMA), ms; 0 before the first answer. */
  readonly ewmaMs: number;
}

/** Picks one of the candidates (non-empty, in a stable order) for the next request. */
export type Picker = (candidates: readonly Candidate[]) => Candidate;

/** A picker for `strategy`. Round-robin keeps its cursor in the returned closure. */
export function createPicker(strategy: PickerStrategy, rng: Rng): Picker {
  switch (strategy) {
    case 'round-robin': {
      let cursor = 0;
      return (cs) => cs[cursor++ % cs.length]!;
    }
    case 'random':
      return (cs) => cs[rng.int(cs.length)]!;
    case 'least-outstanding':
      return (cs) => {
        // ties are broken at random, or the first of equals would take every burst
        let best: Candidate[] = [];
        let min = Number.POSITIVE_INFINITY;
        for (const c of cs) {
          if (c.outstanding < min) {
            min = c.outstanding;
            best = [c];
          } else if (c.outstanding === min) {
            best.push(c);
          }
        }
        return best.length === 1 ? best[0]! : best[rng.int(best.length)]!;
      };
    case 'p2c-ewma':
      return (cs) => {
        if (cs.length === 1) return cs[0]!;
        const i = rng.int(cs.length);
        let j = rng.int(cs.length - 1);
        if (j >= i) j++;
        const a = cs[i]!;
        const b = cs[j]!;
        return cost(a) <= cost(b) ? a : b;
      };
    default:
      throw new RangeError(`load balancer option strategy must be one of ${STRATEGIES.filter((x) => x !== 'queue-group').join(', ')}, got ${JSON.stringify(strategy)}`);
  }
}

/** Finagle's load metric: expected latency of one more request. */
export function cost(c: Candidate): number {
  return (c.ewmaMs + 1) * (c.outstanding + 1);
}

/**
 * A peak-sensitive, time-decayed moving average of latency (Finagle's PeakEwma): a slower sample
 * than the estimate is taken at once; faster ones pull it down with weight 1 − e^(−Δt/τ), and with
 * at least `minWeight`, so a burst of answers within one clock tick still moves it.
 */
export class PeakEwma {
  private value = 0;
  private stampMs: number | undefined;
  constructor(private readonly decayMs: number, private readonly minWeight = 0.1) {}
  /** The estimate as of the last sample. */
  get ms(): number {
    return this.value;
  }
  /**
   * The estimate at `nowMs`: decayed towards 0 over the time since the last sample (as Finagle's
   * PeakEwma reads it), so a backend that was slow and has since been left alone is tried again
   * instead of being starved by its old estimate forever.
   */
  at(nowMs: number): number {
    if (this.stampMs === undefined || nowMs <= this.stampMs) return this.value;
    return this.value * Math.exp(-(nowMs - this.stampMs) / this.decayMs);
  }
  observe(rttMs: number, nowMs: number): void {
    if (this.stampMs === undefined || rttMs > this.value) {
      this.value = rttMs;
    } else {
      const keep = Math.min(Math.exp(-(nowMs - this.stampMs) / this.decayMs), 1 - this.minWeight);
      this.value = this.value * keep + rttMs * (1 - keep);
    }
    this.stampMs = nowMs;
  }
}
