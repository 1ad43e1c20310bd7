/**
 * The quorum replica group on the deterministic simulator: three replica nodes, two client nodes
 * with their own coordinators, a seeded nemesis (partitions, one-way links, a majorities ring,
 * isolation, loss, duplication, reordering, delays, pauses, clock skew — no crashes: replicas keep
 * their data in memory). Every run's client history is checked for the quorum guarantees:
 *
 * 1. an acknowledged write is read back (or superseded) by every quorum read that starts after it;
 * 2. successive quorum reads are monotonic (a read never returns an older version than one that
 *    completed before it started), thanks to blocking read repair;
 * 3. a failed write that one read returned is never "unseen" by a later read.
 *
 * Plus three scripted partitions: a failed write surfacing and staying, a sloppy quorum with hinted
 * handoff, and the error a read gets when its quorum is cut off. A failing seed names itself; rerun
 * one with QUORUM_SIM_SEED=N QUORUM_SIM_SEEDS=1.
 */
import { describe, expect, it } from 'vitest';
import { createRng } from '../../framework/clock.ts';
import { isQuorumUnreachableError, QuorumUnreachableError } from '../../framework/errors.ts';
import type { FaultKind } from '../../framework/sim/nemesis.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';
import { createQuorumGroup, type QuorumGroupOptions, type QuorumVersion, type Versioning } from '../../actors/quorum/quorum.ts';
import { messages as quorumMessages } from '../../actors/quorum/quorum.pb.ts';
import { spawnQuorumReplica, type QuorumReplicaContext } from '../../actors/quorum/replica.ts';
import { compareVectors, compareVersions } from '../../actors/quorum/versions.ts';

const SEEDS = Number(process.env['QUORUM_SIM_SEEDS'] ?? 30);
const FIRST = Number(process.env['QUORUM_SIM_SEED'] ?? 1);
const REPLICAS = ['r1', 'r2', 'r3'];
const CLIENTS = ['c1', 'c2'];
const KEYS = ['k0', 'k1'];
const FAULTS: readonly FaultKind[] = ['partition', 'partitionOneWay', 'majoritiesRing', 'isolate', 'drop', 'duplicate', 'delay', 'reorder', 'pause', 'skew'];
const ADDRESSES = REPLICAS.map((r) => `${r}/replica`);

type Op =
  | { f: 'write'; ok: boolean; client: string; key: string; value: string; version: QuorumVersion; invoke: number; complete: number }
  | { f: 'read'; client: string; key: string; value: string | undefined; version: QuorumVersion | undefined; context: Record<string, number>; invoke: number; complete: number };
type Write = Extract<Op, { f: 'write' }>;
type Read = Extract<Op, { f: 'read' }>;

interface RunResult {
  ops: Op[];
  failedWritesSeen: number;
  violations: string[];
  faults: number;
}

/** Is what read `r` returned at least as new as `v` (a write's version or an earlier read's)? */
function atLeast(versioning: Versioning, r: Read, v: { version: QuorumVersion | undefined; context?: Record<string, number> }): boolean {
  if (versioning === 'vv') {
    const mine = r.context;
    const theirs = v.context ?? v.version?.vector ?? {};
    const o = compareVectors(mine, theirs);
    return o === 'after' || o === 'equal';
  }
  if (v.version === undefined) return true;
  return r.version !== undefined && compareVersions(r.version, v.version) >= 0;
}

