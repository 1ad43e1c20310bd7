/**
 * The simulator: troupe systems on a simulated network, one seeded scheduler for every delivery
 * and every timer, the nemesis's faults, storage that loses unsynced writes, invariants and the
 * failure report. Everything runs on simulated time — no real timers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { Pinger, Ponger } from '../../examples/ping-pong.ts';
import { messages as pingPongMessages, type Pong } from '../../examples/pingpong.pb.ts';
import { defineActor } from '../../framework/actor.ts';
import { createRng } from '../../framework/clock.ts';
import { AskTimeoutError, NoRespondersError, TransportTimeoutError } from '../../framework/errors.ts';
import { isSimulationFailure, SimulationFailure } from '../../framework/sim/failure.ts';
import { FAULT_KINDS, majoritiesRingCuts, randomSchedule, type FaultEvent } from '../../framework/sim/nemesis.ts';
import { createNodeClock, createScheduler } from '../../framework/sim/scheduler.ts';
import { createSimulation, type Simulation, type SimulationOptions } from '../../framework/sim/simulation.ts';
import { createSimStorage } from '../../framework/sim/storage.ts';
import type { TransportMsg } from '../../framework/transport/transport.ts';

const open: Simulation[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.shutdown()));
});

function sim(options: SimulationOptions): Simulation {
  const s = createSimulation(options);
  open.push(s);
  return s;
}

/** Observe a promise without awaiting it. */
function track<T>(p: Promise<T>): { state(): 'pending' | 'resolved' | 'rejected'; value(): T | undefined; error(): unknown; atMs(): number | undefined } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  let value: T | undefined;
  let error: unknown;
  let atMs: number | undefined;
  const owner = open[open.length - 1];
  p.then(
    (v) => {
      state = 'resolved';
      value = v;
      atMs = owner?.now();
    },
    (e: unknown) => {
      state = 'rejected';
      error = e;
      atMs = owner?.now();
    },
  );
  return { state: () => state, value: () => value, error: () => error, atMs: () => atMs };
}

const settled = (t: { state(): string }) => (): boolean => t.state() !== 'pending';
const bytes = (n: number): Uint8Array => new Uint8Array([n & 0xff, (n >> 8) & 0xff]);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
const served = (s: Simulation, node: string): number =>
  (s.nodes.get(node)!.system!.snapshotOf(`${node}/ponger`)?.context as { served: number } | undefined)?.served ?? 0;

