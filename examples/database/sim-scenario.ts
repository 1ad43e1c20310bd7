/**
 * The `database` simulation scenario: the case study's topology (3 ranges, each a 3-replica Raft
 * group, over 4 nodes) and workload on the deterministic simulator, under the same fault schedule
 * (kill a range leader, partition a node, pause a node), with the history checked for
 * linearizability per range. The same seed (and options) gives the same run:
 * `troupe sim database --seed N --faults kill-leader,partition,pause --duration MS`.
 */
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import { createRng } from '../../framework/clock.ts';
import type { Operation } from '../../framework/sim/history.ts';
import type { ScenarioRun, ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { createLeaderTracker, FAULT_NAMES, parseFaults, type AppliedFault, type FaultName } from './faults.ts';
import { formatReport, type DatabaseReport } from './report.ts';
import { runDatabase } from './run.ts';
import { createTopology, memoryStorages, startDatabaseNode } from './topology.ts';

export interface DatabaseScenarioOptions {
  seed: number;
  /** Simulated workload time. @default 4_000 */
  durationMs?: number;
  /** Fault names (`kill-leader`, `partition`, `pause`). @default all three */
  faults?: readonly string[];
  /** @default 6 */
  clients?: number;
}

export interface DatabaseScenarioResult {
  readonly seed: number;
  readonly report: DatabaseReport;
  readonly operations: readonly Operation[];
  readonly okOps: number;
  /** The linearizability verdict over every range (`checked` sums the ranges). */
  readonly check: { readonly valid: boolean | 'unknown'; readonly checked: number };
  readonly schedule: readonly AppliedFault[];
  /** The report as text (the CLI prints it). */
  readonly summary: string;
  /** The command that replays this run. */
  readonly replay: string;
}

/** Run the scenario for one seed. */
export async function runScenario(options: DatabaseScenarioOptions): Promise<DatabaseScenarioResult> {
  const { seed } = options;
  const durationMs = options.durationMs ?? 4_000;
  const faults: FaultName[] = options.faults ? parseFaults(options.faults.join(',')) : [...FAULT_NAMES];
  const topology = createTopology();
  const tracker = createLeaderTracker();
  const storage = memoryStorages();
  const sim = createSimulation({
    seed, nodes: [...topology.nodes, 'client'], scenario: 'database', latencyMs: [1, 5],
    onRestart: (node) => start(node.name),
  });
  function start(node: string): void {
    const incarnation = sim.nodes.get(node)?.incarnation ?? 1;
    startDatabaseNode(sim.system(node), topology, node, {
      rng: createRng(seed * 1_000 + Number(node.slice(1)) * 31 + incarnation * 17),
      onRole: (range, role, term) => tracker.onRole(node, range, role, term),
      storage: storage(node),
    });
  }
  for (const n of topology.nodes) start(n);
  const client = sim.system('client', { messages: [kvMessages] });
  const run = runDatabase({
    title: `database simulation, seed ${seed}`, system: client, topology, clock: sim.clock, rng: createRng(seed * 7 + 1),
    history: sim.history, durationMs, faults, clients: options.clients ?? 6,
    target: {
      leaderOf: (range) => tracker.leaderOf(range),
      kill: (node) => { tracker.forget(node); sim.nemesis.crash(node); },
      restart: (node) => sim.nemesis.restart(node),
      isolate: (node) => sim.nemesis.isolate(node),
      heal: () => sim.nemesis.heal(),
      pause: (node) => sim.nemesis.pause(node),
      resume: (node) => sim.nemesis.resume(node),
    },
  });
  let done = false;
  const finished = run.finally(() => { done = true; });
  await sim.run({ until: () => done, maxSteps: 5_000_000 });
  const report = await finished;
  const operations = sim.history.operations();
  const flags = `--seed ${seed} --faults ${faults.length > 0 ? faults.join(',') : 'none'} --duration ${durationMs}`;
  const result: DatabaseScenarioResult = {
    seed, report, operations, okOps: report.ok, schedule: report.faults,
    check: { valid: report.ranges.some((r) => r.valid === false) ? false : report.linearizable ? true : 'unknown', checked: report.checked },
    summary: formatReport(report), replay: `npx tsx framework/cli.ts sim database ${flags}`,
  };
  await sim.shutdown();
  return result;
}

/** `troupe sim database`: one seed, its report, and whether every range's history is linearizable. */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const r = await runScenario(options);
  const verdict = r.check.valid === true ? 'yes' : r.check.valid === false ? 'NO' : 'undecided';
  return {
    seed: r.seed, ok: r.check.valid === true, report: r.summary, replay: r.replay,
    summary: `linearizable: ${verdict}, ${r.check.checked} operations checked (${r.okOps} acknowledged), ${r.schedule.length} faults`,
    ...(r.check.valid === true ? {} : { failure: 'the history of at least one range is not linearizable (see the report above)' }),
  };
}
