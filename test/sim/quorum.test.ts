/**
 * The quorum replica group on the deterministic simulator: every configuration of
 * `QUORUM_SIM_CONFIGS` over many seeds of actors/quorum/sim-scenario.ts (a seeded nemesis; each
 * history checked for read-your-acknowledged-writes, monotonic reads, failed writes never unseen).
 * A failing seed prints the command that replays it (`npx tsx framework/cli.ts sim quorum --seed N`);
 * QUORUM_SIM_SEED=N QUORUM_SIM_SEEDS=1 reruns this test on one seed.
 *
 * Plus three scripted partitions: a failed write surfacing and staying, a sloppy quorum with hinted
 * handoff, and the error a read gets when its quorum is cut off.
 */
import { describe, expect, it } from 'vitest';
import { QuorumUnreachableError } from '../../framework/errors.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';
import { createQuorumGroup, type QuorumVersion } from '../../actors/quorum/quorum.ts';
import { messages as quorumMessages } from '../../actors/quorum/quorum.pb.ts';
import { spawnQuorumReplica, type QuorumReplicaContext } from '../../actors/quorum/replica.ts';
import {
  checkQuorumHistory, describeQuorumConfig, QUORUM_SIM_CONFIGS, runQuorumScenario, type Op,
} from '../../actors/quorum/sim-scenario.ts';
import { replayCommand } from '../../framework/sim/failure.ts';

const SEEDS = Number(process.env['QUORUM_SIM_SEEDS'] ?? 30);
const FIRST = Number(process.env['QUORUM_SIM_SEED'] ?? 1);
const REPLICAS = ['r1', 'r2', 'r3'];
const ADDRESSES = REPLICAS.map((r) => `${r}/replica`);

describe('quorum replica group, simulated under a seeded nemesis', () => {
  for (const q of QUORUM_SIM_CONFIGS) {
    it(`N=3 ${describeQuorumConfig(q)}: ${SEEDS} seeds — acknowledged writes read back, reads monotonic, failed writes never unseen`, async () => {
      let okWrites = 0;
      let failedWrites = 0;
      let okReads = 0;
      let seenFailed = 0;
      for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
        const r = await runQuorumScenario(seed, q);
        if (r.violations.length > 0) {
          throw new Error(`seed ${seed} (${describeQuorumConfig(q)}): ${r.violations.length} violation(s)\n${r.violations.slice(0, 5).join('\n')}\nreplay: ${replayCommand('quorum', seed)}`);
        }
        okWrites += r.ops.filter((o) => o.f === 'write' && o.ok).length;
        failedWrites += r.ops.filter((o) => o.f === 'write' && !o.ok).length;
        okReads += r.ops.filter((o) => o.f === 'read').length;
        seenFailed += r.failedWritesSeen;
      }
      console.log(`quorum ${describeQuorumConfig(q)}: ${SEEDS} seeds, ${okWrites} writes acknowledged, ${failedWrites} failed (${seenFailed} of them seen by a read), ${okReads} reads`);
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
    expect(checkQuorumHistory(ops, 'lww').violations).toHaveLength(1);
    const ops2: Op[] = [
      { f: 'read', client: 'c1', key: 'k', value: 'b', version: v(20), context: {}, invoke: 0, complete: 5 },
      { f: 'read', client: 'c2', key: 'k', value: 'a', version: v(10), context: {}, invoke: 6, complete: 8 },
    ];
    expect(checkQuorumHistory(ops2, 'lww').violations[0]).toMatch(/back in time/);
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
