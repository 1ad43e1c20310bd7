/**
 * Primary–backup replication on the deterministic simulator: three replicas (`a`, `b`, `c`) of a
 * list machine elect their primary through a lease in a memory `KvStore` on a fourth simulated
 * node, `store` (see actors/leader-election/sim-scenario.ts). A client writes to whoever serves as
 * primary every few ms, several writes in flight. Part-way through, the primary is crashed (or
 * isolated by a partition); the run goes on until a new primary serves and has taken writes.
 *
 * Checked at the end:
 * - sync: every write acknowledged to the client is in the new primary's state, in order;
 * - async: the acknowledged writes missing are at most the lag the primary reported just before
 *   the fault;
 * - once the faults heal (and a crashed replica restarts), every replica's state equals the
 *   primary's: a returning old primary has dropped its divergent suffix and caught up;
 * - epochs of the primaries only increase.
 */
import { assign, setup } from 'xstate';
import { createRng } from '../../framework/clock.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import { leaseElection } from '../leader-election/lease.ts';
import { linkStore, STORE_NODE } from '../leader-election/sim-scenario.ts';
import { replicated, type ReplicationEvent, type ReplicationLag, type ReplicationMode, type Replicated } from './replicated.ts';

/** The replicated machine of the scenario: an append-only list of numbers. */
export const listMachine = setup({
  types: { context: {} as { items: number[] }, events: {} as { type: 'ADD'; n: number } },
}).createMachine({
  id: 'list',
  context: { items: [] },
  on: { ADD: { actions: assign({ items: ({ context, event }) => [...context.items, event.n] }) } },
});

export const REPLICAS = ['a', 'b', 'c'] as const;

/** Options of {@link runReplicationScenario}. */
export interface ReplicationScenarioOptions {
  seed: number;
  mode: ReplicationMode;
  /** @default 1 */
  w?: number;
  /** `crash` the primary (restarted later, empty) or `isolate` it (healed later). @default 'crash' */
  fault?: 'crash' | 'isolate';
  /** The fault strikes at this simulated time. @default 1_500 */
  faultAtMs?: number;
  /** New writes per ms-tick: one write every `writeEveryMs`. @default 3 */
  writeEveryMs?: number;
  /** Client writes that may be in flight at once. @default 8 */
  inFlight?: number;
  /**
   * For the last `lagBackupMs` before the fault, cut the primary's link to one backup (drawn from
   * the seed), so the two backups differ: whichever is elected, the acknowledged writes are on
   * only one of them. 0 disables. @default 100
   */
  lagBackupMs?: number;
  /** Cut the link to `one` backup, or to `both` (then nothing the primary takes meanwhile reaches a backup). @default 'one' */
  lagBackups?: 'one' | 'both';
}

export interface ReplicationScenarioResult {
  readonly seed: number;
  /** The primary at the fault, and the one after it. */
  readonly oldPrimary: string;
  readonly newPrimary: string;
  readonly epochs: readonly number[];
  /** Writes acknowledged to the client, in total. */
  readonly acknowledged: number;
  /** Acknowledged before the fault. */
  readonly acknowledgedBeforeFault: number;
  /** Acknowledged writes not in the new primary's state (none may go missing later). */
  readonly lost: number;
  /** The old primary's `status().lag` just before the fault. */
  readonly lagAtFault: ReplicationLag;
  /** Time from the fault to the new primary's first acknowledged write. */
  readonly failoverMs: number;
  /** Writes that failed with a typed error (NotPrimary / WriteUnacknowledged). */
  readonly rejected: number;
  readonly events: readonly ReplicationEvent[];
  readonly replay: string;
}

const TTL_MS = 600;

