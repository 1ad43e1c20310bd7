/**
 * The phi-accrual failure detector (Hayashibara et al., 2004), as Akka and Cassandra use it.
 *
 * Instead of a yes/no "missed N heartbeats", it turns the time since the last heartbeat into a
 * suspicion level φ = −log10(P(a heartbeat arrives later than this)), where the arrival
 * distribution is a normal distribution fitted to the recent inter-arrival times. φ = 1 means a 10 %
 * chance the node is still fine, φ = 8 one in 10⁸. Callers pick a threshold; a jittery link raises
 * the fitted deviation and so tolerates more jitter on its own.
 */

export const DEFAULT_MAX_SAMPLE_SIZE = 200;
export const DEFAULT_MIN_STD_DEVIATION_MS = 100;
export const DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE_MS = 0;

/** Options of {@link createPhiAccrual}. */
export interface PhiAccrualOptions {
  /** Expected heartbeat interval, used until real intervals are known (seeded as two samples, ±¼). */
  firstHeartbeatEstimateMs: number;
  /** Inter-arrival times kept (a sliding window). @default 200 */
  maxSampleSize?: number;
  /** Floor on the fitted standard deviation, so a perfectly regular sender is not judged too strictly. @default 100 */
  minStdDeviationMs?: number;
  /** Extra margin added to the mean: pauses (GC, a slow event loop) this long are not suspicious. @default 0 */
  acceptableHeartbeatPauseMs?: number;
}

/** Suspicion of one monitored node. */
export interface PhiAccrualDetector {
  /** Record a heartbeat arriving at `nowMs`. */
  heartbeat(nowMs: number): void;
  /** Suspicion at `nowMs`: 0 before the first heartbeat, then growing with the silence. */
  phi(nowMs: number): number;
  /** Milliseconds after the last heartbeat at which φ reaches `threshold`, with the current statistics. */
  silenceForPhiMs(threshold: number): number;
  /** Inter-arrival samples held (seeds included). */
  readonly sampleCount: number;
  readonly meanMs: number;
  readonly stdDeviationMs: number;
  /** Time of the last heartbeat, or undefined before the first. */
  readonly lastHeartbeatMs: number | undefined;
}

/**
 * φ for a silence of `elapsedMs` when inter-arrival times are normal(`meanMs`, `stdDeviationMs`).
 * Uses the logistic approximation of the normal CDF (Akka's `PhiAccrualFailureDetector.phi`),
 * accurate to about 1e-4 and free of `erf`. Finite and non-negative for every finite input.
 */
export function phi(elapsedMs: number, meanMs: number, stdDeviationMs: number): number {
  const y = (elapsedMs - meanMs) / stdDeviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  // P(later) = 1 − CDF(y) = e / (1 + e). Two forms so neither branch loses precision.
  const p = elapsedMs > meanMs ? e / (1 + e) : 1 - 1 / (1 + e);
  if (p <= 0) return PHI_MAX;
  return Math.min(PHI_MAX, Math.max(0, -Math.log10(p)));
}

/** φ is capped here: beyond double precision the probability is 0 and the node is as good as gone. */
export const PHI_MAX = 300;

function checkPositive(name: string, value: number, allowZero = false): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`phi accrual option ${name} must be a finite number ${allowZero ? '≥ 0' : '> 0'}, got ${String(value)}`);
  }
}

/**
 * A detector for one monitored node.
 * @example
 * const d = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000 });
 * d.heartbeat(clock.now());
 * if (d.phi(clock.now()) >= 8) markSuspect();
 */
export function createPhiAccrual(options: PhiAccrualOptions): PhiAccrualDetector {
  const first = options.firstHeartbeatEstimateMs;
  checkPositive('firstHeartbeatEstimateMs', first);
  const maxSamples = options.maxSampleSize ?? DEFAULT_MAX_SAMPLE_SIZE;
  if (!Number.isInteger(maxSamples) || maxSamples < 2) throw new RangeError(`phi accrual option maxSampleSize must be an integer ≥ 2, got ${String(maxSamples)}`);
  const minStd = options.minStdDeviationMs ?? DEFAULT_MIN_STD_DEVIATION_MS;
  checkPositive('minStdDeviationMs', minStd);
  const pause = options.acceptableHeartbeatPauseMs ?? DEFAULT_ACCEPTABLE_HEARTBEAT_PAUSE_MS;
  checkPositive('acceptableHeartbeatPauseMs', pause, true);

  const ring = new Float64Array(maxSamples);
  let head = 0;
  let count = 0;
  let sum = 0;
  let sumSq = 0;
  let last: number | undefined;

  const add = (x: number): void => {
    if (count === maxSamples) {
      const old = ring[head]!;
      sum -= old;
      sumSq -= old * old;
    } else {
      count++;
    }
    ring[head] = x;
    head = (head + 1) % maxSamples;
    sum += x;
    sumSq += x * x;
  };
  // Akka's bootstrap: two samples around the estimate, so the first silence is judged sensibly.
  const seedStd = first / 4;
  add(first - seedStd);
  add(first + seedStd);

  const mean = (): number => sum / count;
  const std = (): number => {
    const m = mean();
    const variance = Math.max(0, sumSq / count - m * m);
    return Math.max(Math.sqrt(variance), minStd);
  };

  return {
    heartbeat(nowMs) {
      if (last !== undefined) {
        const interval = nowMs - last;
        if (interval >= 0) add(interval);
      }
      if (last === undefined || nowMs >= last) last = nowMs;
    },
    phi(nowMs) {
      if (last === undefined) return 0;
      return phi(Math.max(0, nowMs - last), mean() + pause, std());
    },
    silenceForPhiMs(threshold) {
      const m = mean() + pause;
      const s = std();
      if (threshold <= 0) return 0;
      // φ is monotonic in the silence: bisect between the mean and a silence far beyond any threshold.
      let lo = 0;
      let hi = m + 50 * s;
      for (let i = 0; i < 60; i++) {
        const mid = (lo + hi) / 2;
        if (phi(mid, m, s) >= threshold) hi = mid;
        else lo = mid;
      }
      return hi;
    },
    get sampleCount() { return count; },
    get meanMs() { return mean(); },
    get stdDeviationMs() { return std(); },
    get lastHeartbeatMs() { return last; },
  };
}
