/**
 * The load balancer on the simulator, in front of four workers on four nodes found through the
 * receptionist: distribution per strategy, P2C steering away from a slow backend, ejection by a
 * backend's breaker and return through half-open, backends that leave stop receiving work at once,
 * and no request lost when a backend dies holding it (fail over, or a typed error).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, type LoadBalancer, type LoadBalancerOptions } from '../../actors/load-balancer/load-balancer.ts';
import { serveQueueGroup } from '../../actors/load-balancer/queue-group.ts';
import { cost, createPicker, PeakEwma, STRATEGIES, type LoadBalancingStrategy, type PickerStrategy } from '../../actors/load-balancer/strategy.ts';
import { spawnWorker } from '../../examples/load-balancer.ts';
import { messages, type WorkDone } from '../../examples/load-balancer.pb.ts';
import { createRng } from '../../framework/clock.ts';
import { AskTimeoutError, BackendLostError, NoBackendsError, RemoteError } from '../../framework/errors.ts';
import { joinCluster, type Membership } from '../../framework/membership/membership.ts';
import { createReceptionist, type Receptionist } from '../../framework/membership/receptionist.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';

const open: Simulation[] = [];
const balancers: LoadBalancer[] = [];
afterEach(async () => {
  await Promise.all(balancers.splice(0).map((b) => b.dispose()));
  await Promise.all(open.splice(0).map((s) => s.shutdown()));
});

const WORKERS = ['w1', 'w2', 'w3', 'w4'] as const;

interface Pool {
  sim: Simulation;
  nodes: Map<string, { membership: Membership; reception: Receptionist }>;
  lb(options?: Partial<LoadBalancerOptions>): Promise<LoadBalancer>;
  behave(worker: string, delayMs: number, failing?: boolean): void;
}

async function pool(delays: Partial<Record<string, number>> = {}, seed = 1): Promise<Pool> {
  const sim = createSimulation({ seed, nodes: ['client', ...WORKERS], latencyMs: [1, 2], systemOptions: { messages: [messages] } });
  open.push(sim);
  const nodes = new Map<string, { membership: Membership; reception: Receptionist }>();
  for (const name of sim.nodes.keys()) {
    const system = sim.system(name);
    const membership = joinCluster(system, { heartbeatIntervalMs: 100, acceptableHeartbeatPauseMs: 100, minStdDeviationMs: 20, downAfterMs: 300 });
    const reception = createReceptionist(system, membership);
    nodes.set(name, { membership, reception });
    if (name !== 'client') reception.register('work', spawnWorker(system, 'worker', delays[name] ?? 1));
  }
  await sim.run({ forMs: 500 });
  return {
    sim,
    nodes,
    async lb(options = {}) {
      const lb = createLoadBalancer(sim.system('client'), { key: 'work', receptionist: nodes.get('client')!.reception, rng: createRng(seed), ...options });
      balancers.push(lb);
      await sim.run({ until: () => lb.backends().length === 4, forMs: 1_000 });
      expect(lb.backends()).toHaveLength(4);
      return lb;
    },
    behave(worker, delayMs, failing = false) {
      sim.system('client').ref(`${worker}/worker`).send({ type: 'SetBehaviour', delayMs, failing });
    },
  };
}

interface Outcome { shares: Record<string, number>; errors: unknown[]; settled: number }

/** `total` requests, `concurrency` at a time, run to completion on simulated time. */
async function drive(p: Pool, lb: LoadBalancer, total: number, concurrency = 8, timeoutMs?: number): Promise<Outcome> {
  const out: Outcome = { shares: {}, errors: [], settled: 0 };
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      try {
        const done = await lb.ask<WorkDone>({ type: 'Work', n, data: new Uint8Array() }, timeoutMs ? { timeoutMs } : {});
        const w = done.worker.split('/')[0]!;
        out.shares[w] = (out.shares[w] ?? 0) + 1;
      } catch (err) {
        out.errors.push(err);
      }
      out.settled++;
    }
  };
  void Promise.all(Array.from({ length: concurrency }, loop));
  await p.sim.run({ until: () => out.settled === total, forMs: 120_000 });
  expect(out.settled).toBe(total);
  return out;
}