describe('two troupe systems on the simulated network', () => {
  it('play a rally by tell and answer an ask, on simulated time', async () => {
    const s = sim({ seed: 1, nodes: ['n1', 'n2'], scenario: 'ping-pong' });
    const n1 = s.system('n1');
    const n2 = s.system('n2');
    n2.spawn(Ponger, { name: 'ponger' });
    const pinger = n1.spawn(Pinger, { name: 'pinger' });
    const done = track(n1.watch(pinger));
    pinger.send({ type: 'Start', ponger: 'n2/ponger', count: 10 });
    const r = await s.run({ until: settled(done) });
    expect(r.reason).toBe('until');
    expect(done.value()).toMatchObject({ type: 'Terminated', actor: 'n1/pinger', reason: 'done' });
    expect(served(s, 'n2')).toBe(10);
    // 20 one-way messages, each 1–10 ms on a FIFO link
    expect(s.now()).toBeGreaterThanOrEqual(20);
    expect(s.now()).toBeLessThanOrEqual(200);
    const deliveries = s.trace().filter((e) => e.kind === 'deliver');
    expect(deliveries.filter((e) => e.detail === 'n1>n2 troupe.sim.n2.ponger').length).toBe(10);

    const asked = track(n1.ask<Pong>('n2/ponger', { type: 'Ping', n: 42 }, { timeoutMs: 1_000 }));
    const before = s.now();
    await s.run({ until: settled(asked) });
    expect(asked.value()).toMatchObject({ type: 'Pong', n: 42 });
    expect(s.now() - before).toBeGreaterThanOrEqual(2); // a request and a reply, ≥ 1 ms each
  });

  it('records client operations in a history on simulated time', async () => {
    const s = sim({ seed: 1, nodes: ['n1', 'n2'], latencyMs: [3, 3] });
    const n1 = s.system('n1');
    s.system('n2').spawn(Ponger, { name: 'ponger' });
    n1.spawn(Pinger, { name: 'pinger' });
    await s.run({ forMs: 10 });
    const op = s.history.invoke('client', 'ping', 'ponger', 7);
    n1.ask<Pong>('n2/ponger', { type: 'Ping', n: 7 }, { timeoutMs: 100 }).then((p) => op.ok(p.n), (e: unknown) => op.info(e));
    await s.run({ forMs: 100 });
    expect(s.history.operations()).toEqual([{ process: 'client', type: 'ok', f: 'ping', key: 'ponger', value: 7, invoke: 10, complete: 16 }]);
  });

  it('no-responders fails fast when no node subscribes; time does not move', async () => {
    const s = sim({ seed: 2, nodes: 3 });
    const n1 = s.system('n1');
    n1.spawn(Pinger, { name: 'pinger' }); // teaches n1 the ping-pong messages
    const asked = track(n1.ask('n3/ponger', { type: 'Ping', n: 1 }, { timeoutMs: 1_000 }));
    await s.settle();
    expect(asked.error()).toBeInstanceOf(NoRespondersError);
    expect(s.now()).toBe(0);
  });

  it('raw transports: wildcards, queue groups and request/reply across nodes', async () => {
    const s = sim({ seed: 3, nodes: 3 });
    const t = (n: string) => s.nodes.get(n)!.transport;
    const [a, b, c] = [t('n1'), t('n2'), t('n3')];
    const got: string[] = [];
    b.subscribe('orders.*', (m) => void got.push(`b:${m.subject}`));
    c.subscribe('orders.>', (m) => void got.push(`c:${m.subject}`));
    const workers: string[] = [];
    b.subscribe('work', () => void workers.push('b'), { queue: 'w' });
    c.subscribe('work', () => void workers.push('c'), { queue: 'w' });
    c.subscribe('echo', (m: TransportMsg) => void m.respond(m.data));
    a.publish('orders.new', bytes(1));
    a.publish('orders.eu.new', bytes(2));
    for (let i = 0; i < 20; i++) a.publish('work', bytes(i));
    const reply = track(a.request('echo', enc('hi'), { timeoutMs: 100 }));
    expect(got).toEqual([]); // handlers never run inside publish
    await s.run({});
    expect(got.sort()).toEqual(['b:orders.new', 'c:orders.eu.new', 'c:orders.new']);
    expect(workers.length).toBe(20); // once per group
    expect(workers).toContain('b');
    expect(workers).toContain('c');
    expect(dec(reply.value()?.data)).toBe('hi');
  });
});

