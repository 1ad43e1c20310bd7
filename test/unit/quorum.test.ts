/**
 * Quorum: the merge rule (LWW and version vectors), the hybrid logical clock, option validation,
 * the coordinator chart on its own (a test-provided scatter), and a replica group on one system:
 * put/get/delete, siblings, a write that cannot meet W, blocking read repair.
 */
import fc from 'fast-check';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createHlc, compareHlc } from '../../actors/quorum/hlc.ts';
import { coordinatorMachine, type CoordinatorInput, type CoordinatorOutput, type ScatterEvent, type ScatterRequest } from '../../actors/quorum/machine.ts';
import { createQuorumGroup } from '../../actors/quorum/quorum.ts';
import { spawnQuorumReplica, type QuorumReplicaContext } from '../../actors/quorum/replica.ts';
import { compareVectors, compareVersions, mergeItems, type Item } from '../../actors/quorum/versions.ts';
import { simulatedClock } from '../../framework/clock.ts';
import { isQuorumUnreachableError, QuorumUnreachableError } from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import type { RefLike } from '../../framework/ref.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';

const lww = (wallMs: number, value: string, writer = 'w'): Item => ({ version: { wallMs, logical: 0, writer, vector: {} }, value, deleted: false });
const vv = (vector: Record<string, number>, value: string, wallMs = 1): Item => ({ version: { wallMs, logical: 0, writer: value, vector }, value, deleted: false });
const values = (items: readonly Item[]): string[] => items.map((i) => i.value);

function group3(): { system: ActorSystem; replicas: ReturnType<typeof spawnQuorumReplica>[]; clock: ReturnType<typeof simulatedClock> } {
  const clock = simulatedClock(1_000);
  const system = createSystem({ cluster: 'test', node: 'n1', clock, logger: silentLogger() });
  const replicas = ['r1', 'r2', 'r3'].map((name) => spawnQuorumReplica(system, { name }));
  return { system, replicas, clock };
}

const dataOf = (system: ActorSystem, ref: RefLike, key: string): readonly Item[] =>
  (system.snapshotOf(ref)!.context as QuorumReplicaContext).data.get(key) ?? [];

describe('versions: the merge rule', () => {
  it('last writer wins keeps exactly the greatest version, ties broken by writer', () => {
    expect(values(mergeItems([lww(5, 'a')], [lww(3, 'b')]))).toEqual(['a']);
    expect(values(mergeItems([lww(5, 'a')], [lww(7, 'b')]))).toEqual(['b']);
    expect(values(mergeItems([lww(5, 'a', 'w1')], [lww(5, 'b', 'w2')]))).toEqual(['b']);
    const held = [lww(5, 'a')];
    expect(mergeItems(held, [lww(5, 'a')])).toBe(held); // idempotent: unchanged, same array
  });

  it('version vectors keep concurrent siblings and drop what a write dominates', () => {
    const a = vv({ x: 1 }, 'a');
    const b = vv({ y: 1 }, 'b');
    expect(compareVectors({ x: 1 }, { y: 1 })).toBe('concurrent');
    expect(values(mergeItems([a], [b]))).toEqual(['a', 'b']);
    const c = vv({ x: 1, y: 1, z: 1 }, 'c');
    expect(values(mergeItems([a, b], [c]))).toEqual(['c']);
    expect(values(mergeItems([c], [a]))).toEqual(['c']); // an older version arriving late changes nothing
  });

  it('merging is commutative, associative and idempotent (property)', () => {
    const item = fc.record({
      x: fc.integer({ min: 0, max: 2 }), y: fc.integer({ min: 0, max: 2 }), v: fc.constantFrom('p', 'q', 'r'),
    }).map(({ x, y, v }) => vv({ x, y }, `${v}${x}${y}`, x + y));
    fc.assert(fc.property(fc.array(item, { maxLength: 6 }), fc.array(item, { maxLength: 6 }), (xs, ys) => {
      const ab = mergeItems(mergeItems([], xs), ys);
      const ba = mergeItems(mergeItems([], ys), xs);
      const norm = (items: readonly Item[]): string[] => values(items).sort();
      expect(norm(ab)).toEqual(norm(ba));
      expect(norm(mergeItems(ab, [...xs, ...ys]))).toEqual(norm(ab));
    }));
  });
});

describe('hybrid logical clock', () => {
  it('never goes backwards, and moves past every timestamp it observed', () => {
    const clock = simulatedClock(100);
    const hlc = createHlc(clock);
    const t1 = hlc.now();
    const t2 = hlc.now(); // same physical ms
    expect(compareHlc(t2, t1)).toBeGreaterThan(0);
    hlc.observe({ wallMs: 5_000, logical: 3 }); // a writer whose clock runs ahead
    const t3 = hlc.now();
    expect(t3).toEqual({ wallMs: 5_000, logical: 4 });
    clock.increment(10_000);
    expect(hlc.now()).toEqual({ wallMs: 10_100, logical: 0 });
  });
});

