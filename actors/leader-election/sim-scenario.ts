/**
 * Lease-based leader election on the deterministic simulator: three candidates (`a`, `b`, `c`)
 * campaign for one group over a memory `KvStore` that lives on a fourth simulated node, `store`.
 * Every store call is a request and a reply on the simulated network (latency, cuts, loss), a
 * reply to a paused candidate waits until it resumes, and a crashed candidate's replies are lost.
 * Each candidate "works" every few ms, and only when `isLeader()` says so, writing its epoch to a
 * fenced resource.
 *
 * Checked after every step of the run:
 * - no two leaderships ever have the same epoch, and each new leadership's epoch is larger than
 *   every earlier one;
 * - whenever a candidate acts as leader, the store holds ITS lease at that moment (the lease key
 *   is at its epoch and not expired) — so no two candidates ever act as leader at the same time,
 *   and the fenced resource never rejects an act;
 * and, after the last fault has ended, a leader is elected within TTL + retry interval + the store
 * call timeout + margin.
 */
import { createRng, type Rng } from '../../framework/clock.ts';
import { StoreUnavailableError } from '../../framework/errors.ts';
import { randomSchedule, type FaultEvent, type FaultKind } from '../../framework/sim/nemesis.ts';
import type { ScenarioRun, ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import type { KvEntry, KvStore, KvWatch } from '../../framework/store/store.ts';
import { leaseElection, type LeaseCampaign } from './lease.ts';

/** The simulated node the store lives on. */
export const STORE_NODE = 'store';

/** Options of {@link linkStore}. */
export interface StoreLinkOptions {
  /** A call without an answer fails with `StoreUnavailableError` after this long (on the caller's clock). */
  timeoutMs: number;
  /** One-way latency, `[min, max]` ms. @default the network's */
  latencyMs?: readonly [number, number];
  /** Latencies and losses. */
  rng: Rng;
  /** Told about every call the store carried out, at the store, with its outcome. */
  onApplied?: (call: StoreCall) => void;
}

/** A call the store carried out. */
export type StoreCall =
  | { op: 'create' | 'update' | 'put'; key: string; revision: number; atMs: number }
  | { op: 'delete'; key: string; atMs: number };

/**
 * `store` as seen from simulated node `node` (its current incarnation): every call crosses the
 * simulated network to {@link STORE_NODE} and back, subject to its cuts, loss and extra delay.
 */
export function linkStore(sim: Simulation, store: KvStore, node: string, options: StoreLinkOptions): KvStore {
  const view = sim.nodes.get(node);
  if (!view) throw new RangeError(`unknown node '${node}'`);
  const incarnation = view.incarnation;
  const clock = view.clock;
  const { rng, timeoutMs } = options;
  const [minMs, maxMs] = options.latencyMs ?? sim.network.latencyMs;
  const alive = (): boolean => view.incarnation === incarnation && view.status !== 'crashed';
  const lost = (from: string, to: string): boolean => sim.network.isCut(from, to) || rng.next() < sim.network.faults().drop;
  const latency = (): number => minMs + rng.int(maxMs - minMs + 1) + sim.network.faults().delayMs;

  const call = <T>(label: string, fn: () => Promise<T>, applied?: (v: T, atMs: number) => void): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clock.clearTimeout(timer);
        f();
      };
      const timer = clock.setTimeout(
        () => settle(() => reject(new StoreUnavailableError(`sim:${STORE_NODE}`, `${label}: no answer within ${timeoutMs} ms`))),
        timeoutMs,
      );
      if (lost(node, STORE_NODE)) return; // the timeout answers
      sim.scheduler.at(sim.now() + latency(), 'deliver', STORE_NODE, `${node}>${STORE_NODE} kv.${label}`, () => {
        fn().then(
          (v) => {
            applied?.(v, sim.now());
            return { ok: true as const, v };
          },
          (e: unknown) => ({ ok: false as const, e }),
        ).then((r) => {
          if (lost(STORE_NODE, node)) return;
          sim.scheduler.at(sim.now() + latency(), 'deliver', node, `${STORE_NODE}>${node} kv.${label}`, () => {
            if (!alive()) return;
            settle(() => (r.ok ? resolve(r.v) : reject(r.e as Error)));
          });
        });
      });
    });

  const note = options.onApplied;
  return {
    kind: `sim-link:${store.kind}`,
    get: (key) => call('get', () => store.get(key)),
    create: (key, value, opts) => call('create', () => store.create(key, value, opts), (revision, atMs) => note?.({ op: 'create', key, revision, atMs })),
    update: (key, value, rev) => call('update', () => store.update(key, value, rev), (revision, atMs) => note?.({ op: 'update', key, revision, atMs })),
    put: (key, value) => call('put', () => store.put(key, value), (revision, atMs) => note?.({ op: 'put', key, revision, atMs })),
    delete: (key, opts) => call('delete', () => store.delete(key, opts), (_, atMs) => note?.({ op: 'delete', key, atMs })),
    keys: (pattern) => call('keys', () => store.keys(pattern)),
    close: async () => undefined,
    watch: (pattern, onEntry, opts) => {
      let inner: KvWatch | undefined;
      const deliver = (entry: KvEntry): void => {
        if (!alive()) {
          inner?.stop();
          return;
        }
        if (lost(STORE_NODE, node)) return;
        sim.scheduler.at(sim.now() + latency(), 'deliver', node, `${STORE_NODE}>${node} kv.watch ${entry.key}`, () => {
          if (alive()) onEntry(entry);
        });
      };
      return call('watch', async () => {
        inner = await store.watch(pattern, deliver, opts);
        return inner;
      });
    },
  };
}