describe('determinism', () => {
  /** A rally plus a raw burst with faults on: the trace of every delivery and loss. */
  async function scenario(seed: number): Promise<string[]> {
    const s = sim({ seed, nodes: 3, latencyMs: [1, 40] });
    const n1 = s.system('n1');
    s.system('n2').spawn(Ponger, { name: 'ponger' });
    const pinger = n1.spawn(Pinger, { name: 'pinger' });
    const done = track(n1.watch(pinger));
    pinger.send({ type: 'Start', ponger: 'n2/ponger', count: 15 });
    const t3 = s.nodes.get('n3')!.transport;
    s.nodes.get('n1')!.transport.subscribe('burst.>', () => undefined);
    s.nemesis.reorder(true);
    s.nemesis.duplicate(0.2);
    for (let i = 0; i < 30; i++) t3.publish(`burst.${i}`, bytes(i));
    await s.run({ until: settled(done) });
    await s.run({ forMs: 500 });
    return s.trace().filter((e) => e.kind === 'deliver' || e.kind === 'lost').map((e) => `${e.atMs} ${e.kind} ${e.detail}`);
  }

  it('the same seed gives the same sequence of events', async () => {
    const first = await scenario(7);
    const second = await scenario(7);
    expect(first.length).toBeGreaterThan(60);
    expect(second).toEqual(first);
  });

  it('a different seed gives different latencies', async () => {
    const a = await scenario(7);
    const b = await scenario(8);
    expect(b).not.toEqual(a);
    expect(b.map((l) => l.split(' ')[0])).not.toEqual(a.map((l) => l.split(' ')[0]));
  });

  it('a random fault schedule with crashes and restarts replays identically', async () => {
    const run = async (seed: number): Promise<{ trace: string[]; schedule: readonly FaultEvent[]; planned: FaultEvent[] }> => {
      const s = sim({
        seed,
        nodes: 3,
        onRestart: (node) => void node.system!.spawn(Ponger, { name: 'ponger' }),
      });
      for (const n of ['n1', 'n2', 'n3']) s.system(n, { askTimeoutMs: 200 }).spawn(Ponger, { name: 'ponger' });
      let outcomes = '';
      // A client on simulated timers: every 50 ms a live node asks a random node's ponger.
      const tick = (): void => {
        const from = s.nodes.get(`n${1 + s.rng.int(3)}`)!;
        const to = `n${1 + s.rng.int(3)}`;
        if (from.status !== 'crashed' && from.system) {
          from.system.ask(`${to}/ponger`, { type: 'Ping', n: 1 }).then(
            () => void (outcomes += 'ok '),
            (e: unknown) => void (outcomes += `${(e as Error).name} `),
          );
        }
        if (s.now() < 6_000) s.clock.setTimeout(tick, 50);
      };
      s.clock.setTimeout(tick, 50);
      const planned = s.nemesis.randomSchedule(createRng(seed), { durationMs: 6_000, faults: FAULT_KINDS });
      await s.run({ untilMs: 7_000 });
      return { trace: [...s.trace().map((e) => `${e.atMs} ${e.kind} ${e.node ?? '-'} ${e.detail}`), outcomes], schedule: s.schedule, planned };
    };
    const a = await run(21);
    const b = await run(21);
    expect(a.planned.length).toBeGreaterThan(2);
    expect(a.schedule.map((e) => e.op)).toEqual(a.planned.map((e) => e.op));
    expect(b.trace).toEqual(a.trace);
    expect(b.schedule).toEqual(a.schedule);
    const c = await run(22);
    expect(c.trace).not.toEqual(a.trace);
  });
});