describe('createQuorumGroup options', () => {
  it('bad N, W or R is a RangeError naming the option', () => {
    const { system, replicas } = group3();
    expect(() => createQuorumGroup(system, { replicas: [], w: 1, r: 1 })).toThrow(/replicas/);
    expect(() => createQuorumGroup(system, { replicas, w: 0, r: 2 })).toThrow(RangeError);
    expect(() => createQuorumGroup(system, { replicas, w: 4, r: 2 })).toThrow(/w must be an integer in \[1, 3\]/);
    expect(() => createQuorumGroup(system, { replicas, w: 2, r: 1.5 })).toThrow(/r must be/);
    expect(() => createQuorumGroup(system, { replicas, w: 1, r: 2 })).toThrow(/allowWeakQuorum/);
    expect(() => createQuorumGroup(system, { replicas, w: 2, r: 2, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => createQuorumGroup(system, { replicas, w: 2, r: 2, standIns: [replicas[0]!] })).toThrow(/standIns/);
    expect(createQuorumGroup(system, { replicas, w: 1, r: 2, allowWeakQuorum: true }).n).toBe(3);
    expect(() => spawnQuorumReplica(system, { name: 'r9', handoffIntervalMs: 0 })).toThrow(/handoffIntervalMs/);
    expect(() => spawnQuorumReplica(system, { name: 'r9', handoffTimeoutMs: Number.NaN })).toThrow(/handoffTimeoutMs/);
  });
});

/** Run the coordinator alone; `answer` decides each request's fate (undefined: no reply). */
async function coordinate(input: CoordinatorInput, answer: (req: ScatterRequest) => ScatterEvent | undefined): Promise<{ out: CoordinatorOutput; states: string[]; sent: ScatterRequest[] }> {
  const sent: ScatterRequest[] = [];
  const actor = createActor(coordinatorMachine, { input });
  actor.on('quorum.scatter', (effect) => {
    for (const req of effect.requests) {
      sent.push(req);
      const ev = answer(req) ?? { type: 'quorum.noReply', round: 0, replica: req.to, error: 'partitioned' };
      queueMicrotask(() => { if (actor.getSnapshot().status === 'active') actor.send({ ...ev, round: effect.round }); });
    }
  });
  const states: string[] = [];
  actor.subscribe((s) => { if (states.at(-1) !== s.value) states.push(s.value as string); });
  const done = new Promise<void>((resolve) => actor.subscribe({ complete: resolve }));
  actor.start();
  await done;
  return { out: actor.getSnapshot().output as CoordinatorOutput, states, sent };
}

const input = (op: 'read' | 'write', over: Partial<CoordinatorInput> = {}): CoordinatorInput => ({
  op, key: 'k', items: op === 'write' ? [lww(10, 'new')] : [], replicas: ['a', 'b', 'c'], standIns: [], needed: 2, repairNeeded: 2, timeoutMs: 100, ...over,
});

describe('the coordinator chart', () => {
  it('a write is done after W acks and fails — never a partial success — when W cannot be met', async () => {
    const ok = await coordinate(input('write'), (req) => (req.to === 'c' ? undefined : { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumStored', key: 'k' } }));
    expect(ok.out).toMatchObject({ outcome: 'ok', acks: 2 });
    const failed = await coordinate(input('write'), (req) => (req.to === 'a' ? { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumStored', key: 'k' } } : undefined));
    expect(failed.out).toMatchObject({ outcome: 'unreachable', phase: 'write', acks: 1, needed: 2 });
    expect(failed.states).toEqual(['gathering', 'failed']);
  });

  it('a sloppy write hints stand-ins for the failed replicas and counts their acks', async () => {
    const r = await coordinate(input('write', { standIns: ['s1', 's2'] }), (req) =>
      (req.to === 'a' || req.to.startsWith('s') ? { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumStored', key: 'k' } } : undefined));
    expect(r.out).toMatchObject({ outcome: 'ok', acks: 2, hinted: 1 });
    expect(r.states).toEqual(['gathering', 'standingIn', 'done']);
    const hints = r.sent.filter((s) => s.to.startsWith('s')).map((s) => (s.message as { hintFor: string }).hintFor);
    expect(hints.sort()).toEqual(['b', 'c']);
  });

  it('a stand-in replaces a home replica that fails fast, and the late home acks still count', async () => {
    const actor = createActor(coordinatorMachine, { input: input('write', { needed: 3, standIns: ['s1'] }) });
    const stored = (replica: string, round: number): ScatterEvent => ({ type: 'quorum.reply', round, replica, message: { type: 'QuorumStored', key: 'k' } });
    const hints: string[] = [];
    actor.on('quorum.scatter', (effect) => {
      queueMicrotask(() => {
        if (effect.requests.length === 3) {
          actor.send({ type: 'quorum.noReply', round: effect.round, replica: 'c', error: 'no responders' }); // c fails at once
        } else {
          hints.push(...effect.requests.map((r) => `${r.to} for ${(r.message as { hintFor: string }).hintFor}`));
          actor.send(stored('s1', effect.round));
          actor.send(stored('a', effect.round)); // the home acks come after the stand-in's
          actor.send(stored('b', effect.round));
        }
      });
    });
    const done = new Promise<void>((resolve) => actor.subscribe({ complete: resolve }));
    actor.start();
    await done;
    expect(hints).toEqual(['s1 for c']);
    expect(actor.getSnapshot().output).toMatchObject({ outcome: 'ok', acks: 3, hinted: 1 });
  });

  it('a read that finds its value on too few replicas repairs before returning', async () => {
    const held: Record<string, Item[]> = { a: [lww(10, 'new')], b: [lww(5, 'old')], c: [lww(5, 'old')] };
    const r = await coordinate(input('read'), (req) => {
      if (req.message.type === 'QuorumFetch') return req.to === 'c' ? undefined : { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumFetched', key: 'k', items: held[req.to]! } };
      return { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumStored', key: 'k' } };
    });
    expect(r.out).toMatchObject({ outcome: 'ok', acks: 2 });
    expect(r.out.outcome === 'ok' ? values(r.out.items) : []).toEqual(['new']);
    expect(r.states).toEqual(['gathering', 'repairing', 'done']); // resolving is transient
    // repairs go to every replica not known to hold the value: the stale responder and the silent one
    expect(r.sent.filter((s) => s.message.type === 'QuorumStore').map((s) => s.to).sort()).toEqual(['b', 'c']);
  });

  it('a read whose repair cannot reach N − R + 1 holders fails in the repair phase', async () => {
    const r = await coordinate(input('read'), (req) => {
      if (req.message.type === 'QuorumFetch') {
        return req.to === 'c' ? undefined : { type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumFetched', key: 'k', items: req.to === 'a' ? [lww(10, 'new')] : [] } };
      }
      return undefined; // every repair is lost
    });
    expect(r.out).toMatchObject({ outcome: 'unreachable', phase: 'repair', acks: 1, needed: 2 });
  });

  it("an earlier phase's straggling answer does not count in the repair phase", async () => {
    const actor = createActor(coordinatorMachine, { input: input('read') });
    actor.on('quorum.scatter', (effect) => {
      queueMicrotask(() => {
        if (effect.round === 0) {
          actor.send({ type: 'quorum.reply', round: 0, replica: 'a', message: { type: 'QuorumFetched', key: 'k', items: [lww(10, 'new')] } });
          actor.send({ type: 'quorum.reply', round: 0, replica: 'b', message: { type: 'QuorumFetched', key: 'k', items: [] } });
        } else {
          // the fetch answer of c arrives late, during the repair; every repair is lost
          actor.send({ type: 'quorum.reply', round: 0, replica: 'c', message: { type: 'QuorumFetched', key: 'k', items: [] } });
          for (const req of effect.requests) actor.send({ type: 'quorum.noReply', round: effect.round, replica: req.to, error: 'lost' });
        }
      });
    });
    const done = new Promise<void>((resolve) => actor.subscribe({ complete: resolve }));
    actor.start();
    await done;
    expect(actor.getSnapshot().output).toMatchObject({ outcome: 'unreachable', phase: 'repair', acks: 1, needed: 2 });
  });

  it('a read that already sees its value on N − R + 1 replicas does not repair', async () => {
    const r = await coordinate(input('read'), (req) => ({ type: 'quorum.reply', round: 0, replica: req.to, message: { type: 'QuorumFetched', key: 'k', items: [lww(10, 'v')] } }));
    expect(r.states).toEqual(['gathering', 'done']);
    expect(r.sent.every((s) => s.message.type === 'QuorumFetch')).toBe(true);
  });
});

describe('a replica group on one system', () => {
  it('put then get returns the value; delete hides it', async () => {
    const { system, replicas } = group3();
    await using _ = system;
    const kv = createQuorumGroup(system, { replicas, w: 2, r: 2 });
    const w = await kv.put('cart', 'apples');
    expect(w.acks).toBeGreaterThanOrEqual(2);
    const r = await kv.get('cart');
    expect(r).toMatchObject({ found: true, value: 'apples', siblings: ['apples'] });
    expect(compareVersions(r.version!, w.version)).toBe(0);
    expect((await kv.get('nothing')).found).toBe(false);
    await kv.delete('cart');
    const gone = await kv.get('cart');
    expect(gone.found).toBe(false);
    expect(compareVersions(gone.version!, w.version)).toBeGreaterThan(0);
  });

  it('a later write by the same group always wins, even in the same millisecond', async () => {
    const { system, replicas } = group3();
    await using _ = system;
    const kv = createQuorumGroup(system, { replicas, w: 2, r: 2 });
    for (let i = 0; i < 5; i++) await kv.put('k', `v${i}`);
    expect((await kv.get('k')).value).toBe('v4');
  });

  it("a write that cannot meet W rejects with QuorumUnreachableError carrying acks and needed", async () => {
    const { system, replicas } = group3();
    await using _ = system;
    const kv = createQuorumGroup(system, { replicas, w: 2, r: 2 });
    system.stop(replicas[1]!);
    system.stop(replicas[2]!);
    const err = await kv.put('k', 'v').catch((e: unknown) => e);
    expect(isQuorumUnreachableError(err)).toBe(true);
    expect(err).toBeInstanceOf(QuorumUnreachableError);
    // the stopped replicas answer at once, so the chart gives up before r1's ack: acks counted at that moment
    expect(err).toMatchObject({ code: 'QUORUM_UNREACHABLE', phase: 'write', needed: 2, replicas: 3, retryable: true });
    expect((err as QuorumUnreachableError).acks).toBeLessThan(2);
    expect((err as QuorumUnreachableError).fields()).toMatchObject({ needed: 2, replicas: 3, phase: 'write' });
    // the one replica that was reached holds it: a failed write is indeterminate, not undone
    expect(values(dataOf(system, replicas[0]!, 'k'))).toEqual(['v']);
    await expect(kv.get('k')).rejects.toMatchObject({ phase: 'read', needed: 2 });
  });

  it("version vectors keep concurrent writes as siblings until a write with the read's context", async () => {
    const { system, replicas } = group3();
    await using _ = system;
    const alice = createQuorumGroup(system, { replicas, w: 2, r: 2, versioning: 'vv', name: 'alice' });
    const bob = createQuorumGroup(system, { replicas, w: 2, r: 2, versioning: 'vv', name: 'bob' });
    await alice.put('doc', 'A');
    await bob.put('doc', 'B'); // blind write: concurrent with A
    const both = await alice.get('doc');
    expect([...both.siblings].sort()).toEqual(['A', 'B']);
    await alice.put('doc', 'A+B', { context: both.context });
    const merged = await bob.get('doc');
    expect(merged.siblings).toEqual(['A+B']);
    expect(merged.value).toBe('A+B');
  });

  it('LWW keeps one of two concurrent writes (the later version)', async () => {
    const { system, replicas, clock } = group3();
    await using _ = system;
    const alice = createQuorumGroup(system, { replicas, w: 2, r: 2, name: 'alice' });
    const bob = createQuorumGroup(system, { replicas, w: 2, r: 2, name: 'bob' });
    await alice.put('doc', 'A');
    clock.increment(1);
    await bob.put('doc', 'B');
    expect((await alice.get('doc')).siblings).toEqual(['B']);
  });

  it('blocking read repair: a value found on one replica is on N − R + 1 before the read returns', async () => {
    const { system, replicas } = group3();
    await using _ = system;
    // a write that reached only r1 (as a failed write may)
    await system.ask(replicas[0]!, { type: 'QuorumStore', key: 'k', items: [lww(5_000, 'only-on-r1', 'x')], hintFor: '' });
    const readers = createQuorumGroup(system, { replicas, w: 1, r: 3 });
    const r = await readers.get('k');
    expect(r.value).toBe('only-on-r1');
    // R = 3: N − R + 1 = 1 holder is enough — nothing to repair
    expect(r.repaired).toBe(0);
    const majority = createQuorumGroup(system, { replicas, w: 2, r: 2, name: 'm' });
    system.stop(replicas[2]!); // r3 down: the read gets r1 (new) and r2 (stale)
    const m = await majority.get('k');
    expect(m.value).toBe('only-on-r1');
    expect(m.repaired).toBeGreaterThanOrEqual(1);
    expect(values(dataOf(system, replicas[1]!, 'k'))).toEqual(['only-on-r1']);
  });
});