/** Run one seed; rejects with a `SimulationFailure` naming the seed when a check fails. */
export async function runReplicationScenario(options: ReplicationScenarioOptions): Promise<ReplicationScenarioResult> {
  const { seed, mode } = options;
  const w = options.w ?? 1;
  const fault = options.fault ?? 'crash';
  const faultAtMs = options.faultAtMs ?? 1_500;
  const writeEveryMs = options.writeEveryMs ?? 3;
  const inFlight = options.inFlight ?? 8;
  const replay = `REPLICATION_SEED=${seed} REPLICATION_SEEDS=1 npx vitest run --config test/vitest.config.ts test/sim/replication.test.ts`;
  const sim: Simulation = createSimulation({ seed, nodes: [...REPLICAS, STORE_NODE], scenario: 'replication', latencyMs: [1, 5], trace: false });
  const store = createMemoryKvStore({ clock: sim.clock });
  const events: ReplicationEvent[] = [];
  const replicas = new Map<string, Replicated<typeof listMachine>>();
  const epochs: number[] = [];

  const start = (name: string, joining: boolean): void => {
    const node = sim.nodes.get(name)!;
    const system = sim.system(name);
    const link = linkStore(sim, store, name, { timeoutMs: 100, rng: createRng(seed * 7 + name.charCodeAt(0) + node.incarnation * 131) });
    const election = leaseElection({ store: link, candidate: name, clock: node.clock, ttlMs: TTL_MS, renewIntervalMs: 150, safetyMarginMs: 60 });
    replicas.set(name, replicated(system, {
      name: 'list', machine: listMachine, replicas: REPLICAS, election, mode, w, joining,
      heartbeatIntervalMs: 20, requestTimeoutMs: 100, recoveryRetryMs: 50, writeTimeoutMs: 1_000, maxStalenessMs: 200,
      onEvent: (e) => {
        events.push(e);
        if (e.kind === 'recovered') {
          if (epochs.length > 0 && e.epoch <= epochs.at(-1)!) sim.fail(`primary epoch went backwards: ${e.epoch} after ${epochs.at(-1)}`);
          epochs.push(e.epoch);
        }
      },
    }));
  };
  for (const n of REPLICAS) start(n, false);

  const up = (n: string): boolean => sim.nodes.get(n)!.status === 'up';
  const primary = (): string | undefined => REPLICAS.find((n) => up(n) && replicas.get(n)!.status().role === 'primary' && replicas.get(n)!.status().lag !== undefined);

  // ---- the client ----
  let next = 1;
  let outstanding = 0;
  let faulted = false;
  const acked: number[] = [];
  let ackedBeforeFault = 0;
  let firstAckAfterFaultMs: number | undefined;
  let rejected = 0;
  let clientStopped = false;
  const write = (): void => {
    if (clientStopped) return;
    sim.clock.setTimeout(write, writeEveryMs);
    const p = primary();
    if (p === undefined || outstanding >= inFlight) return;
    const n = next++;
    outstanding++;
    const by = p;
    replicas.get(p)!.send({ type: 'ADD', n }).then(
      () => {
        // A crashed node's promise might still settle: its acknowledgement never reached a client.
        if (faulted && fault === 'crash' && by === oldPrimary) return;
        acked.push(n);
        if (!faulted) ackedBeforeFault = acked.length;
        else if (firstAckAfterFaultMs === undefined && by !== oldPrimary) firstAckAfterFaultMs = sim.now();
      },
      () => { rejected++; },
    ).finally(() => { outstanding--; });
  };
  sim.clock.setTimeout(write, writeEveryMs);

  let oldPrimary = '';
  const lagBackupMs = options.lagBackupMs ?? 100;
  try {
    if (lagBackupMs > 0) {
      await sim.run({ untilMs: faultAtMs - lagBackupMs });
      const p0 = primary();
      if (p0 !== undefined) {
        const backups = REPLICAS.filter((n) => n !== p0);
        const cut = (options.lagBackups ?? 'one') === 'both' ? backups : [backups[sim.rng.int(backups.length)]!];
        sim.nemesis.partitionOneWay(p0, cut);
      }
    }
    await sim.run({ untilMs: faultAtMs });
    const p = primary();
    if (p === undefined) sim.fail(`no primary at ${faultAtMs} ms`);
    oldPrimary = p;
    const lagAtFault = replicas.get(p)!.status().lag!;
    faulted = true;
    const faultAt = sim.now();
    if (fault === 'crash') {
      sim.nemesis.crash(p);
      sim.nemesis.heal();
    } else {
      sim.nemesis.heal();
      sim.nemesis.isolate(p);
    }
    await sim.run({ until: () => firstAckAfterFaultMs !== undefined, untilMs: faultAt + 5_000 });
    if (firstAckAfterFaultMs === undefined) sim.fail(`no write acknowledged by a new primary within 5000 ms of the fault on ${p}`);
    const newPrimary = primary()!;
    await sim.run({ forMs: 300 });

    // Check what the new primary holds before the old one returns.
    const items = replicas.get(newPrimary)!.read().snapshot.context.items;
    const held = new Set(items);
    const lost = acked.filter((n) => !held.has(n)).length;
    for (let i = 1; i < items.length; i++) {
      if (items[i - 1]! >= items[i]!) sim.fail(`the new primary's list is out of order at ${i}: ${items[i - 1]} then ${items[i]}`);
    }

    // The old primary returns and catches up; then every replica holds the same list.
    if (fault === 'crash') {
      sim.nemesis.restart(p);
      sim.system(p);
      start(p, true);
    } else {
      sim.nemesis.heal();
    }
    await sim.run({ forMs: 1_000 });
    clientStopped = true;
    await sim.run({ forMs: 1_500 }); // let the backups catch up
    const finalPrimary = primary();
    if (finalPrimary === undefined) sim.fail('no primary at the end');
    const want = JSON.stringify(replicas.get(finalPrimary)!.read().snapshot.context.items);
    for (const n of REPLICAS) {
      const got = JSON.stringify(replicas.get(n)!.read({ maxStalenessMs: Number.POSITIVE_INFINITY }).snapshot.context.items);
      if (got !== want) sim.fail(`replica ${n} diverges from primary ${finalPrimary} after healing (${got.length} vs ${want.length} chars)`);
    }
    const final = new Set(replicas.get(finalPrimary)!.read().snapshot.context.items);
    const lostInTheEnd = acked.filter((n) => !final.has(n)).length;
    if (lostInTheEnd > lost) sim.fail(`${lostInTheEnd - lost} acknowledged write(s) were lost after the failover`);
    return {
      seed, oldPrimary: p, newPrimary, epochs, acknowledged: acked.length, acknowledgedBeforeFault: ackedBeforeFault, lost, lagAtFault,
      failoverMs: firstAckAfterFaultMs - faultAt, rejected, events, replay,
    };
  } finally {
    await sim.shutdown();
  }
}