describe('partitions', () => {
  it('a partition makes asks time out on simulated time; heal restores them', async () => {
    const s = sim({ seed: 4, nodes: ['n1', 'n2'] });
    const n1 = s.system('n1');
    s.system('n2').spawn(Ponger, { name: 'ponger' });
    n1.spawn(Pinger, { name: 'pinger' });
    await s.run({ forMs: 10 });
    s.nemesis.partition([['n1'], ['n2']]);
    const t0 = s.now();
    const cut = track(n1.ask('n2/ponger', { type: 'Ping', n: 1 }, { timeoutMs: 500 }));
    await s.run({ until: settled(cut) });
    expect(cut.error()).toBeInstanceOf(AskTimeoutError);
    expect(cut.atMs()).toBe(t0 + 500);
    expect(s.trace().some((e) => e.kind === 'lost' && e.detail.includes('(partition)'))).toBe(true);
    expect(s.network.stats().partitioned).toBe(1);

    s.nemesis.heal();
    const ok = track(n1.ask<Pong>('n2/ponger', { type: 'Ping', n: 2 }, { timeoutMs: 500 }));
    await s.run({ until: settled(ok) });
    expect(ok.value()).toMatchObject({ type: 'Pong', n: 2 });
    expect(s.schedule.map((e) => e.op)).toEqual(['partition', 'heal']);
    expect(s.schedule[0]).toEqual({ atMs: 10, op: 'partition', args: [[['n1'], ['n2']]] });
  });

  it('a message in flight when the link is cut is lost', async () => {
    const s = sim({ seed: 5, nodes: 2, latencyMs: [10, 10] });
    const got: number[] = [];
    s.nodes.get('n2')!.transport.subscribe('x', () => void got.push(s.now()));
    s.nodes.get('n1')!.transport.publish('x', bytes(1));
    await s.run({ forMs: 5 });
    s.nemesis.isolate('n2');
    await s.run({ forMs: 100 });
    expect(got).toEqual([]);
    expect(s.trace().some((e) => e.detail.includes('(partition, in flight)'))).toBe(true);
  });

  it('one-way partition: only one direction is cut (so request/reply fails both ways)', async () => {
    const s = sim({ seed: 6, nodes: 2 });
    const a = s.nodes.get('n1')!.transport;
    const b = s.nodes.get('n2')!.transport;
    const atA: string[] = [];
    const atB: string[] = [];
    a.subscribe('to-a.*', (m) => void atA.push(m.subject));
    b.subscribe('to-b.*', (m) => void atB.push(m.subject));
    a.subscribe('svc-a', (m) => void m.respond(m.data));
    s.nemesis.partitionOneWay('n1', 'n2');
    expect(s.network.cuts()).toEqual([['n1', 'n2']]);
    a.publish('to-b.1', bytes(1));
    b.publish('to-a.1', bytes(1));
    // n2 → n1 arrives, but the reply n1 → n2 is cut: the request times out on n2's clock
    const req = track(b.request('svc-a', bytes(2), { timeoutMs: 300 }));
    await s.run({ until: settled(req) });
    expect(atA).toEqual(['to-a.1']);
    expect(atB).toEqual([]);
    expect(req.error()).toBeInstanceOf(TransportTimeoutError);
    expect(req.atMs()).toBe(300);
  });

  it('isolate cuts one node off both ways; the others still talk', async () => {
    const s = sim({ seed: 7, nodes: 3 });
    const got: string[] = [];
    for (const n of ['n1', 'n2', 'n3']) s.nodes.get(n)!.transport.subscribe(`to.${n}`, (m) => void got.push(`${m.subject}<${dec(m.data)}`));
    s.nemesis.isolate('n3');
    for (const from of ['n1', 'n2', 'n3']) {
      for (const to of ['n1', 'n2', 'n3']) if (from !== to) s.nodes.get(from)!.transport.publish(`to.${to}`, enc(from));
    }
    await s.run({});
    expect(got.sort()).toEqual(['to.n1<n2', 'to.n2<n1']);
    expect(s.network.cuts().length).toBe(4);
  });

  it('partition groups: unlisted nodes form one more group', async () => {
    const s = sim({ seed: 8, nodes: 4 });
    s.nemesis.partition([['n1']]);
    expect(s.network.isCut('n1', 'n2')).toBe(true);
    expect(s.network.isCut('n3', 'n1')).toBe(true);
    expect(s.network.isCut('n2', 'n3')).toBe(false);
    expect(() => s.nemesis.partition([['n1'], ['n1', 'n2']])).toThrow(RangeError);
    expect(() => s.nemesis.isolate('n9')).toThrow(/unknown node 'n9'/);
  });

  it('majorities ring: every node hears a majority, no two the same one', async () => {
    const s = sim({ seed: 9, nodes: 5 });
    s.nemesis.majoritiesRing();
    const names = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const hears = names.map((to) => names.filter((from) => !s.network.isCut(from, to)).sort().join(','));
    for (const h of hears) expect(h.split(',').length).toBe(3);
    expect(new Set(hears).size).toBe(5);
    const [op] = s.schedule;
    expect(op?.op).toBe('majoritiesRing');
    expect((op?.args[0] as string[]).slice().sort()).toEqual(names);
    // the pure helper, on a fixed ring of 3 and of 4
    expect(majoritiesRingCuts(['a', 'b', 'c'])).toEqual([['c', 'a'], ['a', 'b'], ['b', 'c']]);
    expect(majoritiesRingCuts(['a', 'b', 'c', 'd']).length).toBe(4);
  });
});

