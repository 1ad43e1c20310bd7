/**
 * The Raft KV store (`actors/raft/kv-store.ts`): the shared KvStore conformance suite on a 3-node
 * Raft group on the in-process bus, then what is specific to it — the state machine's determinism,
 * exactly-once sessions and snapshots (property-tested), TTL on log time, failover and
 * unavailability on the simulator.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createKvStoreMachine,
  decodeKvStoreCommand,
  encodeKvStoreCommand,
  encodeKvStoreValue,
  type KvStoreCommand,
  type KvStoreMachine,
} from '../../actors/raft/kv-store-machine.ts';
import { createRaftKvReplica, createRaftKvStore, startRaftKvReplica } from '../../actors/raft/kv-store.ts';
import type { Entry } from '../../actors/raft/types.ts';
import { createRemoteRaftKvStore, startRaftKvStoreService } from '../../actors/raft/kv-store-service.ts';
import { memoryRaftStorage } from '../../actors/raft/node.ts';
import { createRng, realClock } from '../../framework/clock.ts';
import { isStoreUnavailableError, StoreUnavailableError } from '../../framework/errors.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import type { KvEntry, KvStore } from '../../framework/store/store.ts';
import { closingAlso, startRaftKvGroup } from '../helpers/raft-kv-group.ts';
import { storeConformance } from '../helpers/store-conformance.ts';
import { waitFor } from '../helpers/wait-for.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);


// --- conformance on a real-time, in-process 3-node group ------------------------------------

let groupSeq = 0;

/**
 * A 3-node Raft group on its own in-process bus, and a store over it whose close() also stops the
 * group: in-process (over the replicas) or remote (from a fourth node, through the KV store services).
 */
function inProcessStore(opts: { history?: number; ttlMs?: number } = {}, form: 'local' | 'remote' = 'local'): KvStore {
  const g = ++groupSeq;
  const group = startRaftKvGroup({ clock: realClock(), seed: g, cluster: `kvs${g}`, machine: opts });
  if (form === 'local') return group.ownedStore({ name: `group${g}`, rng: createRng(g) });
  group.systems.forEach((sys, i) => startRaftKvStoreService(sys, () => group.replicas[i]!));
  const store = createRemoteRaftKvStore({ system: group.system('client'), services: group.names.map((n) => `${n}/kv-store`), name: `group${g}`, rng: createRng(g) });
  return closingAlso(store, async () => {
    await store.close();
    await group.close();
  });
}

for (const form of ['local', 'remote'] as const) {
  storeConformance(form === 'local' ? 'raft' : 'raft (remote, through the KV store services)', async () => {
    const TTL_MS = 300;
    return {
      open: async (opts) => inProcessStore(opts?.history !== undefined ? { history: opts.history } : {}, form),
      openWithTtl: async () => ({ store: inProcessStore({}, form), ttlMs: TTL_MS }),
      elapse: (ms, condition) => waitFor(condition, { timeoutMs: ms * 10, intervalMs: 20, message: 'the TTL to lapse' }),
      propertyRuns: 20,
      cleanup: async () => undefined,
    };
  });
}

// --- the state machine ------------------------------------------------------------------------

const KEYS = ['a', 'b', 'c.d'];
const value = fc.uint8Array({ maxLength: 4 }).map(encodeKvStoreValue);
const key = fc.constantFrom(...KEYS);
/** Commands as clients send them: a few clients, seqs that repeat (retries), floor ≤ seq, clocks that disagree. */
const commandArb: fc.Arbitrary<KvStoreCommand> = fc
  .record({
    client: fc.constantFrom('x', 'y'),
    seq: fc.integer({ min: 1, max: 12 }),
    behind: fc.integer({ min: 0, max: 12 }),
    nowMs: fc.integer({ min: 0, max: 5_000 }),
    body: fc.oneof(
      fc.record({ op: fc.constant('create' as const), key, value, ttlMs: fc.option(fc.integer({ min: 1, max: 2_000 }), { nil: undefined }) }),
      fc.record({ op: fc.constant('update' as const), key, value, expectedRevision: fc.integer({ min: 1, max: 30 }) }),
      fc.record({ op: fc.constant('put' as const), key, value }),
      fc.record({ op: fc.constant('delete' as const), key, expectedRevision: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }) }),
    ),
  })
  .map(({ client, seq, behind, nowMs, body }) => ({ client, seq, floor: Math.max(0, seq - behind), nowMs, ...body }) as KvStoreCommand);

