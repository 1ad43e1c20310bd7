/**
 * Supervision as the runtime carries it out: restarts, intensity, backoff on the simulated clock,
 * resume/stop deciders, failures at start, and supervision trees with their three strategies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defineSupervisor } from '../../framework/actor.ts';
import { Directive } from '../../framework/supervision.ts';
import type { SupervisorContext } from '../../framework/supervisor.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { Counter, settle, testSystem, track } from './fixtures/actors.ts';
import type { Count } from './fixtures/counter.pb.ts';

const systems: ActorSystem[] = [];
const make = (...args: Parameters<typeof testSystem>) => {
  const x = testSystem(...args);
  systems.push(x.system);
  return x;
};
afterEach(async () => {
  await Promise.all(systems.splice(0).map((s) => s.shutdown()));
});

const n = (system: ActorSystem, address: string): number | undefined => (system.snapshotOf(address)?.context as { n: number } | undefined)?.n;
const count = async (system: ActorSystem, address: string): Promise<number> => (await system.ask<Count>(address, { type: 'Get' })).n;

describe('a top-level actor whose action throws', () => {
  it('is restarted with a fresh context; the failing message is dropped and later ones are processed', async () => {
    const { system } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log } });
    const w = track(system.watch(c));
    c.send({ type: 'Inc', by: 1 });
    c.send({ type: 'Inc', by: 2 });
    c.send({ type: 'Boom', why: 'x' });
    c.send({ type: 'Inc', by: 4 });
    await settle();
    expect(log).toEqual(['start', 'Inc:1', 'Inc:2', 'Boom:x', 'start', 'Inc:4']);
    expect(n(system, 'n1/c')).toBe(4);
    expect(await count(system, 'n1/c')).toBe(4);
    expect(w.state()).toBe('pending');
    expect(system.actors()).toContain('n1/c');
  });

  it('exceeding the restart intensity escalates to the root: stopped, watchers get Terminated failed', async () => {
    const { system } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log }, supervision: { maxRestarts: 2, withinMs: 1_000 } });
    const w = track(system.watch(c));
    for (let i = 1; i <= 3; i++) c.send({ type: 'Boom', why: String(i) });
    c.send({ type: 'Inc', by: 1 });
    await settle();
    expect(log.filter((l) => l === 'start')).toHaveLength(3); // first start + 2 restarts
    expect(w.value()).toEqual({ type: 'Terminated', actor: 'n1/c', reason: 'failed' });
    expect(system.actors()).not.toContain('n1/c');
    // the Inc left in the mailbox was dead-lettered when the actor stopped
    expect(system.deadLetters.countsByReason()['actor-stopped']).toBe(1);
  });

  it('an actor watching the failed actor gets Terminated failed', async () => {
    const { system } = make();
    const log: string[] = [];
    const watcher = system.spawn(Counter, { name: 'w', input: { log } });
    const c = system.spawn(Counter, { name: 'c', supervision: { maxRestarts: 0 } });
    watcher.send({ type: 'WatchIt', target: c.address });
    await settle();
    c.send({ type: 'Boom', why: 'fatal' });
    await settle();
    expect(log).toContain('Terminated:n1/c:failed');
  });

  it('failures spread over time do not exceed the intensity (the window slides)', async () => {
    const { system, clock } = make();
    const c = system.spawn(Counter, { name: 'c', supervision: { maxRestarts: 1, withinMs: 1_000 } });
    c.send({ type: 'Boom', why: '1' });
    await settle();
    clock.increment(1_000);
    c.send({ type: 'Boom', why: '2' });
    await settle();
    clock.increment(1_000);
    c.send({ type: 'Boom', why: '3' });
    c.send({ type: 'Inc', by: 9 });
    await settle();
    expect(system.actors()).toContain('n1/c');
    expect(await count(system, 'n1/c')).toBe(9);
  });

  it('the root keeps supervising other actors after it stopped one that exceeded its intensity', async () => {
    const { system } = make();
    const a = system.spawn(Counter, { name: 'a', supervision: { maxRestarts: 0 } });
    const b = system.spawn(Counter, { name: 'b' });
    a.send({ type: 'Boom', why: 'a' });
    await settle();
    expect(system.actors()).not.toContain('n1/a');
    b.send({ type: 'Inc', by: 1 });
    b.send({ type: 'Boom', why: 'b' });
    b.send({ type: 'Inc', by: 5 });
    await settle();
    expect(system.snapshotOf(b)?.status).toBe('active');
    expect(n(system, 'n1/b')).toBe(5);
  });

  it('actors spawned after an escalation at the root are still supervised', async () => {
    const { system } = make();
    const a = system.spawn(Counter, { name: 'a', supervision: { maxRestarts: 0 } });
    a.send({ type: 'Boom', why: 'a' });
    await settle();
    const late = system.spawn(Counter, { name: 'late' });
    late.send({ type: 'Boom', why: 'late' });
    late.send({ type: 'Inc', by: 3 });
    await settle();
    expect(n(system, 'n1/late')).toBe(3);
  });
});

describe('restart backoff', () => {
  it('waits minMs·factor^(n-1) of simulated time before each restart; mail sent meanwhile is kept', async () => {
    const { system, clock } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, {
      name: 'c', input: { log }, supervision: { maxRestarts: 5, withinMs: 60_000, backoff: { minMs: 100, factor: 2, maxMs: 10_000 } },
    });
    c.send({ type: 'Boom', why: '1' });
    await settle();
    c.send({ type: 'Inc', by: 5 });
    const first = track(system.ask<Count>(c, { type: 'Get' }, { timeoutMs: 60_000 }));
    await settle();
    clock.increment(99);
    await settle();
    expect(first.state()).toBe('pending');
    expect(log.filter((l) => l === 'start')).toHaveLength(1);
    clock.increment(1);
    await settle();
    expect(log.filter((l) => l === 'start')).toHaveLength(2);
    expect(first.value()?.n).toBe(5);

    // the second restart in the window waits twice as long
    c.send({ type: 'Boom', why: '2' });
    await settle();
    const second = track(system.ask<Count>(c, { type: 'Get' }, { timeoutMs: 60_000 }));
    clock.increment(199);
    await settle();
    expect(second.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(second.value()?.n).toBe(0);
  });

  it('stopping an actor during its backoff cancels the restart', async () => {
    const { system, clock } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log }, supervision: { backoff: { minMs: 100 } } });
    c.send({ type: 'Boom', why: '1' });
    await settle();
    const w = system.watch(c);
    system.stop(c);
    expect((await w).reason).toBe('stopped');
    clock.increment(1_000);
    await settle();
    expect(log.filter((l) => l === 'start')).toHaveLength(1);
    expect(system.actors()).not.toContain('n1/c');
  });

  it('jitter shortens the delay by at most the jitter fraction', async () => {
    const { system, clock } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log }, supervision: { backoff: { minMs: 1_000, jitter: 0.5 } } });
    c.send({ type: 'Boom', why: '1' });
    await settle();
    clock.increment(499);
    await settle();
    expect(log.filter((l) => l === 'start')).toHaveLength(1);
    clock.increment(501);
    await settle();
    expect(log.filter((l) => l === 'start')).toHaveLength(2);
  });
});

describe('deciders', () => {
  it("'resume' keeps the context and goes on with the next message", async () => {
    const { system } = make();
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log }, supervision: { decider: () => Directive.Resume } });
    c.send({ type: 'Inc', by: 2 });
    c.send({ type: 'Boom', why: 'x' });
    c.send({ type: 'Inc', by: 3 });
    await settle();
    expect(await count(system, 'n1/c')).toBe(5);
    expect(log.filter((l) => l === 'start')).toHaveLength(1); // resumed, not restarted
  });

  it("'stop' stops the actor for good (reason failed) and later mail is a dead letter", async () => {
    const { system } = make();
    const c = system.spawn(Counter, { name: 'c', supervision: { decider: () => Directive.Stop } });
    const w = system.watch(c);
    c.send({ type: 'Boom', why: 'x' });
    expect((await w).reason).toBe('failed');
    c.send({ type: 'Inc', by: 1 });
    await settle();
    expect(system.deadLetters.countsByReason()['no-actor']).toBe(1);
  });

  it("'escalate' at the top level stops the actor", async () => {
    const { system } = make();
    const c = system.spawn(Counter, { name: 'c', supervision: { decider: () => Directive.Escalate } });
    const w = system.watch(c);
    c.send({ type: 'Boom', why: 'x' });
    expect((await w).reason).toBe('failed');
  });

  it('the decider sees the thrown error', async () => {
    const { system } = make();
    const seen: string[] = [];
    const c = system.spawn(Counter, {
      name: 'c',
      supervision: { decider: (e) => { seen.push((e as Error).message); return Directive.Resume; } },
    });
    c.send({ type: 'Boom', why: 'why-not' });
    await settle();
    expect(seen).toEqual(['boom: why-not']);
  });
});

describe('failures at start', () => {
  it('an entry action that always throws: restarted up to the intensity, then stopped (failed)', async () => {
    const { system } = make();
    const starts = { n: 0 };
    const c = system.spawn(Counter, { name: 'c', input: { starts, failStarts: Number.POSITIVE_INFINITY }, supervision: { maxRestarts: 3 } });
    const w = system.watch(c);
    expect((await w).reason).toBe('failed');
    expect(starts.n).toBe(4); // the first start and 3 restarts
    expect(system.actors()).not.toContain('n1/c');
  });

  it('an entry action that fails twice then succeeds: the actor ends up running', async () => {
    const { system } = make();
    const starts = { n: 0 };
    const c = system.spawn(Counter, { name: 'c', input: { starts, failStarts: 2 } });
    c.send({ type: 'Inc', by: 6 });
    await settle();
    expect(starts.n).toBe(3);
    expect(await count(system, 'n1/c')).toBe(6);
  });

  it('a supervised child failing at start is handled by its supervisor', async () => {
    const { system } = make();
    const starts = { n: 0 };
    const Sup = defineSupervisor({
      type: 'sup', strategy: 'one-for-one',
      children: [{ def: Counter, name: 'c', input: { starts, failStarts: 1 } }],
    });
    const sup = system.spawn(Sup, { name: 'sup' });
    await settle();
    expect(starts.n).toBe(2);
    expect(await count(system, 'n1/sup/c')).toBe(0);
    expect((system.snapshotOf(sup)?.context as SupervisorContext).failures).toBe(1);
  });
});

describe('supervision trees', () => {
  const tree = (strategy: 'one-for-one' | 'one-for-all' | 'rest-for-one', logs: Record<string, string[]>) =>
    defineSupervisor({
      type: 'tree', strategy,
      children: ['a', 'b', 'c'].map((name) => ({ def: Counter, name, input: { log: (logs[name] = []) } })),
    });

  const fill = async (system: ActorSystem): Promise<void> => {
    system.deliver('n1/sup/a', { type: 'Inc', by: 1 });
    system.deliver('n1/sup/b', { type: 'Inc', by: 2 });
    system.deliver('n1/sup/c', { type: 'Inc', by: 3 });
    await settle();
  };
  const values = (system: ActorSystem) => ['a', 'b', 'c'].map((k) => n(system, `n1/sup/${k}`));

  it('spawns children under the supervisor address, in order', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    system.spawn(tree('one-for-one', logs), { name: 'sup' });
    expect(system.actors()).toEqual(['n1/sup', 'n1/sup/a', 'n1/sup/b', 'n1/sup/c']);
    await settle();
    const ctx = system.snapshotOf('n1/sup')?.context as SupervisorContext;
    expect(ctx.failures).toBe(0);
    expect(ctx.stats).toEqual({});
    expect(ctx.strategy).toBe('one-for-one');
  });

  it('one-for-one restarts only the failed child', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    system.spawn(tree('one-for-one', logs), { name: 'sup' });
    await fill(system);
    system.deliver('n1/sup/b', { type: 'Boom', why: 'b' });
    await settle();
    expect(values(system)).toEqual([1, 0, 3]);
    expect(logs['a']!.filter((l) => l === 'start')).toHaveLength(1);
    expect(logs['b']!.filter((l) => l === 'start')).toHaveLength(2);
  });

  it('one-for-all restarts every child (their contexts reset)', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    system.spawn(tree('one-for-all', logs), { name: 'sup' });
    await fill(system);
    system.deliver('n1/sup/b', { type: 'Boom', why: 'b' });
    await settle();
    expect(values(system)).toEqual([0, 0, 0]);
    for (const k of ['a', 'b', 'c']) expect(logs[k]!.filter((l) => l === 'start')).toHaveLength(2);
    // all of them still work
    system.deliver('n1/sup/a', { type: 'Inc', by: 7 });
    await settle();
    expect(values(system)).toEqual([7, 0, 0]);
  });

  it('rest-for-one restarts the failed child and the ones declared after it', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    system.spawn(tree('rest-for-one', logs), { name: 'sup' });
    await fill(system);
    system.deliver('n1/sup/b', { type: 'Boom', why: 'b' });
    await settle();
    expect(values(system)).toEqual([1, 0, 0]);
    expect(logs['a']!.filter((l) => l === 'start')).toHaveLength(1);
  });

  it('a child stopped by its supervisor notifies its watchers (failed)', async () => {
    const { system } = make();
    const Sup = defineSupervisor({ type: 'sup', strategy: 'one-for-one', children: [{ def: Counter, name: 'c', supervision: { decider: () => Directive.Stop } }] });
    system.spawn(Sup, { name: 'sup' });
    const w = system.watch('n1/sup/c');
    system.deliver('n1/sup/c', { type: 'Boom', why: 'x' });
    expect((await w).reason).toBe('failed');
    expect(system.actors()).toEqual(['n1/sup']);
    // the supervisor forgets the restart history of a child that is gone
    expect((system.snapshotOf('n1/sup')?.context as SupervisorContext).stats).toEqual({});
  });

  it('stopping a supervisor stops its children (they report parent-stopped)', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    const sup = system.spawn(tree('one-for-one', logs), { name: 'sup' });
    const wa = system.watch('n1/sup/a');
    const ws = system.watch(sup);
    system.stop(sup);
    expect((await wa).reason).toBe('parent-stopped');
    expect((await ws).reason).toBe('stopped');
    expect(system.actors()).toEqual([]);
  });

  it('a nested supervisor that escalates is restarted by its parent (with fresh children)', async () => {
    const { system } = make();
    const logs: Record<string, string[]> = { w: [], x: [] };
    const Inner = defineSupervisor({
      type: 'inner', strategy: 'one-for-one',
      children: [{ def: Counter, name: 'w', input: { log: logs['w'] }, supervision: { maxRestarts: 0 } }],
    });
    const Outer = defineSupervisor({
      type: 'outer', strategy: 'one-for-one',
      children: [
        { def: Inner, name: 'inner' },
        { def: Counter, name: 'x', input: { log: logs['x'] } },
      ],
    });
    system.spawn(Outer, { name: 'sup' });
    system.deliver('n1/sup/inner/w', { type: 'Inc', by: 4 });
    system.deliver('n1/sup/x', { type: 'Inc', by: 8 });
    await settle();
    expect(n(system, 'n1/sup/inner/w')).toBe(4);

    system.deliver('n1/sup/inner/w', { type: 'Boom', why: 'w' });
    await settle();
    // the worker came back fresh under a restarted inner supervisor; the sibling kept its state
    expect(system.actors()).toEqual(expect.arrayContaining(['n1/sup', 'n1/sup/inner', 'n1/sup/inner/w', 'n1/sup/x']));
    expect(n(system, 'n1/sup/inner/w')).toBe(0);
    expect(n(system, 'n1/sup/x')).toBe(8);
    expect(logs['w']!.filter((l) => l === 'start')).toHaveLength(2);
    expect(logs['x']!.filter((l) => l === 'start')).toHaveLength(1);
    const outer = system.snapshotOf('n1/sup')?.context as SupervisorContext;
    const inner = system.snapshotOf('n1/sup/inner')?.context as SupervisorContext;
    expect(outer.failures).toBe(1);
    expect(outer.lastDecision).toMatchObject({ directive: 'restart', child: 'inner' });
    expect(inner.failures).toBe(0);
    expect(system.actors().filter((a) => a.startsWith('n1/sup/inner/'))).toEqual(['n1/sup/inner/w']);
    expect(system.snapshotOf('n1/sup/inner')?.value).toBe('supervising');
    // and the restarted subtree works
    system.deliver('n1/sup/inner/w', { type: 'Inc', by: 1 });
    await settle();
    expect(n(system, 'n1/sup/inner/w')).toBe(1);
  });

  it("the supervisor's own state chart shows its failures and last decision", async () => {
    const { system } = make();
    const logs: Record<string, string[]> = {};
    const sup = system.spawn(tree('one-for-one', logs), { name: 'sup' });
    system.deliver('n1/sup/a', { type: 'Boom', why: '1' });
    await settle();
    system.deliver('n1/sup/c', { type: 'Boom', why: '2' });
    await settle();
    const snap = system.snapshotOf(sup)!;
    const ctx = snap.context as SupervisorContext;
    expect(snap.value).toBe('supervising');
    expect(snap.status).toBe('active');
    expect(ctx.failures).toBe(2);
    expect(ctx.lastDecision).toMatchObject({ type: 'troupe.directive', directive: 'restart', child: 'c', children: ['c'] });
    expect(ctx.lastDecision?.error).toContain('boom: 2');
    expect(ctx.stats['a']?.restartTimesMs).toHaveLength(1);
    expect(ctx.stats['c']?.restartTimesMs).toHaveLength(1);
  });

  it('a top-level supervisor that escalates is stopped by the root with its children', async () => {
    const { system } = make();
    const Sup = defineSupervisor({ type: 'sup', strategy: 'one-for-one', children: [{ def: Counter, name: 'c', supervision: { maxRestarts: 0 } }] });
    const sup = system.spawn(Sup, { name: 'sup', supervision: { maxRestarts: 0 } });
    const w = system.watch(sup);
    system.deliver('n1/sup/c', { type: 'Boom', why: 'x' });
    expect((await w).reason).toBe('failed');
    expect(system.actors()).toEqual([]);
  });

  it('defineSupervisor rejects duplicate and invalid child names', () => {
    expect(() => defineSupervisor({ type: 'd', strategy: 'one-for-one', children: [{ def: Counter, name: 'a' }, { def: Counter, name: 'a' }] })).toThrow(/twice/);
    expect(() => defineSupervisor({ type: 'd', strategy: 'one-for-one', children: [{ def: Counter, name: 'a.b' }] })).toThrow(/invalid name/);
  });
});