describe('message faults', () => {
  /** 1 000 messages n1 → n2 under `fault`; how many arrived. */
  async function burst(seed: number, fault: (s: Simulation) => void): Promise<{ got: number; s: Simulation }> {
    const s = sim({ seed, nodes: 2 });
    let got = 0;
    s.nodes.get('n2')!.transport.subscribe('x.*', () => void got++);
    fault(s);
    const t = s.nodes.get('n1')!.transport;
    for (let i = 0; i < 1_000; i++) t.publish('x.y', bytes(i));
    await s.run({});
    return { got, s };
  }

  it('drop(p) loses about p of the messages — exactly the same ones for a seed', async () => {
    const { got, s } = await burst(11, (x) => x.nemesis.drop(0.25));
    expect(got).toBe(745);
    expect(s.network.stats().dropped).toBe(1_000 - got);
    expect((await burst(11, (x) => x.nemesis.drop(0.25))).got).toBe(got);
  });

  it('duplicate(p) delivers about p of the messages twice', async () => {
    const { got, s } = await burst(12, (x) => x.nemesis.duplicate(0.1));
    expect(got).toBe(1_094);
    expect(s.network.stats().duplicated).toBe(got - 1_000);
  });

  it('links are FIFO unless reorder is on; delay adds latency', async () => {
    const order = async (reorder: boolean): Promise<number[]> => {
      const s = sim({ seed: 13, nodes: 2, latencyMs: [1, 50] });
      const seen: number[] = [];
      s.nodes.get('n2')!.transport.subscribe('x', (m) => void seen.push(m.data[0]!));
      if (reorder) s.nemesis.reorder(true);
      for (let i = 0; i < 50; i++) s.nodes.get('n1')!.transport.publish('x', bytes(i));
      await s.run({});
      return seen;
    };
    const fifo = await order(false);
    expect(fifo).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const shuffled = await order(true);
    expect(shuffled.slice().sort((a, b) => a - b)).toEqual(fifo);
    expect(shuffled).not.toEqual(fifo);

    const s = sim({ seed: 14, nodes: 2, latencyMs: [5, 5] });
    const at: number[] = [];
    s.nodes.get('n2')!.transport.subscribe('x', () => void at.push(s.now()));
    s.nemesis.delay(100);
    s.nodes.get('n1')!.transport.publish('x', bytes(0));
    await s.run({});
    expect(at).toEqual([105]);
    expect(() => s.nemesis.drop(2)).toThrow(RangeError);
    expect(s.schedule.map((e) => e.op)).toEqual(['delay']);
  });
});