/** Options of {@link runElectionScenario}. */
export interface ElectionScenarioOptions {
  seed: number;
  /** Simulated time with faults. @default 4_000 */
  durationMs?: number;
  /** Fault kinds to draw from (on the candidates and the candidate–store links). @default partition, partitionOneWay, isolate, crash, pause, drop, delay */
  faults?: readonly FaultKind[];
  /** Give each candidate a constant clock offset (up to ±5 s) from the start. @default true */
  skew?: boolean;
  ttlMs?: number;
  renewIntervalMs?: number;
  safetyMarginMs?: number;
  /** Store call timeout. @default 100 */
  storeTimeoutMs?: number;
}

export interface ElectionScenarioResult {
  readonly seed: number;
  /** Every leadership, in the order it began. */
  readonly elections: ReadonlyArray<{ candidate: string; epoch: number; atMs: number }>;
  /** Acts as leader (each checked against the store's lease). */
  readonly acts: number;
  /** Time from the end of the last fault to a leader. */
  readonly recoveredInMs: number;
  /** Allowed for `recoveredInMs`. */
  readonly recoveryBoundMs: number;
  readonly schedule: readonly FaultEvent[];
  /** How to run this seed again. */
  readonly replay: string;
}

export const CANDIDATES = ['a', 'b', 'c'] as const;
const GROUP = 'jobs';
const KEY = `election.${GROUP}`;
const ACT_EVERY_MS = 15;
const DEFAULT_FAULTS: readonly FaultKind[] = ['partition', 'partitionOneWay', 'isolate', 'crash', 'pause', 'drop', 'delay'];

/**
 * Run one seed. Rejects with a `SimulationFailure` (which names the seed) when an invariant breaks
 * or liveness does not return in time.
 */