const spread = (shares: Record<string, number>): number => {
  const v = WORKERS.map((w) => shares[w] ?? 0);
  return Math.max(...v) / Math.max(1, Math.min(...v));
};

describe('strategies (pure)', () => {
  const cands = (o: number[], e: number[] = o.map(() => 0)) => o.map((outstanding, i) => ({ address: `n${i}/w`, outstanding, ewmaMs: e[i]! }));

  it('round-robin cycles; least-outstanding takes the least loaded; p2c takes the cheaper of two', () => {
    const rr = createPicker('round-robin', createRng(1));
    expect([0, 1, 2, 3, 4].map(() => rr(cands([0, 0, 0])).address)).toEqual(['n0/w', 'n1/w', 'n2/w', 'n0/w', 'n1/w']);
    const lo = createPicker('least-outstanding', createRng(1));
    expect(lo(cands([3, 1, 2])).address).toBe('n1/w');
    const p2c = createPicker('p2c-ewma', createRng(1));
    // with two candidates both are always compared: the fast idle one wins every time
    for (let i = 0; i < 50; i++) expect(p2c(cands([0, 0], [100, 5])).address).toBe('n1/w');
    // …until its queue makes it the dearer one
    expect(p2c(cands([0, 30], [100, 5])).address).toBe('n0/w');
    expect(cost({ address: 'x', outstanding: 1, ewmaMs: 9 })).toBe(20);
  });

  it('the peak EWMA jumps to a slower sample and decays towards faster ones', () => {
    const e = new PeakEwma(1_000);
    e.observe(10, 0);
    e.observe(100, 10);
    expect(e.ms).toBe(100);
    e.observe(10, 1_010); // one time constant later: weight 1 − 1/e on the new sample
    expect(e.ms).toBeCloseTo(100 / Math.E + 10 * (1 - 1 / Math.E), 6);
    const burst = new PeakEwma(1_000);
    burst.observe(100, 0);
    for (let i = 0; i < 30; i++) burst.observe(10, 0); // same tick: still moves (≥ 10 % a sample)
    expect(burst.ms).toBeLessThan(15);
  });

  it('the peak EWMA read later has decayed: a backend left alone after a slow spell is tried again', () => {
    const e = new PeakEwma(1_000);
    e.observe(40, 0);
    expect(e.at(0)).toBe(40);
    expect(e.at(1_000)).toBeCloseTo(40 / Math.E, 6);
    expect(e.at(5_000)).toBeLessThan(1);
    expect(e.ms).toBe(40); // the last sample's estimate is kept until the next sample
    expect(new PeakEwma(1_000).at(500)).toBe(0);
  });

  it('every strategy name is accepted; an unknown one is a RangeError', () => {
    for (const s of STRATEGIES) if (s !== 'queue-group') expect(typeof createPicker(s, createRng(1))).toBe('function');
    expect(() => createPicker('fastest' as PickerStrategy, createRng(1))).toThrow(RangeError);
  });
});