describe('process faults', () => {
  it('pause freezes a node: its timers and its mail are held and arrive late on resume', async () => {
    const s = sim({ seed: 15, nodes: ['n1', 'n2'], latencyMs: [5, 5] });
    const n1 = s.nodes.get('n1')!;
    const fired: number[] = [];
    n1.clock.setTimeout(() => fired.push(s.now()), 100);
    n1.clock.setTimeout(() => fired.push(s.now()), 500);
    const mail: number[] = [];
    n1.transport.subscribe('in', () => void mail.push(s.now()));
    s.nemesis.pause('n1', 200);
    expect(s.nodes.get('n1')!.status).toBe('paused');
    s.nodes.get('n2')!.transport.publish('in', bytes(1));
    await s.run({ untilMs: 199 });
    expect(fired).toEqual([]);
    expect(mail).toEqual([]);
    await s.run({ untilMs: 1_000 });
    // due at 5 and 100: both delivered at 200, in the order they were due; the 500 ms timer on time
    expect(mail).toEqual([200]);
    expect(fired).toEqual([200, 500]);
    expect(s.nodes.get('n1')!.status).toBe('up');
    expect(s.schedule.map((e) => `${e.atMs}:${e.op}`)).toEqual(['0:pause', '200:resume']);
  });

  it("an actor's XState `after` delay runs on its node's clock: held by a pause, fired late", async () => {
    const Sleeper = defineActor({
      type: 'sleeper',
      messages: pingPongMessages,
      machine: setup({}).createMachine({ id: 'sleeper', initial: 'asleep', states: { asleep: { after: { 100: 'awake' } }, awake: {} } }),
    });
    const s = sim({ seed: 20, nodes: ['n1', 'n2'] });
    const a = s.system('n1').spawn(Sleeper, { name: 'sleeper' });
    const b = s.system('n2').spawn(Sleeper, { name: 'sleeper' });
    s.nemesis.pause('n2', 250);
    const value = (node: string, ref: typeof a): unknown => s.nodes.get(node)!.system!.snapshotOf(ref)?.value;
    await s.run({ untilMs: 100 });
    expect(value('n1', a)).toBe('awake');
    expect(value('n2', b)).toBe('asleep');
    await s.run({ untilMs: 249 });
    expect(value('n2', b)).toBe('asleep');
    await s.run({ untilMs: 250 });
    expect(value('n2', b)).toBe('awake');
  });

  it('a paused responder answers late; the asker, not paused, times out on time', async () => {
    const s = sim({ seed: 16, nodes: ['n1', 'n2'], latencyMs: [5, 5] });
    const n1 = s.system('n1');
    s.system('n2').spawn(Ponger, { name: 'ponger' });
    n1.spawn(Pinger, { name: 'pinger' });
    s.nemesis.pause('n2');
    const short = track(n1.ask('n2/ponger', { type: 'Ping', n: 1 }, { timeoutMs: 100 }));
    const long = track(n1.ask<Pong>('n2/ponger', { type: 'Ping', n: 2 }, { timeoutMs: 1_000 }));
    await s.run({ untilMs: 300 });
    expect(short.error()).toBeInstanceOf(AskTimeoutError);
    expect(short.atMs()).toBe(100);
    expect(long.state()).toBe('pending');
    s.nemesis.resume('n2');
    await s.run({ until: settled(long) });
    expect(long.value()).toMatchObject({ type: 'Pong', n: 2 });
    expect(long.atMs()).toBe(305);
  });

  it('skew shifts what a node reads from its clock, not how long its timers take', async () => {
    const s = sim({ seed: 17, nodes: 2 });
    await s.run({ untilMs: 1_000 });
    s.nemesis.skew('n2', 5_000);
    const n2 = s.nodes.get('n2')!;
    expect(n2.clock.now()).toBe(6_000);
    expect(s.nodes.get('n1')!.clock.now()).toBe(1_000);
    expect(n2.skewMs).toBe(5_000);
    const fired: number[] = [];
    n2.clock.setTimeout(() => fired.push(s.now()), 100);
    await s.run({ untilMs: 2_000 });
    expect(fired).toEqual([1_100]);
    s.nemesis.skew('n2', -300);
    expect(n2.clock.now()).toBe(1_700);
  });

  it('crash: no goodbye, actors and unsynced writes gone; restart: an empty node with synced storage', async () => {
    const s = sim({ seed: 18, nodes: ['n1', 'n2'], systemOptions: { heartbeatIntervalMs: 1_000 } });
    const n1 = s.system('n1');
    const n2 = s.system('n2');
    n2.spawn(Ponger, { name: 'ponger' });
    n1.spawn(Pinger, { name: 'pinger' });
    const disk = s.storage('n2');
    disk.write('term', enc('3'));
    disk.sync();
    disk.write('vote', enc('n1'));
    const watched = track(n1.watch('n2/ponger'));
    await s.run({ forMs: 50 });
    const inFlight = track(n1.ask('n2/ponger', { type: 'Ping', n: 1 }, { timeoutMs: 400 }));
    s.nemesis.crash('n2');
    const node = s.nodes.get('n2')!;
    expect(node.status).toBe('crashed');
    expect(node.system).toBeUndefined();
    await s.run({ until: settled(inFlight) });
    expect(inFlight.error()).toBeInstanceOf(AskTimeoutError);
    // nobody subscribes to n2's subjects any more
    const gone = track(n1.ask('n2/ponger', { type: 'Ping', n: 2 }, { timeoutMs: 400 }));
    await s.settle();
    expect(gone.error()).toBeInstanceOf(NoRespondersError);
    // the watcher got no Terminated from n2; it learns from the failed heartbeat
    expect(watched.state()).toBe('pending');
    await s.run({ until: settled(watched), maxSteps: 1_000 });
    expect(watched.value()).toMatchObject({ actor: 'n2/ponger', reason: 'node-unreachable' });
    // a write from the dead process does not reach the disk
    disk.write('late', enc('x'));
    disk.sync();
    expect(disk.fencedCount).toBe(2);

    s.nemesis.restart('n2');
    expect(node.status).toBe('up');
    expect(node.incarnation).toBe(2);
    const fresh = s.system('n2');
    expect(fresh).not.toBe(n2);
    expect(fresh.actors()).toEqual([]);
    expect(dec(s.storage('n2').read('term'))).toBe('3');
    expect(s.storage('n2').read('vote')).toBeUndefined();
    expect(s.storage('n2').read('late')).toBeUndefined();
    const noActor = track(n1.ask('n2/ponger', { type: 'Ping', n: 3 }, { timeoutMs: 400 }));
    await s.run({ until: settled(noActor) });
    expect(noActor.error()).toBeInstanceOf(NoRespondersError);
    expect((noActor.error() as Error).message).toMatch(/no actor at that address/);
    expect(s.schedule.map((e) => e.op)).toEqual(['crash', 'restart']);
  });

  it('restart recreates the system with its options and calls onRestart to respawn actors', async () => {
    const s = sim({
      seed: 19,
      nodes: ['n1', 'n2'],
      onRestart: (node) => void node.system!.spawn(Ponger, { name: 'ponger' }),
    });
    const n1 = s.system('n1');
    s.system('n2', { askTimeoutMs: 321 }).spawn(Ponger, { name: 'ponger' });
    n1.spawn(Pinger, { name: 'pinger' });
    s.nemesis.crash('n2');
    expect(() => s.system('n2')).toThrow(/crashed/);
    expect(() => s.nemesis.pause('n2')).toThrow(/crashed/);
    s.nemesis.restart('n2');
    expect(s.system('n2').actors()).toEqual(['n2/ponger']);
    const ok = track(n1.ask<Pong>('n2/ponger', { type: 'Ping', n: 5 }, { timeoutMs: 400 }));
    await s.run({ until: settled(ok) });
    expect(ok.value()).toMatchObject({ n: 5 });
    expect(served(s, 'n2')).toBe(1);
    expect(() => s.nemesis.restart('n2')).toThrow(/only a crashed node/);
  });
});