async function runScenario(seed: number, quorum: Pick<QuorumGroupOptions, 'w' | 'r' | 'versioning'>, durationMs = 3_000): Promise<RunResult> {
  const versioning = quorum.versioning ?? 'lww';
  const sim = createSimulation({ seed, nodes: [...REPLICAS, ...CLIENTS], scenario: 'quorum', latencyMs: [1, 10] });
  try {
    for (const r of REPLICAS) spawnQuorumReplica(sim.system(r), { name: 'replica' });
    sim.nemesis.randomSchedule(createRng(seed ^ 0x5eed), { durationMs, faults: FAULTS, gapMs: [100, 500], faultMs: [200, 1_000] });
    const rng = createRng(seed * 7 + 1);
    const ops: Op[] = [];
    const client = async (id: string): Promise<void> => {
      const kv = createQuorumGroup(sim.system(id, { messages: [quorumMessages] }), { replicas: ADDRESSES, ...quorum, timeoutMs: 100, name: 'kv' });
      let n = 0;
      while (sim.now() < durationMs) {
        await new Promise<void>((resolve) => sim.clock.setTimeout(resolve, 5 + rng.int(20)));
        const key = KEYS[rng.int(KEYS.length)]!;
        const invoke = sim.now();
        if (rng.next() < 0.4) {
          const value = `${id}-${++n}`;
          try {
            const w = await kv.put(key, value);
            ops.push({ f: 'write', ok: true, client: id, key, value, version: w.version, invoke, complete: sim.now() });
          } catch (err) {
            if (!isQuorumUnreachableError(err)) throw err;
            // the version is not in the error: find it later by its (unique) value, if a read returns it
            ops.push({ f: 'write', ok: false, client: id, key, value, version: { wallMs: 0, logical: 0, writer: '', vector: {} }, invoke, complete: sim.now() });
          }
        } else {
          try {
            const r = await kv.get(key);
            ops.push({ f: 'read', client: id, key, value: r.value, version: r.version, context: { ...r.context.vector }, invoke, complete: sim.now() });
          } catch (err) {
            if (!isQuorumUnreachableError(err)) throw err;
          }
        }
      }
    };
    let done = false;
    const clients = Promise.all(CLIENTS.map(client)).then(() => { done = true; });
    await sim.run({ until: () => done, maxSteps: 2_000_000 });
    await clients;
    return { ...check(ops, versioning), ops, faults: sim.schedule.length };
  } finally {
    await sim.shutdown();
  }
}

function check(ops: readonly Op[], versioning: Versioning): { failedWritesSeen: number; violations: string[] } {
  const violations: string[] = [];
  const reads = ops.filter((o): o is Read => o.f === 'read');
  const writes = ops.filter((o): o is Write => o.f === 'write');
  const show = (o: Op): string => `${o.client} ${o.f} ${o.key}=${o.value ?? '∅'} [${o.invoke}, ${o.complete}]`;
  for (const r of reads) {
    // 1. acknowledged writes are read back
    for (const w of writes) {
      if (w.ok && w.key === r.key && w.complete < r.invoke && !atLeast(versioning, r, w)) {
        violations.push(`acknowledged write not read back: ${show(w)} then ${show(r)}`);
      }
    }
    // 2. monotonic reads
    for (const p of reads) {
      if (p.key === r.key && p.complete < r.invoke && !atLeast(versioning, r, p)) {
        violations.push(`read went back in time: ${show(p)} then ${show(r)}`);
      }
    }
  }
  // 3. a failed write, once seen, stays seen
  let failedWritesSeen = 0;
  for (const f of writes.filter((w) => !w.ok)) {
    const seen = reads.filter((r) => r.key === f.key && r.value === f.value);
    if (seen.length === 0) continue;
    failedWritesSeen++;
    const first = seen.reduce((a, b) => (b.complete < a.complete ? b : a));
    for (const r of reads) {
      if (r.key === f.key && r.invoke > first.complete && !atLeast(versioning, r, first)) {
        violations.push(`failed write ${show(f)} seen by ${show(first)}, then unseen by ${show(r)}`);
      }
    }
  }
  return { failedWritesSeen, violations };
}

