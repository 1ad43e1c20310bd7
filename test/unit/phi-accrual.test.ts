/**
 * The phi-accrual failure detector: φ against known normal distributions, the bootstrap, the
 * sliding window, and properties that must hold for any input (fast-check).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPhiAccrual, phi, PHI_MAX } from '../../framework/membership/phi-accrual.ts';

/** The normal upper tail P(Y > y), tabulated. */
const TAIL: ReadonlyArray<[y: number, p: number]> = [
  [0, 0.5],
  [1, 0.158655],
  [2, 0.0227501],
  [3, 0.00134990],
  [4, 3.16712e-5],
];

describe('phi(elapsed, mean, std)', () => {
  it.each(TAIL)('matches the normal tail at mean + %d σ', (y, p) => {
    const got = phi(1_000 + y * 100, 1_000, 100);
    // the logistic approximation is good to ~1e-4 in probability (so φ drifts a little far out in the tail)
    expect(Math.abs(10 ** -got - p)).toBeLessThan(2e-4);
    if (y <= 3) expect(got).toBeCloseTo(-Math.log10(p), 1);
    // scale-free: only (elapsed − mean) / std matters
    expect(phi(50 + y * 5, 50, 5)).toBeCloseTo(phi(1_000 + y * 100, 1_000, 100), 9);
  });

  it('is tiny well before the mean and huge long after it', () => {
    expect(phi(0, 1_000, 100)).toBeLessThan(1e-6);
    expect(phi(1_000 + 20 * 100, 1_000, 100)).toBeGreaterThan(50);
    expect(phi(1e12, 1_000, 100)).toBe(PHI_MAX);
  });

  it('is finite, non-negative and non-decreasing in the silence (property)', () => {
    fc.assert(fc.property(
      fc.double({ min: 0, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 1e6, noNaN: true }),
      fc.double({ min: 1, max: 1e5, noNaN: true }), fc.double({ min: 0.1, max: 1e4, noNaN: true }),
      (a, b, mean, std) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const pLo = phi(lo, mean, std);
        const pHi = phi(hi, mean, std);
        return Number.isFinite(pLo) && pLo >= 0 && pHi >= pLo - 1e-9 && pHi <= PHI_MAX;
      },
    ));
  });

  it('a wider distribution is less suspicious of the same late silence (property)', () => {
    fc.assert(fc.property(
      fc.double({ min: 10, max: 1e4, noNaN: true }), fc.double({ min: 1, max: 1e3, noNaN: true }),
      fc.double({ min: 1.01, max: 10, noNaN: true }), fc.double({ min: 0.01, max: 10, noNaN: true }),
      (mean, std, widen, sigmas) => {
        const elapsed = mean + sigmas * std;
        return phi(elapsed, mean, std * widen) <= phi(elapsed, mean, std) + 1e-9;
      },
    ));
  });
});

describe('createPhiAccrual', () => {
  it('is 0 before the first heartbeat and judges the first silence by the estimate', () => {
    const d = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000 });
    expect(d.phi(5_000)).toBe(0);
    d.heartbeat(0);
    // seeded with 750 and 1250: mean 1000, σ 250
    expect(d.meanMs).toBeCloseTo(1_000, 9);
    expect(d.stdDeviationMs).toBeCloseTo(250, 9);
    expect(d.phi(1_000)).toBeCloseTo(-Math.log10(0.5), 2);
    expect(d.phi(1_500)).toBeCloseTo(-Math.log10(0.0227501), 1);
  });

  it('learns a regular interval: mean → interval, σ → the floor', () => {
    const d = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000, maxSampleSize: 50, minStdDeviationMs: 20 });
    let t = 0;
    for (let i = 0; i < 200; i++) d.heartbeat((t += 200));
    expect(d.sampleCount).toBe(50);
    expect(d.meanMs).toBeCloseTo(200, 6); // the seeds have slid out of the window
    expect(d.stdDeviationMs).toBe(20);
    expect(d.phi(t + 200)).toBeCloseTo(-Math.log10(0.5), 2);
    expect(d.phi(t + 260)).toBeCloseTo(-Math.log10(0.00134990), 1); // mean + 3σ
  });

  it('fits a jittery interval: uniform 100..300 ms gives mean 200 and σ ≈ 200/√12', () => {
    const d = createPhiAccrual({ firstHeartbeatEstimateMs: 200, maxSampleSize: 1_000, minStdDeviationMs: 1 });
    let t = 0;
    for (let i = 0; i <= 1_000; i++) d.heartbeat((t += 100 + ((i * 37) % 201)));
    expect(d.meanMs).toBeGreaterThan(190);
    expect(d.meanMs).toBeLessThan(210);
    expect(d.stdDeviationMs).toBeGreaterThan(50);
    expect(d.stdDeviationMs).toBeLessThan(65);
  });

  it('acceptable pause shifts the mean: the same silence is less suspicious', () => {
    const strict = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000 });
    const lenient = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000, acceptableHeartbeatPauseMs: 2_000 });
    for (const d of [strict, lenient]) for (let t = 0; t <= 10_000; t += 1_000) d.heartbeat(t);
    expect(strict.phi(13_000)).toBeGreaterThan(8);
    expect(lenient.phi(13_000)).toBeLessThan(1);
  });

  it('silenceForPhiMs inverts phi (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 5_000 }), { minLength: 1, maxLength: 60 }),
      fc.double({ min: 0.5, max: 20, noNaN: true }), fc.integer({ min: 0, max: 3_000 }),
      (intervals, threshold, pause) => {
        const d = createPhiAccrual({ firstHeartbeatEstimateMs: 1_000, acceptableHeartbeatPauseMs: pause });
        let t = 0;
        d.heartbeat(t);
        for (const i of intervals) d.heartbeat((t += i));
        const s = d.silenceForPhiMs(threshold);
        return d.phi(t + s) >= threshold - 1e-6 && d.phi(t + s * 0.99) <= threshold + 1e-6;
      },
    ));
  });

  it('ignores a heartbeat that goes back in time', () => {
    const d = createPhiAccrual({ firstHeartbeatEstimateMs: 100 });
    d.heartbeat(1_000);
    d.heartbeat(900);
    expect(d.lastHeartbeatMs).toBe(1_000);
    expect(d.sampleCount).toBe(2);
  });

  it.each([
    [{ firstHeartbeatEstimateMs: 0 }, 'firstHeartbeatEstimateMs'],
    [{ firstHeartbeatEstimateMs: 100, maxSampleSize: 1 }, 'maxSampleSize'],
    [{ firstHeartbeatEstimateMs: 100, minStdDeviationMs: -1 }, 'minStdDeviationMs'],
    [{ firstHeartbeatEstimateMs: 100, acceptableHeartbeatPauseMs: Number.NaN }, 'acceptableHeartbeatPauseMs'],
  ])('rejects bad options with a RangeError naming the option (%j)', (options, name) => {
    expect(() => createPhiAccrual(options)).toThrow(RangeError);
    expect(() => createPhiAccrual(options)).toThrow(name);
  });
});