/** Everything a reader can observe of a machine at `nowMs`. */
const observe = (m: KvStoreMachine, nowMs: number): unknown => ({
  revision: m.revision,
  logTimeMs: m.logTimeMs,
  keys: m.keys('>', nowMs),
  values: KEYS.map((k) => m.get(k, nowMs)),
  history: m.entries('>', true, nowMs),
});

describe('raft KV store state machine', () => {
  it('property: restore(snapshot()) reproduces the state — same observations, same answers to the same later commands', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 40 }), fc.array(commandArb, { maxLength: 10 }), fc.array(commandArb, { maxLength: 20 }), (before, other, after) => {
        const a = createKvStoreMachine({ history: 3, ttlMs: 1_500 });
        for (const c of before) a.apply(c);
        const b = createKvStoreMachine({ history: 3, ttlMs: 1_500 });
        for (const c of other) b.apply(c); // restore replaces whatever was there
        const snap = a.snapshot();
        b.restore(snap);
        expect(dec(b.snapshot())).toBe(dec(snap));
        for (const t of [0, 2_500, 6_000]) expect(observe(b, t)).toEqual(observe(a, t));
        for (const c of after) expect(b.apply(c)).toEqual(a.apply(c));
        expect(dec(b.snapshot())).toBe(dec(a.snapshot()));
      }),
      { numRuns: 300 },
    );
  });

  it('property: replicas applying the same log agree, and a retried command is applied once with the same answer', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { maxLength: 40 }), (log) => {
        const a = createKvStoreMachine({ history: 2 });
        const b = createKvStoreMachine({ history: 2 });
        for (const c of log) {
          const first = a.apply(c);
          const revision = a.revision;
          const retried = a.apply(c);
          expect(retried.result).toEqual(first.result);
          expect(retried.written).toBeUndefined();
          expect(a.revision).toBe(revision);
          b.apply(decodeKvStoreCommand(encodeKvStoreCommand(c))!); // what the other replica decodes from the log
        }
        expect(dec(b.snapshot())).toBe(dec(a.snapshot()));
      }),
      { numRuns: 300 },
    );
  });

  const cmd = (c: Partial<KvStoreCommand> & Pick<KvStoreCommand, 'op' | 'key' | 'seq'>): KvStoreCommand =>
    ({ client: 'c', floor: 0, nowMs: 0, value: encodeKvStoreValue(enc('v')), ...c }) as KvStoreCommand;

  it('a session forgets results below the floor the client reports; a late duplicate of those is not applied again', () => {
    const m = createKvStoreMachine();
    expect(m.apply(cmd({ op: 'put', key: 'a', seq: 1 })).result).toEqual({ type: 'written', revision: 1 });
    expect(m.apply(cmd({ op: 'put', key: 'a', seq: 2, floor: 2 })).result).toEqual({ type: 'written', revision: 2 });
    expect(m.apply(cmd({ op: 'put', key: 'a', seq: 1 })).result).toEqual({ type: 'stale' });
    expect(m.revision).toBe(2);
    // another client's seq 1 is its own
    expect(m.apply(cmd({ op: 'put', key: 'a', seq: 1, client: 'd' })).result).toEqual({ type: 'written', revision: 3 });
  });

  it('TTL runs on log time: stamps decide expiry at apply, a lagging stamp does not move time back, reads pass their own time', () => {
    const m = createKvStoreMachine();
    m.apply(cmd({ op: 'create', key: 'lease', seq: 1, nowMs: 1_000, ttlMs: 500 }));
    expect(m.get('lease', 1_499)?.createdMs).toBe(1_000);
    expect(m.get('lease', 1_500)).toBeUndefined(); // reads see expiry without any write
    // a write stamped by a leader whose clock lags: log time stays at the largest stamp
    m.apply(cmd({ op: 'put', key: 'other', seq: 2, nowMs: 1_200 }));
    m.apply(cmd({ op: 'put', key: 'other', seq: 3, nowMs: 900 }));
    expect(m.logTimeMs).toBe(1_200);
    expect(m.get('other', 0)?.createdMs).toBe(1_200);
    // at log time 1_200 the lease is still live: a create conflicts ...
    expect(m.apply(cmd({ op: 'create', key: 'lease', seq: 4, nowMs: 1_100 })).result).toMatchObject({ type: 'conflict', actualRevision: 1 });
    // ... and once log time has passed its expiry, it may be created again
    expect(m.apply(cmd({ op: 'create', key: 'lease', seq: 5, nowMs: 1_500 })).result).toEqual({ type: 'written', revision: 4 });
  });

  it('the store-wide ttlMs applies to keys written without one; a key deleted and written again starts with it', () => {
    const m = createKvStoreMachine({ ttlMs: 100 });
    m.apply(cmd({ op: 'put', key: 'p', seq: 1, nowMs: 0 }));
    m.apply(cmd({ op: 'create', key: 'long', seq: 2, nowMs: 0, ttlMs: 1_000 }));
    expect(m.keys('>', 100)).toEqual(['long']);
    m.apply(cmd({ op: 'delete', key: 'long', seq: 3, nowMs: 100 }));
    m.apply(cmd({ op: 'put', key: 'long', seq: 4, nowMs: 100 }));
    expect(m.keys('>', 199)).toEqual(['long']);
    expect(m.keys('>', 200)).toEqual([]);
  });

  it('bad entries in the log change nothing', () => {
    const m = createKvStoreMachine();
    expect(decodeKvStoreCommand(enc('not json'))).toBeUndefined();
    expect(decodeKvStoreCommand(enc('{"op":"put"}'))).toBeUndefined();
    const head = { client: 'c', seq: 1, floor: 0, nowMs: 0, key: 'a' };
    const json = (o: object): Uint8Array => enc(JSON.stringify(o));
    expect(decodeKvStoreCommand(json({ ...head, op: 'update', value: '' }))).toBeUndefined(); // no expected revision
    expect(decodeKvStoreCommand(json({ ...head, op: 'update', value: '', expectedRevision: 0 }))).toBeUndefined();
    expect(decodeKvStoreCommand(json({ ...head, op: 'put' }))).toBeUndefined(); // no value
    expect(decodeKvStoreCommand(json({ ...head, op: 'delete', expectedRevision: 'x' }))).toBeUndefined();
    expect(decodeKvStoreCommand(json({ ...head, op: 'drop' }))).toBeUndefined();
    expect(decodeKvStoreCommand(json({ ...head, op: 'delete' }))).toMatchObject({ op: 'delete', key: 'a' });
    expect(m.apply(cmd({ op: 'put', key: 'a..b', seq: 1 })).result).toMatchObject({ type: 'invalid' });
    expect(m.apply(cmd({ op: 'create', key: 'a', seq: 2, ttlMs: -1 })).result).toMatchObject({ type: 'invalid' });
    expect(m.revision).toBe(0);
    expect(m.keys('>', 0)).toEqual([]);
  });

  it('rejects bad options with a RangeError naming the option', () => {
    expect(() => createKvStoreMachine({ history: 0 })).toThrow(/option history/);
    expect(() => createKvStoreMachine({ history: 65 })).toThrow(RangeError);
    expect(() => createKvStoreMachine({ ttlMs: 0 })).toThrow(/option ttlMs/);
    expect(() => createKvStoreMachine({ sessionTtlMs: Number.NaN })).toThrow(/option sessionTtlMs/);
  });
});

