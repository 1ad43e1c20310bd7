/**
 * One database run, whatever hosts the nodes (one process, OS processes over NATS, the
 * simulator): wait for every range to elect a leader, run the workload through the per-range
 * breakers and bulkheads while the fault schedule runs, undo the faults, check the history.
 */
import type { ActorSystem, Clock, Rng } from '../../framework/index.ts';
import { createHistory, type HistoryRecorder } from '../../framework/sim/history.ts';
import { startFaultSchedule, type AppliedFault, type FaultName, type FaultTarget } from './faults.ts';
import { buildReport, type DatabaseReport } from './report.ts';
import type { Topology } from './topology.ts';
import { createRangeGuards, runWorkload, type OpSample } from './workload.ts';

/** Options of {@link runDatabase}. */
export interface RunDatabaseOptions {
  title: string;
  /** The clients' system (its node holds no replicas). */
  system: ActorSystem;
  topology: Topology;
  target: FaultTarget;
  /** Times everything; the history's clock too unless `history` is given. */
  clock: Clock;
  rng: Rng;
  durationMs: number;
  faults: readonly FaultName[];
  clients?: number;
  /** Record into this history (the simulator's, on its shared time). @default a new one on `clock` */
  history?: HistoryRecorder;
  /** Give up waiting for the first leaders after this long. @default 10_000 */
  electionTimeoutMs?: number;
  stopped?: () => boolean;
  onSample?: (sample: OpSample) => void;
  onFault?: (fault: AppliedFault) => void;
  /** Called when every range has a leader and the workload starts. */
  onStart?: () => void;
}

/** Run the workload under the fault schedule; resolves with the report once drained and checked. */
export async function runDatabase(options: RunDatabaseOptions): Promise<DatabaseReport> {
  const { system, topology, clock, target } = options;
  const deadline = clock.now() + (options.electionTimeoutMs ?? 10_000);
  while (topology.ranges.some((r) => target.leaderOf(r.id) === undefined)) {
    if (clock.now() > deadline) {
      const missing = topology.ranges.filter((r) => target.leaderOf(r.id) === undefined).map((r) => r.id);
      throw new Error(`no leader elected for range ${missing.join(', ')} within ${options.electionTimeoutMs ?? 10_000} ms`);
    }
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 20));
  }
  options.onStart?.();
  const history = options.history ?? createHistory({ clock });
  const guards = createRangeGuards(system, topology, clock);
  const schedule = startFaultSchedule({
    faults: options.faults, topology, target, clock, rng: options.rng.fork(), durationMs: options.durationMs,
    ...(options.onFault ? { onFault: options.onFault } : {}),
  });
  try {
    const { samples, elapsedMs } = await runWorkload({
      system, topology, guards, history, clock, rng: options.rng.fork(), durationMs: options.durationMs,
      ...(options.clients !== undefined ? { clients: options.clients } : {}),
      ...(options.stopped ? { stopped: options.stopped } : {}),
      ...(options.onSample ? { onSample: options.onSample } : {}),
    });
    await schedule.stop();
    return buildReport({ title: options.title, topology, samples, operations: history.operations(), faults: schedule.applied, elapsedMs });
  } finally {
    await schedule.stop();
    for (const g of guards.values()) g.breaker.dispose();
  }
}
