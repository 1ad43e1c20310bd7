/**
 * The `raft-kv-store` simulation scenario: the Raft `KvStore` (`kv-store.ts`) on a 3-node group,
 * three clients — each its own store instance — doing put, create, get-then-update
 * (compare-and-set on the revision read), delete and get on a few keys, under a seeded nemesis
 * (partitions, loss, duplication, reordering, delays, pauses, clock skew, crashes with restarts),
 * compacting the log every 20 entries so that lagging and restarted nodes install snapshots.
 * The history is checked for linearizability against the register model: every value written is
 * unique, so "the key is at the revision I read" is "the key holds the value I read", and an
 * update is a cas `[value read, new value]`, a create a cas `[null, new value]`.
 * `troupe sim raft-kv-store --seed N` replays one run; the same seed gives the same run.
 */
import { createRng } from '../../framework/clock.ts';
import { isKvConflictError } from '../../framework/errors.ts';
import { checkLinearizable, type CheckResult } from '../../framework/sim/linearizability.ts';
import { registerModel } from '../../framework/sim/models.ts';
import type { Operation } from '../../framework/sim/history.ts';
import type { FaultEvent, FaultKind } from '../../framework/sim/nemesis.ts';
import { linearizabilityRun, type ScenarioRun, type ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { createRaftKvStore, startRaftKvReplica, type RaftKvReplica } from './kv-store.ts';
import { memoryRaftStorage, type RaftStorage } from './node.ts';

/** Options of {@link runRaftKvStoreScenario}. */
export interface RaftKvStoreScenarioOptions {
  seed: number;
  /** Simulated time with clients running and faults applied. @default 2_000 */
  durationMs?: number;
  /** Fault kinds to draw from. @default every kind */
  faults?: readonly FaultKind[];
}

/** What one run did and whether its history is linearizable. */
export interface RaftKvStoreScenarioResult {
  readonly seed: number;
  readonly operations: readonly Operation[];
  readonly check: CheckResult<unknown>;
  readonly schedule: readonly FaultEvent[];
  /** Operations acknowledged (ok), of every kind. */
  readonly okOps: number;
  /** Acknowledged compare-and-sets (create/update), which the check constrains most. */
  readonly okCas: number;
  /** Snapshots restored by replicas (a restarted node's own, or installed by a leader). */
  readonly restores: number;
  readonly replay: string;
}

const NODES = ['a', 'b', 'c'] as const;
const KEYS = ['k0', 'k1'];
const CLIENTS = ['c1', 'c2', 'c3'];
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Run the scenario once (see the module docs). */
export async function runRaftKvStoreScenario(options: RaftKvStoreScenarioOptions): Promise<RaftKvStoreScenarioResult> {
  const { seed } = options;
  const durationMs = options.durationMs ?? 2_000;
  const replicas: RaftKvReplica[] = [];
  let restoresOfCrashed = 0;
  // a node's Raft storage outlives its crashes; its replica (the state machine) does not
  const disks = new Map<string, RaftStorage>(NODES.map((n) => [n, memoryRaftStorage()]));
  const voters = NODES.map((n) => `${n}/kv`);
  const boot = (name: string, incarnation: number): void => {
    const slot = NODES.indexOf(name as (typeof NODES)[number]);
    restoresOfCrashed += replicas[slot]?.restored ?? 0;
    replicas[slot] = startRaftKvReplica(sim.system(name), {
      name: 'kv', voters, storage: disks.get(name)!, tickMs: 10, electionTicks: 15, heartbeatTicks: 5, history: 3, snapshotEveryEntries: 20,
      rng: createRng(seed * 1_000 + name.charCodeAt(0) + incarnation * 17),
    });
  };
  const sim = createSimulation({
    seed, nodes: [...NODES], scenario: 'raft-kv-store', latencyMs: [1, 10], unsyncedOnCrash: 'lose',
    onRestart: (node) => boot(node.name, node.incarnation),
  });
  NODES.forEach((n) => boot(n, 1));

  sim.nemesis.randomSchedule(createRng(seed ^ 0x5eed), { durationMs, faults: options.faults, gapMs: [200, 800], faultMs: [200, 1_500] });
  const rng = createRng(seed * 7 + 1);
  let okOps = 0;
  let okCas = 0;
  const client = async (id: string): Promise<void> => {
    const store = createRaftKvStore({ replicas, clock: sim.clock, clientId: id, name: id, timeoutMs: 1_000, attemptTimeoutMs: 300 });
    let n = 0;
    /** Record `run` as one operation: ok with its result, fail on a lost compare-and-set, info otherwise. */
    const record = async <T>(f: string, key: string, value: Parameters<typeof sim.history.invoke>[3], run: () => Promise<T>, result: (r: T) => Parameters<typeof sim.history.invoke>[3]): Promise<T | undefined> => {
      const op = sim.history.invoke(id, f, key, value);
      try {
        const r = await run();
        op.ok(result(r));
        okOps++;
        if (f === 'cas') okCas++;
        return r;
      } catch (err) {
        if (isKvConflictError(err)) op.fail(err);
        else op.info(err);
        return undefined;
      }
    };
    while (sim.now() < durationMs) {
      // think time on simulated time (also what keeps a client without a leader from spinning)
      await new Promise<void>((resolve) => sim.clock.setTimeout(resolve, 5 + rng.int(20)));
      const key = KEYS[rng.int(KEYS.length)]!;
      const value = `${id}-${++n}`;
      const r = rng.next();
      if (r < 0.25) {
        await record('write', key, value, () => store.put(key, enc(value)), () => value);
      } else if (r < 0.4) {
        await record('cas', key, [null, value], () => store.create(key, enc(value)), () => [null, value]);
      } else if (r < 0.65) {
        const seen = await record('read', key, null, () => store.get(key), (e) => (e ? dec(e.value) : null));
        if (seen) {
          const was = dec(seen.value);
          await record('cas', key, [was, value], () => store.update(key, enc(value), seen.revision), () => [was, value]);
        }
      } else if (r < 0.75) {
        await record('delete', key, null, () => store.delete(key), () => null);
      } else {
        await record('read', key, null, () => store.get(key), (e) => (e ? dec(e.value) : null));
      }
    }
    await store.close();
  };
  const running = new Set(CLIENTS);
  const clients = Promise.all(CLIENTS.map((id) => client(id).finally(() => running.delete(id))));
  await sim.run({ until: () => running.size === 0, maxSteps: 2_000_000 });
  await clients;
  const operations = sim.history.operations();
  try {
    return { seed, operations, check: checkLinearizable(operations, registerModel()), schedule: [...sim.schedule], okOps, okCas,
      restores: restoresOfCrashed + replicas.reduce((n, r) => n + r.restored, 0), replay: sim.replayCommand() };
  } finally {
    await sim.shutdown();
  }
}

/** `troupe sim raft-kv-store --seed N`: the run test/sim/raft-kv-store.test.ts makes of seed N (2 s). */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const r = await runRaftKvStoreScenario({ seed: options.seed, durationMs: options.durationMs ?? 2_000 });
  return linearizabilityRun(r.seed, r.check, `${r.operations.length} operations checked (${r.okOps} acknowledged, ${r.okCas} compare-and-sets), ${r.schedule.length} faults, ${r.restores} snapshot restores`, r.replay);
}