describe('quorum replica group, simulated under a seeded nemesis', () => {
  const configs: Array<Pick<QuorumGroupOptions, 'w' | 'r' | 'versioning'>> = [
    { w: 2, r: 2 },
    { w: 3, r: 1 },
    { w: 1, r: 3 },
    { w: 2, r: 2, versioning: 'vv' },
  ];
  for (const q of configs) {
    it(`N=3 W=${q.w} R=${q.r} ${q.versioning ?? 'lww'}: ${SEEDS} seeds — acknowledged writes read back, reads monotonic, failed writes never unseen`, async () => {
      let okWrites = 0;
      let failedWrites = 0;
      let okReads = 0;
      let seenFailed = 0;
      for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
        const r = await runScenario(seed, q);
        if (r.violations.length > 0) {
          throw new Error(`seed ${seed} (W=${q.w} R=${q.r} ${q.versioning ?? 'lww'}): ${r.violations.length} violation(s)\n${r.violations.slice(0, 5).join('\n')}\nrerun: QUORUM_SIM_SEED=${seed} QUORUM_SIM_SEEDS=1`);
        }
        okWrites += r.ops.filter((o) => o.f === 'write' && o.ok).length;
        failedWrites += r.ops.filter((o) => o.f === 'write' && !o.ok).length;
        okReads += r.ops.filter((o) => o.f === 'read').length;
        seenFailed += r.failedWritesSeen;
      }
      console.log(`quorum W=${q.w} R=${q.r} ${q.versioning ?? 'lww'}: ${SEEDS} seeds, ${okWrites} writes acknowledged, ${failedWrites} failed (${seenFailed} of them seen by a read), ${okReads} reads`);
      // the runs did real work under real faults: writes and reads succeeded, and some failed
      expect(okWrites).toBeGreaterThan(SEEDS);
      expect(okReads).toBeGreaterThan(SEEDS);
      expect(failedWrites).toBeGreaterThan(0);
    }, 600_000);
  }

  it('the checker itself flags a read that goes back in time and an unread acknowledged write', () => {
    const v = (wallMs: number): QuorumVersion => ({ wallMs, logical: 0, writer: 'w', vector: {} });
    const ops: Op[] = [
      { f: 'write', ok: true, client: 'c1', key: 'k', value: 'a', version: v(10), invoke: 0, complete: 5 },
      { f: 'read', client: 'c2', key: 'k', value: undefined, version: undefined, context: {}, invoke: 6, complete: 8 },
    ];
    expect(check(ops, 'lww').violations).toHaveLength(1);
    const ops2: Op[] = [
      { f: 'read', client: 'c1', key: 'k', value: 'b', version: v(20), context: {}, invoke: 0, complete: 5 },
      { f: 'read', client: 'c2', key: 'k', value: 'a', version: v(10), context: {}, invoke: 6, complete: 8 },
    ];
    expect(check(ops2, 'lww').violations[0]).toMatch(/back in time/);
  });
});

