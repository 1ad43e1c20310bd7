/**
 * The database's fault schedule: kill a range's leader (its node crashes, then restarts from its
 * log), partition a node (cut off from every other node and the clients), pause a node (it stops,
 * then resumes). The plan is data, spread evenly over the run so that each episode ends before the
 * next begins; each run mode (embedded, processes, simulator) supplies a {@link FaultTarget} that
 * does the damage its own way.
 */
import type { Clock, Rng, TimerId } from '../../framework/clock.ts';
import type { Topology } from './topology.ts';

export type FaultName = 'kill-leader' | 'partition' | 'pause';
export const FAULT_NAMES: readonly FaultName[] = ['kill-leader', 'partition', 'pause'];

/** Parse `kill-leader,partition,pause` (or `none`); throws RangeError naming a bad one. */
export function parseFaults(spec: string): FaultName[] {
  if (spec === 'none' || spec === '') return [];
  return spec.split(',').map((s) => {
    if (!(FAULT_NAMES as readonly string[]).includes(s)) throw new RangeError(`unknown fault '${s}'; faults are ${FAULT_NAMES.join(', ')} (or none)`);
    return s as FaultName;
  });
}

/** What a run mode does for each fault. `leaderOf` is this process's best knowledge. */
export interface FaultTarget {
  leaderOf(range: string): string | undefined;
  kill(node: string): void | Promise<void>;
  restart(node: string): void | Promise<void>;
  isolate(node: string): void | Promise<void>;
  heal(node: string): void | Promise<void>;
  pause(node: string): void | Promise<void>;
  resume(node: string): void | Promise<void>;
}

/** A fault as applied, for the report. */
export interface AppliedFault {
  /** ms since the run started. */
  readonly atMs: number;
  readonly kind: FaultName;
  readonly node: string;
  /** Range whose leader was the target (kill-leader, pause). */
  readonly range?: string;
  readonly forMs: number;
  readonly description: string;
}

/** Follows leadership reports (`onRole`) to know each range's leader; `forget` a node that went down. */
export function createLeaderTracker(): { onRole(node: string, range: string, role: string, term: number): void; leaderOf(range: string): string | undefined; forget(node: string): void } {
  const leaders = new Map<string, { node: string; term: number }>();
  return {
    onRole(node, range, role, term) {
      const current = leaders.get(range);
      if (role === 'leader' && (!current || term >= current.term)) leaders.set(range, { node, term });
      else if (role !== 'leader' && current?.node === node) leaders.delete(range);
    },
    leaderOf: (range) => leaders.get(range)?.node,
    forget(node) {
      for (const [range, l] of leaders) if (l.node === node) leaders.delete(range);
    },
  };
}

/** Options of {@link startFaultSchedule}. */
export interface FaultScheduleOptions {
  faults: readonly FaultName[];
  topology: Topology;
  target: FaultTarget;
  clock: Clock;
  /** Picks the ranges and nodes hit (seeded: the simulator replays it). */
  rng: Rng;
  durationMs: number;
  onFault?: (fault: AppliedFault) => void;
}

/**
 * Apply `faults` in order, episode i starting at (i + 1) / (n + 1) of the run and lasting at most
 * 2 s (and less than the gap to the next). `stop()` cancels what has not started and undoes what is
 * in effect (restart, heal, resume); it resolves once that is done.
 */
export function startFaultSchedule(options: FaultScheduleOptions): { readonly applied: readonly AppliedFault[]; stop(): Promise<void> } {
  const { faults, topology, target, clock, rng } = options;
  const applied: AppliedFault[] = [];
  const timers = new Set<TimerId>();
  const undo = new Map<string, () => void | Promise<void>>();
  const pending = new Set<Promise<void>>();
  const startMs = clock.now();
  const gapMs = options.durationMs / (faults.length + 1);
  const forMs = Math.round(Math.min(2_000, gapMs * 0.6));
  const at = (delayMs: number, fn: () => void | Promise<void>): void => {
    const id = clock.setTimeout(() => {
      timers.delete(id);
      const p = Promise.resolve(fn()).catch(() => undefined).finally(() => pending.delete(p));
      pending.add(p);
    }, delayMs);
    timers.add(id);
  };
  faults.forEach((kind, i) => {
    at(Math.round(gapMs * (i + 1)), async () => {
      const range = topology.ranges[rng.int(topology.ranges.length)]!;
      const node = kind === 'partition' ? topology.nodes[rng.int(topology.nodes.length)]! : (target.leaderOf(range.id) ?? range.replicas[rng.int(3)]!);
      const key = `${kind}:${node}`;
      const fault: AppliedFault = {
        atMs: clock.now() - startMs, kind, node, forMs, ...(kind === 'partition' ? {} : { range: range.id }),
        description: kind === 'kill-leader' ? `killed ${node} (leader of ${range.id}) for ${forMs} ms`
          : kind === 'partition' ? `partitioned ${node} from every other node for ${forMs} ms`
            : `paused ${node} (leader of ${range.id}) for ${forMs} ms`,
      };
      if (kind === 'kill-leader') { await target.kill(node); undo.set(key, () => target.restart(node)); }
      else if (kind === 'partition') { await target.isolate(node); undo.set(key, () => target.heal(node)); }
      else { await target.pause(node); undo.set(key, () => target.resume(node)); }
      applied.push(fault);
      options.onFault?.(fault);
      at(forMs, async () => {
        const u = undo.get(key);
        undo.delete(key);
        await u?.();
      });
    });
  });
  return {
    applied,
    async stop() {
      for (const id of timers) clock.clearTimeout(id);
      timers.clear();
      await Promise.all([...pending]);
      for (const id of timers) clock.clearTimeout(id); // undo timers set by episodes that were in progress
      timers.clear();
      for (const u of undo.values()) await u();
      undo.clear();
    },
  };
}