describe('storage', () => {
  it('reads see unsynced writes; a crash keeps only synced ones and fences the old handle', () => {
    const disk = createSimStorage();
    disk.write('a', enc('1'));
    disk.sync();
    disk.write('b', enc('2'));
    disk.delete('a');
    expect(disk.read('a')).toBeUndefined();
    expect(dec(disk.read('b'))).toBe('2');
    expect(disk.unsyncedCount).toBe(2);
    const { lost, survived, storage } = disk.crash();
    expect({ lost, survived }).toEqual({ lost: 2, survived: 0 });
    expect(dec(storage.read('a'))).toBe('1');
    expect(storage.read('b')).toBeUndefined();
    expect(storage.keys()).toEqual(['a']);
    expect(disk.crashed).toBe(true);
    expect(() => disk.crash()).toThrow(/already crashed/);
  });

  it("'random-prefix': a seeded prefix of the unsynced writes survives, in order", () => {
    const run = (seed: number): string[] => {
      const disk = createSimStorage();
      for (let i = 0; i < 10; i++) disk.write(`k${i}`, enc(String(i)));
      const { storage, survived, lost } = disk.crash({ unsynced: 'random-prefix', rng: createRng(seed) });
      expect(survived + lost).toBe(10);
      expect(storage.keys()).toEqual(Array.from({ length: survived }, (_, i) => `k${i}`).sort());
      return storage.keys();
    };
    expect(run(1)).toEqual(run(1));
    const sizes = new Set([1, 2, 3, 4, 5, 6].map((seed) => run(seed).length));
    expect(sizes.size).toBeGreaterThan(1);
  });
});