describe('raft KV store replica and options', () => {
  const entry = (index: number, c: KvStoreCommand): Entry => ({ index, term: 1, data: encodeKvStoreCommand(c) });
  const put = (seq: number, v: string): KvStoreCommand => ({ client: 'c', seq, floor: 0, nowMs: 0, op: 'put', key: 'k', value: encodeKvStoreValue(enc(v)) });

  it('a replica applies each log index once: a node restarted by its supervisor re-applying from index 1 changes nothing; reset() rebuilds', () => {
    const replica = createRaftKvReplica(() => expect.fail('no node needed'), { clock: realClock() });
    const log = [entry(1, put(1, 'a')), { index: 2, term: 1, data: new Uint8Array(0) }, entry(3, put(2, 'b'))];
    replica.apply(log);
    replica.apply(log);
    expect(replica.appliedIndex).toBe(3);
    expect(replica.machine.revision).toBe(2);
    expect(dec(replica.machine.get('k', 0)!.value)).toBe('b');
    const snap = replica.machine.snapshot();
    replica.reset();
    expect(replica.machine.revision).toBe(0);
    replica.apply(log);
    expect(dec(replica.machine.snapshot())).toBe(dec(snap));
    replica.reset();
    replica.restoreSnapshot(snap, 3);
    replica.apply([entry(4, put(3, 'c'))]);
    expect(replica.machine.get('k', 0)).toMatchObject({ revision: 3 });
  });

  it('rejects bad options with a RangeError naming the option', () => {
    const clock = realClock();
    expect(() => createRaftKvStore({ replicas: [], clock })).toThrow(/option replicas/);
    const replica = createRaftKvReplica(() => expect.fail('no node needed'), { clock });
    expect(() => createRaftKvStore({ replicas: [replica], clock, timeoutMs: 0 })).toThrow(/option timeoutMs/);
    expect(() => createRaftKvStore({ replicas: [replica], clock, attemptTimeoutMs: -1 })).toThrow(/option attemptTimeoutMs/);
    expect(() => createRaftKvStore({ replicas: [replica], clock, name: '' })).toThrow(/option name/);
    expect(createRaftKvStore({ replicas: [replica], clock }).kind).toBe('raft');
  });
});

