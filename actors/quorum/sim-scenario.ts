/**
 * The quorum replica group on the deterministic simulator (`troupe sim quorum --seed N`): three
 * replica nodes, two client nodes with their own coordinators, a seeded nemesis (partitions,
 * one-way links, a majorities ring, isolation, loss, duplication, reordering, delays, pauses, clock
 * skew — no crashes: replicas keep their data in memory). Every run's client history is checked for
 * the quorum guarantees:
 *
 * 1. an acknowledged write is read back (or superseded) by every quorum read that starts after it;
 * 2. successive quorum reads are monotonic (a read never returns an older version than one that
 *    completed before it started), thanks to blocking read repair;
 * 3. a failed write that one read returned is never "unseen" by a later read.
 *
 * Used by test/sim/quorum.test.ts, which runs every configuration of {@link QUORUM_SIM_CONFIGS}.
 */
import { createRng } from '../../framework/clock.ts';
import { isQuorumUnreachableError } from '../../framework/errors.ts';
import type { FaultKind } from '../../framework/sim/nemesis.ts';
import type { ScenarioRun, ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { replayCommand } from '../../framework/sim/failure.ts';
import { createQuorumGroup, type QuorumGroupOptions, type QuorumVersion, type Versioning } from './quorum.ts';
import { messages as quorumMessages } from './quorum.pb.ts';
import { spawnQuorumReplica } from './replica.ts';
import { compareVectors, compareVersions } from './versions.ts';

const REPLICAS = ['r1', 'r2', 'r3'];
const CLIENTS = ['c1', 'c2'];
const KEYS = ['k0', 'k1'];
const FAULTS: readonly FaultKind[] = ['partition', 'partitionOneWay', 'majoritiesRing', 'isolate', 'drop', 'duplicate', 'delay', 'reorder', 'pause', 'skew'];
const ADDRESSES = REPLICAS.map((r) => `${r}/replica`);

/** One client operation as recorded: a write (acknowledged or not) or a read. */
export type Op =
  | { f: 'write'; ok: boolean; client: string; key: string; value: string; version: QuorumVersion; invoke: number; complete: number }
  | { f: 'read'; client: string; key: string; value: string | undefined; version: QuorumVersion | undefined; context: Record<string, number>; invoke: number; complete: number };
type Write = Extract<Op, { f: 'write' }>;
type Read = Extract<Op, { f: 'read' }>;

/** One run: its history, and what the checks found. */
export interface QuorumRunResult {
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

/** A replica group's W, R and versioning. */
export type QuorumSimConfig = Pick<QuorumGroupOptions, 'w' | 'r' | 'versioning'>;

/** The configurations the simulation test runs, each over every seed. */
export const QUORUM_SIM_CONFIGS: readonly QuorumSimConfig[] = [
  { w: 2, r: 2 },
  { w: 3, r: 1 },
  { w: 1, r: 3 },
  { w: 2, r: 2, versioning: 'vv' },
];

/** Run one seed with one configuration (3 s of clients and faults by default). */
export async function runQuorumScenario(seed: number, quorum: QuorumSimConfig, durationMs = 3_000): Promise<QuorumRunResult> {
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
    return { ...checkQuorumHistory(ops, versioning), ops, faults: sim.schedule.length };
  } finally {
    await sim.shutdown();
  }
}

/** Check a history for the three guarantees (see the module docs). */
export function checkQuorumHistory(ops: readonly Op[], versioning: Versioning): { failedWritesSeen: number; violations: string[] } {
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

/** A configuration as the test names it: `W=2 R=2 lww`. */
export const describeQuorumConfig = (q: QuorumSimConfig): string => `W=${q.w} R=${q.r} ${q.versioning ?? 'lww'}`;

/** `troupe sim quorum --seed N`: seed N with every configuration of {@link QUORUM_SIM_CONFIGS}, as the test runs it. */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const parts: string[] = [];
  const failures: string[] = [];
  for (const q of QUORUM_SIM_CONFIGS) {
    const r = await runQuorumScenario(options.seed, q, options.durationMs);
    const writes = r.ops.filter((o) => o.f === 'write');
    parts.push(`${describeQuorumConfig(q)}: ${writes.filter((w) => w.ok).length}/${writes.length} writes acknowledged, ${r.ops.length - writes.length} reads`);
    if (r.violations.length > 0) failures.push(`${describeQuorumConfig(q)}: ${r.violations.length} violation(s)\n${r.violations.slice(0, 5).join('\n')}`);
  }
  return {
    seed: options.seed,
    ok: failures.length === 0,
    summary: parts.join('; '),
    ...(failures.length > 0 ? { failure: failures.join('\n') } : {}),
    replay: replayCommand('quorum', options.seed),
  };
}