export async function runElectionScenario(options: ElectionScenarioOptions): Promise<ElectionScenarioResult> {
  const { seed } = options;
  const durationMs = options.durationMs ?? 4_000;
  const ttlMs = options.ttlMs ?? 600;
  const renewIntervalMs = options.renewIntervalMs ?? 150;
  const safetyMarginMs = options.safetyMarginMs ?? 60;
  const storeTimeoutMs = options.storeTimeoutMs ?? 100;
  const sim = createSimulation({ seed, nodes: [...CANDIDATES, STORE_NODE], scenario: 'leader-election', latencyMs: [1, 10], trace: false });
  const store = createMemoryKvStore({ clock: sim.clock });
  const rng = sim.rng;
  const replay = sim.replayCommand();

  /** Ground truth: the lease as the store holds it. */
  let truth: { epoch: number; lastWriteMs: number } | undefined;
  const onApplied = (c: StoreCall): void => {
    if (c.key !== KEY) return;
    if (c.op === 'create') truth = { epoch: c.revision, lastWriteMs: c.atMs };
    else if (c.op === 'update' && truth) truth = { epoch: truth.epoch, lastWriteMs: c.atMs };
    else if (c.op === 'delete') truth = undefined;
  };
  const leaseHeld = (epoch: number, atMs: number): boolean =>
    truth !== undefined && truth.epoch === epoch && atMs < truth.lastWriteMs + ttlMs;

  const elections: Array<{ candidate: string; epoch: number; atMs: number }> = [];
  const campaigns = new Map<string, LeaseCampaign>();
  let highestAccepted = 0;
  let acts = 0;
  const violations: string[] = [];
  sim.addInvariant('one leadership per epoch, epochs increasing', () => violations[0]);

  const start = (name: string): void => {
    const node = sim.nodes.get(name)!;
    const clock = node.clock;
    const link = linkStore(sim, store, name, { timeoutMs: storeTimeoutMs, rng: rng.fork(), onApplied });
    const election = leaseElection({ store: link, candidate: `${name}#${node.incarnation}`, clock, ttlMs, renewIntervalMs, safetyMarginMs });
    const campaign = election.campaign(GROUP, {
      onElected: ({ epoch, candidate }) => {
        const same = elections.find((e) => e.epoch === epoch);
        if (same) violations.push(`two leaderships with epoch ${epoch}: ${same.candidate} and ${candidate}`);
        const last = elections.at(-1);
        if (last && last.epoch >= epoch) violations.push(`epoch went backwards: ${candidate} elected with ${epoch} after ${last.candidate} with ${last.epoch}`);
        elections.push({ candidate, epoch, atMs: sim.now() });
      },
      onError: (err) => violations.push(`a handler threw: ${err.message}`),
    });
    campaigns.set(name, campaign);
    const work = (): void => {
      const l = campaign.leadership();
      if (l) {
        acts++;
        if (!leaseHeld(l.epoch, sim.now())) {
          sim.fail(`${l.candidate} acted as leader with epoch ${l.epoch} while the store holds ${truth ? `epoch ${truth.epoch} (last written at ${truth.lastWriteMs} ms)` : 'no lease'}`);
        }
        if (l.epoch < highestAccepted) sim.fail(`the fenced resource rejected ${l.candidate}: epoch ${l.epoch} < ${highestAccepted}`);
        highestAccepted = l.epoch;
      }
      clock.setTimeout(work, ACT_EVERY_MS);
    };
    clock.setTimeout(work, ACT_EVERY_MS);
  };

  if (options.skew ?? true) for (const n of CANDIDATES) sim.nemesis.skew(n, rng.int(10_001) - 5_000);
  for (const n of CANDIDATES) start(n);

  // Faults on candidates only (the store node is never crashed, paused or skewed — it stands for
  // a store that stays up; it can be cut off by partitions).
  const schedule = randomSchedule(createRng(seed ^ 0x5eed), {
    nodes: [...CANDIDATES, STORE_NODE], durationMs, startMs: 0, faults: options.faults ?? DEFAULT_FAULTS, gapMs: [100, 500], faultMs: [100, 1_500],
  });
  const planned: FaultEvent[] = [];
  for (let i = 0; i < schedule.length; i += 2) {
    const [begin, end] = [schedule[i]!, schedule[i + 1]!];
    if ((begin.op === 'crash' || begin.op === 'pause') && begin.args[0] === STORE_NODE) continue;
    planned.push(begin, end);
  }
  // A restart is a new incarnation: start its candidate again.
  const restarts = planned.filter((e) => e.op === 'restart');
  sim.nemesis.plan(planned.filter((e) => e.op !== 'restart'));
  for (const r of restarts) {
    sim.scheduler.at(r.atMs, 'nemesis', undefined, `restart(${JSON.stringify(r.args[0])}) + campaign`, () => {
      sim.nemesis.restart(r.args[0] as string);
      start(r.args[0] as string);
    });
  }

  try {
    await sim.run({ untilMs: durationMs });
    const quietAt = sim.now();
    const recoveryBoundMs = ttlMs + renewIntervalMs + storeTimeoutMs + safetyMarginMs;
    const leading = (): boolean => CANDIDATES.some((n) => sim.nodes.get(n)!.status === 'up' && campaigns.get(n)!.isLeader());
    await sim.run({ until: leading, untilMs: quietAt + recoveryBoundMs });
    if (!leading()) sim.fail(`no leader ${recoveryBoundMs} ms after the last fault ended`);
    const recoveredInMs = sim.now() - quietAt;
    await sim.run({ forMs: 2 * ttlMs }); // the new leadership holds, and is checked, for a while
    return { seed, elections, acts, recoveredInMs, recoveryBoundMs, schedule: planned, replay };
  } finally {
    await sim.shutdown();
  }
}

/**
 * `troupe sim leader-election --seed N`: the run test/sim/leader-election.test.ts makes of seed N
 * (4 s of faults). Rejects with a `SimulationFailure` when an invariant breaks.
 */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const r = await runElectionScenario({ seed: options.seed, ...(options.durationMs !== undefined ? { durationMs: options.durationMs } : {}) });
  const ok = r.recoveredInMs <= r.recoveryBoundMs;
  return {
    seed: r.seed,
    ok,
    summary: `${r.elections.length} leaderships, ${r.acts} leader acts checked against the lease, ${r.schedule.length} faults, a leader ${r.recoveredInMs} ms after the last (bound ${r.recoveryBoundMs} ms)`,
    ...(ok ? {} : { failure: `no leader within ${r.recoveryBoundMs} ms of the last fault (${r.recoveredInMs} ms)` }),
    replay: r.replay,
  };
}