describe('quorum under scripted partitions', () => {
  function setup(nodes: string[]): Simulation {
    const sim = createSimulation({ seed: 7, nodes, scenario: 'quorum-scripted', latencyMs: [1, 5] });
    for (const r of nodes.filter((n) => n.startsWith('r') || n.startsWith('s'))) spawnQuorumReplica(sim.system(r), { name: 'replica', handoffIntervalMs: 200 });
    sim.system('c1', { messages: [quorumMessages] }); // a client-only node: it sends quorum messages it hosts no actor for
    return sim;
  }
  /** Run the simulation until `p` settles. */
  async function settle<T>(sim: Simulation, p: Promise<T>): Promise<T> {
    let out: { ok: true; v: T } | { ok: false; e: unknown } | undefined;
    p.then((v) => { out = { ok: true, v }; }, (e: unknown) => { out = { ok: false, e }; });
    await sim.run({ until: () => out !== undefined, maxSteps: 100_000 });
    if (!out) throw new Error('operation did not settle');
    if (!out.ok) throw out.e;
    return out.v;
  }
  const dataOf = (sim: Simulation, node: string, key: string): string[] =>
    ((sim.system(node).snapshotOf(`${node}/replica`)!.context as QuorumReplicaContext).data.get(key) ?? []).map((i) => i.value);

  it('a failed write that a read returned is not unseen by a later read: read repair made it stick', async () => {
    const sim = setup(['r1', 'r2', 'r3', 'c1']);
    try {
      const kv = createQuorumGroup(sim.system('c1'), { replicas: ADDRESSES, w: 2, r: 2, timeoutMs: 100 });
      await settle(sim, kv.put('k', 'old'));
      // only r1 can hear the client: the write reaches r1 and fails
      sim.nemesis.partition([['c1', 'r1'], ['r2', 'r3']]);
      const err = await settle(sim, kv.put('k', 'new')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(QuorumUnreachableError);
      expect(err).toMatchObject({ phase: 'write', acks: 1, needed: 2, replicas: 3 });
      expect(dataOf(sim, 'r1', 'k')).toEqual(['new']);
      // r3 cut off: the read hears r1 (new) and r2 (old), returns the newer one and repairs r2
      sim.nemesis.heal();
      sim.nemesis.isolate('r3');
      const first = await settle(sim, kv.get('k'));
      expect(first.value).toBe('new');
      expect(first.repaired).toBeGreaterThanOrEqual(1);
      expect(dataOf(sim, 'r2', 'k')).toEqual(['new']);
      // now r1 — the only replica the write itself reached — is cut off, r3 is back: still 'new'
      sim.nemesis.heal();
      sim.nemesis.isolate('r1');
      const second = await settle(sim, kv.get('k'));
      expect(second.value).toBe('new');
    } finally {
      await sim.shutdown();
    }
  });

  it('a sloppy quorum acknowledges through a stand-in while two replicas are cut off, and hands the hint off after the heal', async () => {
    const sim = setup(['r1', 'r2', 'r3', 's1', 'c1']);
    try {
      const sloppy = createQuorumGroup(sim.system('c1'), { replicas: ADDRESSES, w: 2, r: 2, timeoutMs: 100, standIns: ['s1/replica'], name: 'sloppy' });
      const strict = createQuorumGroup(sim.system('c1'), { replicas: ADDRESSES, w: 2, r: 2, timeoutMs: 100, name: 'strict' });
      sim.nemesis.partition([['c1', 'r1', 's1'], ['r2', 'r3']]);
      await expect(settle(sim, strict.put('k', 'strict'))).rejects.toMatchObject({ phase: 'write', acks: 1, needed: 2 });
      const w = await settle(sim, sloppy.put('k', 'sloppy'));
      expect(w).toMatchObject({ acks: 2, hinted: 1 });
      expect(dataOf(sim, 's1', 'k')).toEqual([]); // a hint, not the stand-in's own data
      // W + R > N is weakened: a strict read cannot even gather R here
      const readErr = await settle(sim, strict.get('k')).catch((e: unknown) => e);
      expect(readErr).toMatchObject({ phase: 'read', needed: 2 });
      sim.nemesis.heal();
      const standIn = (): QuorumReplicaContext => sim.system('s1').snapshotOf('s1/replica')!.context as QuorumReplicaContext;
      await sim.run({ until: () => standIn().hints.length === 0, maxSteps: 100_000 });
      expect(standIn().handedOff).toBe(1);
      const holders = REPLICAS.filter((r) => dataOf(sim, r, 'k').includes('sloppy'));
      expect(holders.length).toBeGreaterThanOrEqual(2); // r1 and the replica the hint was for
      expect((await settle(sim, strict.get('k'))).value).toBe('sloppy');
    } finally {
      await sim.shutdown();
    }
  });

  it('hinted handoff keeps retrying while the home replica stays cut off', async () => {
    const sim = setup(['r1', 'r2', 'r3', 's1', 'c1']);
    try {
      const sloppy = createQuorumGroup(sim.system('c1'), { replicas: ADDRESSES, w: 3, r: 1, timeoutMs: 100, standIns: ['s1/replica'] });
      sim.nemesis.isolate('r3');
      expect(await settle(sim, sloppy.put('k', 'v'))).toMatchObject({ acks: 3, hinted: 1 });
      await sim.run({ forMs: 2_000 });
      const standIn = sim.system('s1').snapshotOf('s1/replica')!.context as QuorumReplicaContext;
      expect(standIn.hints.map((h) => h.target)).toEqual(['r3/replica']);
      expect(dataOf(sim, 'r3', 'k')).toEqual([]);
      sim.nemesis.heal();
      await sim.run({ forMs: 1_000 });
      expect(dataOf(sim, 'r3', 'k')).toEqual(['v']);
    } finally {
      await sim.shutdown();
    }
  });
});