describe('load balancer over the receptionist', () => {
  it.each([
    ['round-robin', 1.01],
    ['random', 1.3],
    ['least-outstanding', 1.3],
    ['p2c-ewma', 1.5],
  ] as Array<[LoadBalancingStrategy, number]>)('%s spreads 2000 requests over 4 equal workers (max/min share ≤ %s)', async (strategy, maxSpread) => {
    const p = await pool();
    const lb = await p.lb({ strategy });
    const { shares, errors } = await drive(p, lb, 2_000);
    expect(errors).toEqual([]);
    console.log(`${strategy}: ${WORKERS.map((w) => `${w}=${shares[w] ?? 0}`).join(' ')} spread ${spread(shares).toFixed(2)}`);
    expect(spread(shares)).toBeLessThanOrEqual(maxSpread);
    expect(lb.backends().every((b) => b.outstanding === 0)).toBe(true);
  });

  it('p2c-ewma steers away from a slow backend (round-robin does not)', async () => {
    const p = await pool({ w1: 50 });
    const p2c = await drive(p, await p.lb({ strategy: 'p2c-ewma', name: 'p2c' }), 1_000);
    const rr = await drive(p, await p.lb({ strategy: 'round-robin', name: 'rr' }), 1_000);
    console.log(`slow w1: p2c w1=${p2c.shares['w1'] ?? 0}/1000, round-robin w1=${rr.shares['w1'] ?? 0}/1000`);
    expect(p2c.shares['w1'] ?? 0).toBeLessThan(50);
    expect(rr.shares['w1']).toBe(250);
  });

  it('least-outstanding also sends less to a slow backend', async () => {
    const p = await pool({ w1: 50 });
    const { shares } = await drive(p, await p.lb({ strategy: 'least-outstanding' }), 1_000);
    expect(shares['w1'] ?? 0).toBeLessThan(100);
  });

  it('a failing backend is ejected by its breaker and comes back through a half-open probe', async () => {
    const p = await pool();
    const lb = await p.lb({ strategy: 'round-robin', breaker: { consecutiveFailures: 3, openMs: 1_000 } });
    const states: string[] = [lb.pool.getSnapshot().value];
    lb.pool.subscribe((s) => {
      if (states.at(-1) !== s.value) states.push(s.value as string);
    });
    p.behave('w2', 1, true);
    await p.sim.run({ forMs: 10 });
    const first = await drive(p, lb, 40, 1);
    // exactly three requests reached w2 and failed with its error; then it was ejected
    expect(first.errors).toHaveLength(3);
    expect(first.errors.every((e) => e instanceof RemoteError)).toBe(true);
    expect(lb.backends().find((b) => b.address === 'w2/worker')!.breaker).toBe('open');
    const more = await drive(p, lb, 100, 4);
    expect(more.errors).toEqual([]);
    expect(more.shares['w2']).toBeUndefined();
    // recovery: after openMs, one probe goes through, succeeds, and w2 is back in rotation
    p.behave('w2', 1, false);
    await p.sim.run({ forMs: 1_000 });
    const back = await drive(p, lb, 100, 4);
    expect(back.errors).toEqual([]);
    expect(back.shares['w2']).toBeGreaterThanOrEqual(20);
    expect(lb.backends().find((b) => b.address === 'w2/worker')!.breaker).toBe('closed');
    expect(states).toEqual(['serving', 'degraded', 'serving']);
  });

  it('a backend whose node leaves stops receiving work at once', async () => {
    const p = await pool();
    const lb = await p.lb({ strategy: 'round-robin' });
    await drive(p, lb, 100);
    const leftAt = p.sim.now();
    await p.nodes.get('w3')!.membership.leave();
    await p.sim.run({ until: () => lb.backends().length === 3, forMs: 1_000 });
    expect(p.sim.now() - leftAt).toBeLessThanOrEqual(2); // one latency
    const after = await drive(p, lb, 300);
    expect(after.shares['w3']).toBeUndefined();
    expect(after.errors).toEqual([]);
  });

  it('a backend that crashes holding requests: they fail with BackendLostError long before the timeout, none is lost', async () => {
    const p = await pool({ w1: 5_000 });
    const lb = await p.lb({ strategy: 'round-robin', askTimeoutMs: 30_000 });
    const startedAt = p.sim.now();
    const run = drive(p, lb, 40, 8);
    await p.sim.run({ forMs: 50 });
    expect(lb.backends().find((b) => b.address === 'w1/worker')!.outstanding).toBeGreaterThan(0);
    p.sim.nemesis.crash('w1');
    const out = await run;
    expect(out.errors.length).toBeGreaterThan(0);
    expect(out.errors.every((e) => e instanceof BackendLostError)).toBe(true);
    expect(out.settled).toBe(40);
    expect(p.sim.now() - startedAt).toBeLessThan(5_000);
    expect(lb.stats().lost).toBe(out.errors.length);
    expect(lb.backends().map((b) => b.address)).toEqual(['w2/worker', 'w3/worker', 'w4/worker']);
  });

  it('with retryInFlight, requests held by a crashed backend fail over and all succeed', async () => {
    const p = await pool({ w1: 5_000 });
    const lb = await p.lb({ strategy: 'round-robin', askTimeoutMs: 30_000, retryInFlight: true });
    const run = drive(p, lb, 40, 8);
    await p.sim.run({ forMs: 50 });
    p.sim.nemesis.crash('w1');
    const out = await run;
    expect(out.errors).toEqual([]);
    expect(out.shares['w1']).toBeUndefined();
    expect(lb.stats().failovers).toBeGreaterThan(0);
  });

  it('a backend actor that stops (its node alive) loses its in-flight requests as BackendLostError at once', async () => {
    const p = await pool({ w2: 5_000 });
    const lb = await p.lb({ strategy: 'round-robin', askTimeoutMs: 30_000 });
    const run = drive(p, lb, 8, 8);
    await p.sim.run({ forMs: 50 });
    const stoppedAt = p.sim.now();
    p.sim.system('w2').stop('w2/worker');
    const out = await run;
    expect(out.errors.length).toBe(2);
    expect(out.errors.every((e) => e instanceof BackendLostError)).toBe(true);
    expect(p.sim.now() - stoppedAt).toBeLessThan(100);
  });

  it('times out with AskTimeoutError when the only backends are too slow; NoBackendsError when there are none', async () => {
    const p = await pool({ w1: 2_000, w2: 2_000, w3: 2_000, w4: 2_000 });
    const lb = await p.lb({ askTimeoutMs: 500 });
    const out = await drive(p, lb, 4, 4);
    expect(out.errors.every((e) => e instanceof AskTimeoutError)).toBe(true);
    const empty = createLoadBalancer(p.sim.system('client'), { key: 'nobody', receptionist: p.nodes.get('client')!.reception });
    balancers.push(empty);
    await expect(empty.ask({ type: 'Work', n: 1, data: new Uint8Array() })).rejects.toBeInstanceOf(NoBackendsError);
    expect(empty.pool.getSnapshot().value).toBe('empty');
  });

  it('the balancer actor: other actors and systems ask it like a single backend', async () => {
    const p = await pool();
    const lb = await p.lb({ strategy: 'round-robin', messages });
    expect(lb.ref?.address).toBe('client/lb-work-actor');
    const replies = Array.from({ length: 8 }, (_, n) => p.sim.system('w4').ask<WorkDone>(lb.ref!.address, { type: 'Work', n, data: new Uint8Array() }, { timeoutMs: 1_000 }));
    await p.sim.run({ forMs: 100 });
    const done = await Promise.all(replies);
    expect(done.map((d) => d.n)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(done.map((d) => d.worker)).size).toBe(4);
  });

  it('queue-group mode: the bus spreads requests over the members; a member that stops gets no more; none left → NoBackendsError', async () => {
    const p = await pool();
    const members = WORKERS.map((w) => serveQueueGroup(p.sim.system(w), { key: 'work', ref: `${w}/worker`, messages }));
    await p.sim.run({ forMs: 10 });
    const lb = createLoadBalancer(p.sim.system('client'), { key: 'work', strategy: 'queue-group', messages });
    balancers.push(lb);
    const first = await drive(p, lb, 400);
    expect(first.errors).toEqual([]);
    expect(WORKERS.every((w) => (first.shares[w] ?? 0) >= 50)).toBe(true);
    members[0]!.stop();
    await p.sim.run({ forMs: 10 });
    const second = await drive(p, lb, 300);
    expect(second.errors).toEqual([]);
    expect(second.shares['w1']).toBeUndefined();
    for (const m of members) m.stop();
    await p.sim.run({ forMs: 10 });
    const none = await drive(p, lb, 1);
    expect(none.errors[0]).toBeInstanceOf(NoBackendsError);
  });

  it.each([
    [{ strategy: 'queue-group' }, 'messages'],
    [{ strategy: 'queue-group', messages, key: 'a b' }, 'key'],
    [{ key: '' }, 'key'],
    [{ strategy: 'fastest' }, 'strategy'],
    [{ askTimeoutMs: 0 }, 'askTimeoutMs'],
    [{ maxAttempts: 1.5 }, 'maxAttempts'],
    [{ name: 'a.b' }, 'name'],
    [{ breaker: { openMs: -1 } }, 'openMs'],
  ] as Array<[Partial<LoadBalancerOptions>, string]>)('rejects bad options with a RangeError naming the option (%j)', async (bad, name) => {
    const p = await pool();
    const make = () => createLoadBalancer(p.sim.system('client'), { key: 'work', receptionist: p.nodes.get('client')!.reception, ...bad } as LoadBalancerOptions);
    expect(make).toThrow(RangeError);
    expect(make).toThrow(name);
  });
});