// --- the store on the simulator -----------------------------------------------------------------

/**
 * A 3-node group on the simulator (nodes a, b, c) and a store over it: in-process, or remote from a
 * fourth node `client` through the KV store services. Resolves once a leader is elected.
 */
async function simGroup(seed: number, form: 'local' | 'remote' = 'local', snapshotEveryEntries?: number) {
  const names = ['a', 'b', 'c'];
  const sim = createSimulation({ seed, nodes: form === 'remote' ? [...names, 'client'] : names, scenario: 'raft-kv-store', latencyMs: [1, 5] });
  const voters = names.map((n) => `${n}/kv`);
  const replicas = names.map((n, i) => startRaftKvReplica(sim.system(n), {
    name: 'kv', voters, rng: createRng(seed * 31 + i), storage: memoryRaftStorage(), tickMs: 10, ...(snapshotEveryEntries ? { snapshotEveryEntries } : {}),
  }));
  const TIMEOUT_MS = 1_000;
  const client = { timeoutMs: TIMEOUT_MS, attemptTimeoutMs: 200, rng: createRng(seed) };
  if (form === 'remote') names.forEach((n, i) => startRaftKvStoreService(sim.system(n), () => replicas[i]!));
  const store = form === 'local'
    ? createRaftKvStore({ replicas, clock: sim.clock, ...client })
    : createRemoteRaftKvStore({ system: sim.system('client'), services: names.map((n) => `${n}/kv-store`), ...client });
  const leader = (): number => replicas.findIndex((r, i) => sim.nodes.get(names[i]!)?.status === 'up' && r.node.role() === 'leader');
  /** Run the simulation until `p` settles; its outcome. */
  const settle = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    p.then(() => { done = true; }, () => { done = true; });
    await sim.run({ until: () => done, maxSteps: 500_000 });
    return p;
  };
  await sim.run({ until: () => leader() >= 0, maxSteps: 100_000 });
  return { sim, names, replicas, store, leader, settle, TIMEOUT_MS };
}

describe('raft KV store on the simulator', () => {
  it('a lease lapses ttlMs after its last write, seen by reads with no write in between; update renews it', async () => {
    const { sim, store, settle } = await simGroup(11);
    let rev = await settle(store.create('lease', enc('a'), { ttlMs: 1_000 }));
    await sim.run({ forMs: 600 });
    rev = await settle(store.update('lease', enc('a'), rev));
    await sim.run({ forMs: 850 });
    expect(dec((await settle(store.get('lease')))!.value)).toBe('a'); // 1.45 s after create, < 1 s after the renewal
    await sim.run({ forMs: 200 });
    expect(await settle(store.get('lease'))).toBeUndefined();
    expect(await settle(store.keys())).toEqual([]);
    const taken = await settle(store.create('lease', enc('b'), { ttlMs: 1_000 }));
    await expect(settle(store.update('lease', enc('a'), rev))).rejects.toThrow(/not at revision/);
    expect((await settle(store.get('lease')))!.revision).toBe(taken);
    await store.close();
    await sim.shutdown();
  });

  it('a write while the leader is isolated goes to the new leader, is applied exactly once everywhere, and a watch on the old leader catches up', async () => {
    const { sim, names, replicas, store, leader, settle } = await simGroup(12);
    const seen: KvEntry[] = [];
    await settle(store.watch('x', (e) => seen.push(e)));
    const old = leader();
    sim.nemesis.isolate(names[old]!);
    const rev = await settle(store.put('x', enc('1')));
    expect(leader()).not.toBe(old);
    expect(seen).toEqual([]); // the watch is served by the isolated replica
    sim.nemesis.heal();
    await sim.run({ until: () => seen.length === 1 && replicas.every((r) => r.machine.revision === rev), maxSteps: 500_000 });
    expect(seen.map((e) => [e.key, dec(e.value), e.revision])).toEqual([['x', '1', rev]]);
    expect(replicas.map((r) => r.machine.get('x', 0)?.revision)).toEqual([rev, rev, rev]);
    expect(rev).toBe(1); // one write, one revision: the attempt at the isolated leader was not applied as well
    await store.close();
    await sim.shutdown();
  });

  it('without a majority every call fails within timeoutMs with a retryable StoreUnavailableError; after close, with a non-retryable one', async () => {
    const { sim, names, store, leader, settle, TIMEOUT_MS } = await simGroup(13);
    await settle(store.put('k', enc('1')));
    const l = leader();
    for (const [i, n] of names.entries()) if (i !== l) sim.nemesis.crash(n);
    const calls: Array<() => Promise<unknown>> = [() => store.put('k', enc('2')), () => store.get('k'), () => store.keys(), () => store.watch('k', () => undefined)];
    for (const call of calls) {
      const start = sim.now();
      const err = await settle(call()).then(() => expect.fail('expected a rejection'), (e: unknown) => e);
      expect(isStoreUnavailableError(err), String(err)).toBe(true);
      expect((err as StoreUnavailableError).retryable).toBe(true);
      expect((err as StoreUnavailableError).store).toBe('raft:raft');
      expect(sim.now() - start).toBeLessThanOrEqual(TIMEOUT_MS);
    }
    const pending = store.put('k', enc('3')).then(() => expect.fail('expected a rejection'), (e: unknown) => e);
    await store.close();
    const err = await pending;
    expect(isStoreUnavailableError(err) && !(err as StoreUnavailableError).retryable).toBe(true);
    await sim.shutdown();
  });
});