describe('invariants and failure reports', () => {
  it('a broken invariant stops the run with the seed, the fault schedule and the replay command', async () => {
    const s = sim({ seed: 1234, nodes: ['n1', 'n2'], scenario: 'ping-pong' });
    const n1 = s.system('n1');
    s.system('n2').spawn(Ponger, { name: 'ponger' });
    const pinger = n1.spawn(Pinger, { name: 'pinger' });
    s.addInvariant('ponger serves at most 3 pings', () => (served(s, 'n2') > 3 ? `it served ${served(s, 'n2')}` : undefined));
    s.nemesis.delay(5);
    pinger.send({ type: 'Start', ponger: 'n2/ponger', count: 10 });
    const err = await s.run({ untilMs: 10_000 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SimulationFailure);
    expect(isSimulationFailure(err)).toBe(true);
    const f = err as SimulationFailure;
    expect(f.message).toContain('seed 1234');
    expect(f.message).toContain("invariant 'ponger serves at most 3 pings' violated: it served 4");
    expect(f.message).toContain('t=0ms delay(5)');
    expect(f.message).toContain('npx tsx framework/cli.ts sim ping-pong --seed 1234');
    expect(f.replayCommand).toBe(s.replayCommand());
    expect(f.seed).toBe(1234);
    expect(f.schedule).toEqual([{ atMs: 0, op: 'delay', args: [5] }]);
    expect(served(s, 'n2')).toBe(4); // it stopped at the step that broke it
  });

  it('an invariant that throws, and sim.assert, fail the same way', async () => {
    const s = sim({ seed: 5, nodes: 1, scenario: 'checks' });
    s.clock.setTimeout(() => undefined, 10);
    s.addInvariant('never past 5 ms', () => {
      if (s.now() > 5) throw new Error('too late');
    });
    await expect(s.run({})).rejects.toThrow(/invariant 'never past 5 ms' violated: too late[\s\S]*sim checks --seed 5/);
    expect(() => s.assert(1 + 1 === 3, 'arithmetic')).toThrow(/assertion failed: arithmetic/);
  });

  it('run fails when its until() never holds within maxSteps', async () => {
    const s = sim({ seed: 6, nodes: 1 });
    expect(await s.step()).toBe(false); // nothing scheduled yet
    const tick = (): void => void s.clock.setTimeout(tick, 10);
    tick();
    await expect(s.run({ until: () => false, maxSteps: 50 })).rejects.toThrow(/within 50 steps/);
  });
});

describe('schedules', () => {
  it('randomSchedule is data: seeded, every fault ended by the end', () => {
    const opts = { nodes: ['n1', 'n2', 'n3'], durationMs: 20_000 };
    const a = randomSchedule(createRng(3), opts);
    expect(randomSchedule(createRng(3), opts)).toEqual(a);
    expect(randomSchedule(createRng(4), opts)).not.toEqual(a);
    expect(a.length % 2).toBe(0);
    for (const ev of a) expect(ev.atMs).toBeLessThanOrEqual(20_000);
    const crashes = a.filter((e) => e.op === 'crash').length;
    expect(a.filter((e) => e.op === 'restart').length).toBe(crashes);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    expect(randomSchedule(createRng(3), { nodes: ['solo'], durationMs: 5_000, faults: ['partition'] })).toEqual([]);
  });

  it('plan applies a schedule at its times and records it', async () => {
    const s = sim({ seed: 10, nodes: 3 });
    s.nemesis.plan([
      { atMs: 100, op: 'isolate', args: ['n2'] },
      { atMs: 250, op: 'heal', args: [] },
      { atMs: 300, op: 'pause', args: ['n3', 50] },
    ]);
    await s.run({ untilMs: 99 });
    expect(s.network.cuts()).toEqual([]);
    await s.run({ untilMs: 100 });
    expect(s.network.cuts().length).toBe(4);
    await s.run({ untilMs: 1_000 });
    expect(s.schedule.map((e) => `${e.atMs}:${e.op}`)).toEqual(['100:isolate', '250:heal', '300:pause', '350:resume']);
    expect(() => s.nemesis.plan([{ atMs: 5, op: 'heal', args: [] }])).toThrow(/already/);
  });
});

describe('scheduler', () => {
  it('orders events by time then by scheduling order, and cancels', () => {
    const sch = createScheduler();
    const log: string[] = [];
    const clock = createNodeClock(sch, 'a');
    clock.setTimeout(() => log.push('b@10'), 10);
    clock.setTimeout(() => log.push('c@10'), 10);
    const x = clock.setTimeout(() => log.push('x'), 5);
    clock.setTimeout(() => log.push('a@5'), 5);
    clock.clearTimeout(x);
    while (sch.runNext()) { /* run all */ }
    expect(log).toEqual(['a@5', 'b@10', 'c@10']);
    expect(sch.now()).toBe(10);
    clock.kill();
    expect(clock.setTimeout(() => log.push('dead'), 1)).toBeUndefined();
    expect(sch.pending()).toBe(0);
  });
});
