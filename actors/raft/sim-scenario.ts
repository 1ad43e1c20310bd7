/**
 * The `raft` simulation scenario: a 3-node replicated KV on Raft, three clients doing puts, cas and
 * linearizable reads on a few keys, under a seeded nemesis (partitions, one-way links, a majorities
 * ring, isolation, loss, duplication, reordering, delays, pauses, clock skew, crashes with restarts).
 * The clients' history is checked for linearizability. Used by the seeded tests and by
 * `troupe sim raft --seed N`; the same seed gives the same run.
 */
import { createRng } from '../../framework/clock.ts';
import { AskTimeoutError, NotLeaderError } from '../../framework/errors.ts';
import { checkLinearizable, type CheckResult } from '../../framework/sim/linearizability.ts';
import { registerModel } from '../../framework/sim/models.ts';
import type { Operation } from '../../framework/sim/history.ts';
import type { FaultEvent, FaultKind } from '../../framework/sim/nemesis.ts';
import { linearizabilityRun, type ScenarioRun, type ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { KvClient, startKvReplica, type KvReplica } from './kv.ts';
import { memoryRaftStorage, type RaftStorage } from './node.ts';

export interface RaftScenarioOptions {
  seed: number;
  /** Simulated time with clients running and faults applied. @default 6_000 */
  durationMs?: number;
  /** Fault kinds to draw from. @default every kind */
  faults?: readonly FaultKind[];
  /** Each node compacts its log every this many applied entries (so snapshots are installed under faults). @default 50 */
  snapshotEveryEntries?: number;
}

export interface RaftScenarioResult {
  readonly seed: number;
  readonly operations: readonly Operation[];
  readonly check: CheckResult<unknown>;
  readonly schedule: readonly FaultEvent[];
  readonly okOps: number;
  /** Snapshots restored into replicas (on restart, or installed by a leader). */
  readonly snapshotsRestored: number;
  readonly leaders: ReadonlyMap<number, string>;
  readonly replay: string;
}

const NODES = ['a', 'b', 'c'] as const;
const KEYS = ['k0', 'k1', 'k2'];

export async function runRaftScenario(options: RaftScenarioOptions): Promise<RaftScenarioResult> {
  const { seed } = options;
  const durationMs = options.durationMs ?? 6_000;
  const replicas: KvReplica[] = [];
  const storages = new Map<string, RaftStorage>();
  const leaders = new Map<number, string>();
  let restored = 0;
  const voters = NODES.map((n) => `${n}/raft`);
  const sim = createSimulation({
    seed, nodes: [...NODES], scenario: 'raft', latencyMs: [1, 10], unsyncedOnCrash: 'lose',
    onRestart: (node) => start(node.name),
  });
  function start(name: string): void {
    const storage = storages.get(name) ?? memoryRaftStorage();
    storages.set(name, storage);
    const system = sim.system(name);
    const slot = NODES.indexOf(name as (typeof NODES)[number]);
    restored += replicas[slot]?.restored ?? 0;
    replicas[slot] = startKvReplica(system, {
      name: 'raft', voters, rng: createRng(seed * 1_000 + name.charCodeAt(0) + (sim.nodes.get(name)?.incarnation ?? 0) * 17),
      storage, tickMs: 10, electionTicks: 15, heartbeatTicks: 5, snapshotEveryEntries: options.snapshotEveryEntries ?? 50,
      onRole: (role, term) => {
        if (role !== 'leader') return;
        const other = leaders.get(term);
        if (other !== undefined && other !== name) sim.fail(`two leaders in term ${term}: ${other} and ${name}`);
        leaders.set(term, name);
      },
    });
  }
  for (const n of NODES) start(n);

  sim.nemesis.randomSchedule(createRng(seed ^ 0x5eed), { durationMs, faults: options.faults, gapMs: [200, 800], faultMs: [200, 1_500] });
  const rng = createRng(seed * 7 + 1);
  let okOps = 0;
  const client = async (id: string): Promise<void> => {
    const kv = new KvClient(id, replicas, { attemptTimeoutMs: 300, attempts: 4, clock: sim.clock });
    let n = 0;
    while (sim.now() < durationMs) {
      // think time on simulated time (also what keeps a client without a leader from spinning)
      await new Promise<void>((resolve) => sim.clock.setTimeout(resolve, 5 + rng.int(20)));
      const key = KEYS[rng.int(KEYS.length)]!;
      const r = rng.next();
      if (r < 0.4) {
        const value = `${id}-${++n}`;
        const op = sim.history.invoke(id, 'write', key, value);
        try {
          await kv.command({ op: 'put', key, value });
          op.ok();
          okOps++;
        } catch (err) {
          if (err instanceof NotLeaderError) op.fail(err);
          else op.info(err);
        }
      } else if (r < 0.6) {
        const expected = rng.next() < 0.5 ? null : `c${1 + rng.int(3)}-${1 + rng.int(Math.max(1, n))}`;
        const value = `${id}-${++n}`;
        const op = sim.history.invoke(id, 'cas', key, [expected, value]);
        try {
          const res = await kv.command({ op: 'cas', key, expected, value });
          if (res.ok) {
            op.ok();
            okOps++;
          } else op.fail('expected value did not match');
        } catch (err) {
          if (err instanceof NotLeaderError) op.fail(err);
          else op.info(err);
        }
      } else {
        const op = sim.history.invoke(id, 'read', key, null);
        try {
          op.ok(await kv.get(key));
          okOps++;
        } catch (err) {
          if (err instanceof NotLeaderError || err instanceof AskTimeoutError) op.info(err);
          else op.info(err);
        }
      }
    }
  };
  let done = false;
  const clients = Promise.all(['c1', 'c2', 'c3'].map(client)).then(() => { done = true; });
  await sim.run({ until: () => done, maxSteps: 2_000_000 });
  await clients;
  const operations = sim.history.operations();
  const check = checkLinearizable(operations, registerModel());
  const result = { seed, operations, check, schedule: [...sim.schedule], okOps, snapshotsRestored: restored + replicas.reduce((n, r) => n + r.restored, 0), leaders, replay: sim.replayCommand() };
  await sim.shutdown();
  return result;
}

/** `troupe sim raft --seed N`: the run test/sim/raft-kv.test.ts makes of seed N (2 s, compaction every 20 entries). */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const r = await runRaftScenario({ seed: options.seed, durationMs: options.durationMs ?? 2_000, snapshotEveryEntries: 20 });
  return linearizabilityRun(r.seed, r.check, `${r.operations.length} operations checked (${r.okOps} acknowledged), ${r.schedule.length} faults, ${r.snapshotsRestored} snapshot restores`, r.replay);
}
