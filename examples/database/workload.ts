/**
 * The database's clients and workload. Every range has one circuit breaker and one bulkhead,
 * shared by all clients of this process (a gateway's view of a range: when a range has no leader,
 * its breaker opens and calls to the other ranges go on); behind them each client has its own
 * `RemoteKvClient` per range, which finds the range's leader and retries a write with the same
 * (client, seq) so it is applied once.
 *
 * Every operation is recorded in a Jepsen-style history: `ok`; `fail` only when it certainly did
 * not happen (rejected by an open breaker or a full bulkhead before it was sent, or a read, which
 * changes nothing); otherwise `info` (a timed-out write may still be applied later).
 */
import { createBulkhead, type Bulkhead } from '../../actors/bulkhead/bulkhead.ts';
import { createCircuitBreaker, type CircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { wrap, type Policy } from '../../actors/policy/policy.ts';
import { RemoteKvClient } from '../../actors/raft/kv-service.ts';
import { BrokenCircuitError, BulkheadRejectedError, type ActorSystem, type Clock, type Rng } from '../../framework/index.ts';
import type { HistoryRecorder } from '../../framework/sim/history.ts';
import { rangeOf, serviceAddress, type Topology } from './topology.ts';

/** A range's guards: breaker outside the bulkhead (a full bulkhead does not trip the breaker). */
export interface RangeGuard {
  readonly breaker: CircuitBreaker;
  readonly bulkhead: Bulkhead;
  readonly policy: Policy;
}

/** One breaker and one bulkhead per range, their charts hosted on `system` (so the inspector shows them). */
export function createRangeGuards(system: ActorSystem, topology: Topology, clock: Clock): ReadonlyMap<string, RangeGuard> {
  const guards = new Map<string, RangeGuard>();
  for (const { id } of topology.ranges) {
    const breaker = createCircuitBreaker({
      name: `breaker-${id}`, consecutiveFailures: 5, openMs: 400, clock, isFailure: (e) => !(e instanceof BulkheadRejectedError),
    });
    const bulkhead = createBulkhead({ name: `bulkhead-${id}`, limit: 4, queue: 4, queueTimeoutMs: 1_000, clock });
    system.host(`breaker-${id}`, breaker.actor, { type: 'circuit-breaker' });
    system.host(`bulkhead-${id}`, bulkhead.actor, { type: 'bulkhead' });
    guards.set(id, { breaker, bulkhead, policy: wrap(breaker, bulkhead) });
  }
  return guards;
}

/** One finished operation, for the report. */
export interface OpSample {
  /** When it was invoked, ms since the workload started. */
  readonly atMs: number;
  readonly latencyMs: number;
  readonly f: 'read' | 'write';
  readonly range: string;
  readonly outcome: 'ok' | 'fail' | 'info';
  /** The error's class name, for errors by type. */
  readonly error?: string;
}

/** Options of {@link runWorkload}. */
export interface WorkloadOptions {
  system: ActorSystem;
  topology: Topology;
  guards: ReadonlyMap<string, RangeGuard>;
  history: HistoryRecorder;
  /** Times operations and think time (the system's clock, or the simulator's). */
  clock: Clock;
  rng: Rng;
  /** Clients issue operations until this much time has passed, or `stopped()`. */
  durationMs: number;
  /** Concurrent clients, each with one operation in flight. @default 8 */
  clients?: number;
  /** Share of reads. @default 0.5 */
  readRatio?: number;
  /** Pause between a client's operations, [min, max] ms. @default [1, 5] */
  thinkMs?: readonly [number, number];
  /** Checked before each operation: true ends the run early (Ctrl-C); in-flight operations finish. */
  stopped?: () => boolean;
  /** Every finished operation. */
  onSample?: (sample: OpSample) => void;
}

/** Run the workload; resolves once every client's last operation finished (drained). */
export async function runWorkload(options: WorkloadOptions): Promise<{ samples: OpSample[]; elapsedMs: number }> {
  const { system, topology, guards, history, clock, rng } = options;
  const [thinkMin, thinkMax] = options.thinkMs ?? [1, 5];
  const readRatio = options.readRatio ?? 0.5;
  const samples: OpSample[] = [];
  const startMs = clock.now();
  const over = (): boolean => clock.now() - startMs >= options.durationMs || (options.stopped?.() ?? false);
  const client = async (id: string): Promise<void> => {
    const kv = new Map(topology.ranges.map((r) => [r.id, new RemoteKvClient(
      system, `${id}-${r.id}`, r.replicas.map((n) => serviceAddress(n, r.id)), { attemptTimeoutMs: 250, attempts: 4, backoffMs: 20 },
    )]));
    let n = 0;
    while (!over()) {
      await new Promise<void>((resolve) => clock.setTimeout(resolve, thinkMin + rng.int(thinkMax - thinkMin + 1)));
      if (over()) break;
      const key = topology.keys[rng.int(topology.keys.length)]!;
      const range = rangeOf(topology, key).id;
      const f = rng.next() < readRatio ? 'read' : 'write';
      const value = `${id}-${++n}`;
      const op = history.invoke(id, f, key, f === 'write' ? value : null);
      const t0 = clock.now();
      const sample = (outcome: OpSample['outcome'], error?: unknown): void => {
        const s: OpSample = {
          atMs: t0 - startMs, latencyMs: clock.now() - t0, f, range, outcome,
          ...(error !== undefined ? { error: error instanceof Error ? error.constructor.name : 'Error' } : {}),
        };
        samples.push(s);
        options.onSample?.(s);
      };
      const remote = kv.get(range)!;
      try {
        if (f === 'write') {
          await guards.get(range)!.policy.execute(() => remote.put(key, value));
          op.ok();
        } else {
          op.ok(await guards.get(range)!.policy.execute(() => remote.get(key)));
        }
        sample('ok');
      } catch (err) {
        // refused before it was sent, or a read: certainly no effect; a write that got no answer may still apply
        const certain = f === 'read' || err instanceof BrokenCircuitError || err instanceof BulkheadRejectedError;
        if (certain) op.fail(err);
        else op.info(err);
        sample(certain ? 'fail' : 'info', err);
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients ?? 8 }, (_, i) => client(`c${i + 1}`)));
  return { samples, elapsedMs: clock.now() - startMs };
}