describe('remote raft KV store on the simulator', () => {
  it('from a client node: a write during the leader isolation reaches the new leader once, and a watch through the old leader catches up', async () => {
    const { sim, names, replicas, store, leader, settle } = await simGroup(21, 'remote');
    const r1 = await settle(store.put('x', enc('1')));
    const seen: string[] = [];
    await settle(store.watch('x', (e) => seen.push(`${e.operation}:${dec(e.value)}@${e.revision}`)));
    await sim.run({ until: () => seen.length === 1, maxSteps: 100_000 });
    const old = leader();
    sim.nemesis.isolate(names[old]!);
    const r2 = await settle(store.put('x', enc('2')));
    expect(leader()).not.toBe(old);
    expect(r2).toBeGreaterThan(r1);
    expect(dec((await settle(store.get('x')))!.value)).toBe('2');
    sim.nemesis.heal();
    await sim.run({ until: () => seen.length === 2 && replicas.every((r) => r.machine.revision === r2), maxSteps: 500_000 });
    expect(seen).toEqual([`put:1@${r1}`, `put:2@${r2}`]);
    expect(r2).toBe(2); // two writes, two revisions: nothing applied twice
    await store.close();
    await sim.shutdown();
  });
});

describe('raft KV store and log compaction', () => {
  for (const form of ['local', 'remote'] as const) {
    it(`${form}: a lagging replica installs a snapshot and converges; a watch it served ends with onError, the store goes on`, async () => {
      const { sim, names, replicas, store, leader, settle } = await simGroup(31, form, 5);
      const seen: string[] = [];
      const errors: Error[] = [];
      await settle(store.watch('w.>', (e) => seen.push(`${e.key}=${dec(e.value)}`), { onError: (err) => errors.push(err) }));
      await settle(store.put('w.0', enc('0')));
      await sim.run({ until: () => seen.length === 1, maxSteps: 100_000 });
      const old = leader(); // it answered the watch's ReadIndex: it serves the watch
      sim.nemesis.isolate(names[old]!);
      for (let i = 1; i <= 12; i++) await settle(store.put(`w.${i}`, enc(String(i))));
      sim.nemesis.heal();
      await sim.run({ until: () => replicas[old]!.restored > 0 && replicas.every((r) => r.machine.revision === 13), maxSteps: 500_000 });
      const snap = dec(replicas[old]!.machine.snapshot());
      expect(replicas.map((r) => dec(r.machine.snapshot()))).toEqual([snap, snap, snap]);
      await sim.run({ until: () => errors.length === 1, maxSteps: 100_000 });
      expect(isStoreUnavailableError(errors[0])).toBe(true);
      expect(errors[0]!.message).toMatch(/snapshot/);
      expect(seen).toEqual(['w.0=0']); // nothing the snapshot skipped was made up
      // the store itself is fine, and a new watch sees the current values
      expect(await settle(store.keys('w.>'))).toHaveLength(13);
      const again: string[] = [];
      await settle(store.watch('w.12', (e) => again.push(dec(e.value))));
      await sim.run({ until: () => again.length === 1, maxSteps: 100_000 });
      expect(again).toEqual(['12']);
      await store.close();
      await sim.shutdown();
    });
  }
});
