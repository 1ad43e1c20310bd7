/**
 * breaker-closed, breaker-open, policy-stack — the circuit breaker and a full policy stack.
 *
 * breaker-closed: success-path calls/s of `breaker.execute(noop)` (one call in flight, sequential
 *   awaits) vs cockatiel 3 `circuitBreaker(handleAll, { breaker: new ConsecutiveBreaker(5) }).execute`
 *   (the bench's ratio) and opossum 9 `fire` (a second row; target 1.2).
 * breaker-open: fast-fail rejections/s of an open breaker vs an open opossum breaker (target 2).
 * policy-stack: retry + breaker + bulkhead + timeout (wrap) around an async no-op vs the bare call:
 *   reported as per-call overhead in µs (ratio = bare/stacked time, reported only).
 */
import { circuitBreaker as cockatielBreaker, ConsecutiveBreaker, handleAll } from 'cockatiel';
import CircuitBreakerOpossum from 'opossum';
import { createBulkhead } from '../../actors/bulkhead/bulkhead.ts';
import { createCircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { wrap } from '../../actors/policy/policy.ts';
import { timeout } from '../../actors/policy/timeout.ts';
import { createRetry } from '../../actors/retry/retry.ts';
import { alternate, median, row, tick, type Bench } from './harness.ts';

const N = 200_000;
const noop = async (): Promise<number> => 1;
const fail = async (): Promise<number> => { throw new Error('down'); };

async function rate(n: number, call: () => Promise<number>, expectOk: boolean): Promise<number> {
  await tick();
  let ok = 0;
  let rejected = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    try {
      ok += await call();
    } catch {
      rejected++;
    }
  }
  const ms = performance.now() - t0;
  if (expectOk ? ok !== n : rejected !== n) throw new Error(`breaker bench: ${ok} ok, ${rejected} rejected of ${n}`);
  return (n / ms) * 1000;
}

export const closed: Bench = {
  name: 'breaker-closed',
  description: 'breaker.execute(async noop), closed, vs cockatiel circuitBreaker and opossum fire',
  needsNats: false,
  async run(ctx) {
    const ours = createCircuitBreaker({ consecutiveFailures: 5 });
    const cockatiel = cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) });
    const opossum = new CircuitBreakerOpossum(noop, { timeout: false, errorThresholdPercentage: 50, resetTimeout: 10_000 });
    const [o, c, p] = await alternate([
      { name: 'troupe breaker', round: () => rate(N, () => ours.execute(noop), true) },
      { name: 'cockatiel', round: () => rate(N, () => cockatiel.execute(noop), true) },
      { name: 'opossum', round: () => rate(N / 4, () => opossum.fire() as Promise<number>, true) },
    ], ctx.rounds, ctx.log);
    ours.dispose();
    opossum.shutdown();
    return [
      row('breaker-closed', 'success-path throughput (calls/s)', median(o!), median(c!), 'cockatiel circuitBreaker', 1.0, 'higher'),
      row('breaker-closed', 'success-path throughput (calls/s)', median(o!), median(p!), 'opossum fire', 1.2, 'higher'),
    ];
  },
};

export const open: Bench = {
  name: 'breaker-open',
  description: 'fast-fail rejections/s of an open breaker vs an open opossum breaker',
  needsNats: false,
  async run(ctx) {
    const ours = createCircuitBreaker({ consecutiveFailures: 1, openMs: 3_600_000 });
    await ours.execute(fail).catch(() => undefined);
    if (ours.state !== 'open') throw new Error('breaker-open: troupe breaker did not open');
    const opossum = new CircuitBreakerOpossum(fail, { timeout: false, resetTimeout: 3_600_000 });
    opossum.open();
    const [o, p] = await alternate([
      { name: 'troupe open breaker', round: () => rate(N, () => ours.execute(noop), false) },
      { name: 'opossum open breaker', round: () => rate(N / 4, () => opossum.fire() as Promise<number>, false) },
    ], ctx.rounds, ctx.log);
    ours.dispose();
    opossum.shutdown();
    return [row('breaker-open', 'rejections/s', median(o!), median(p!), 'opossum fire (open)', 2.0, 'higher')];
  },
};

export const stack: Bench = {
  name: 'policy-stack',
  description: 'retry + breaker + bulkhead + timeout around an async no-op vs the bare call (per-call overhead)',
  needsNats: false,
  async run(ctx) {
    const breaker = createCircuitBreaker({ consecutiveFailures: 5 });
    const policy = wrap(createRetry({ maxAttempts: 3 }), breaker, createBulkhead({ limit: 64 }), timeout({ timeoutMs: 10_000 }));
    const [s, b] = await alternate([
      { name: 'stacked', round: () => rate(N / 2, () => policy.execute(noop), true) },
      { name: 'bare', round: () => rate(N / 2, noop, true) },
    ], ctx.rounds, ctx.log);
    breaker.dispose();
    const stackedUs = 1e6 / median(s!);
    const bareUs = 1e6 / median(b!);
    ctx.log(`policy-stack: ${stackedUs.toFixed(2)} µs per call stacked, ${bareUs.toFixed(2)} µs bare → ${(stackedUs - bareUs).toFixed(2)} µs overhead`);
    return [
      row('policy-stack', 'time per call (µs)', stackedUs, bareUs, 'bare async call', 0, 'lower'),
      { bench: 'policy-stack', metric: 'overhead per call (µs)', ours: stackedUs - bareUs, baseline: 0, baselineName: 'bare async call', ratio: NaN, target: 0, pass: true },
    ];
  },
};
