/**
 * The lock under a nemesis, in the deterministic simulator: five client nodes take one lock over
 * and over and append to a fenced list while nodes are paused, crashed and cut off. The store is
 * the memory store on a `kv` node, reached over the simulated network (`remote-store.ts`), so
 * every fault reaches the lock's store calls too.
 *
 * What is checked:
 * - the acquire/release history, with the mutex + fencing-token model of the linearizability
 *   checker (a lease that ended without a release the client saw is an `info` release from the
 *   start of its last successful write, the earliest moment it may have lapsed);
 * - after every step: at most one client holds a lease it believes valid (`now < expiresAtMs`);
 * - the fenced list: every acknowledged append is there once, tokens strictly increase.
 */
import { createRng, type Rng } from '../../framework/clock.ts';
import { isFencingTokenRejectedError } from '../../framework/errors.ts';
import { checkLinearizable, type CheckResult } from '../../framework/sim/linearizability.ts';
import { mutexModel, type MutexState } from '../../framework/sim/models.ts';
import { OpType, type Operation } from '../../framework/sim/history.ts';
import { randomSchedule, type FaultEvent } from '../../framework/sim/nemesis.ts';
import { linearizabilityRun, type ScenarioRun, type ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation, type SimNode } from '../../framework/sim/simulation.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import { FencedResource, fencedMessages, fencedWrite, readFenced } from './fenced-resource.ts';
import { createLock, type Lease } from './lock.ts';
import { remoteKvStore, serveKvStore } from './remote-store.ts';

export interface LockScenarioOptions {
  seed: number;
  /** How long clients work (and faults happen), simulated ms. @default 8000 */
  durationMs?: number;
  /** Client nodes. @default 5 */
  clients?: number;
  /** Lease TTL. @default 1000 */
  ttlMs?: number;
  /** Told what each client does (grants, appends, releases), with the simulated time. */
  log?: (line: string) => void;
}

export interface LockScenarioResult {
  readonly seed: number;
  readonly operations: readonly Operation[];
  readonly check: CheckResult<MutexState>;
  /** Acquires that succeeded, in all and per client node. */
  readonly grants: number;
  readonly grantsByClient: Readonly<Record<string, number>>;
  /** Appends acknowledged, and refused for a stale token. */
  readonly appendsAcked: number;
  readonly appendsRejected: number;
  /** Violations of the fenced-list and single-valid-holder checks (empty when all held). */
  readonly violations: readonly string[];
  readonly schedule: readonly FaultEvent[];
  readonly replay: string;
}

const LOCK = 'ledger';

interface ClientState {
  readonly node: string;
  readonly incarnation: number;
  readonly process: string;
  /** The operation in flight, recorded as `info` if the client dies before it completes. */
  pending: { f: 'acquire' | 'release'; invoke: number; value: number | null } | undefined;
  lease: Lease | undefined;
  done: boolean;
}

/**
 * Run one seed.
 * @example
 * const r = await runLockScenario({ seed: 7 });
 * if (r.check.valid !== true || r.violations.length) console.error(r.replay);
 */
export async function runLockScenario(options: LockScenarioOptions): Promise<LockScenarioResult> {
  const { seed, log } = options;
  const durationMs = options.durationMs ?? 8_000;
  const ttlMs = options.ttlMs ?? 1_000;
  const clientNames = Array.from({ length: options.clients ?? 5 }, (_, i) => `c${i + 1}`);
  const ops: Operation[] = [];
  const violations: string[] = [];
  const states = new Map<string, ClientState>();
  const grantsByClient: Record<string, number> = {};
  const acked: string[] = [];
  let rejected = 0;
  let grants = 0;
  let started = false;
  const endMs = 500 + durationMs;

  const sim = createSimulation({
    seed,
    nodes: ['kv', 'res', ...clientNames],
    scenario: 'lock',
    latencyMs: [1, 5],
    onRestart: (node) => startClient(node),
  });
  const kvNode = sim.nodes.get('kv')!;
  const stopServing = serveKvStore(kvNode.transport, createMemoryKvStore({ clock: kvNode.clock }));
  const resource = sim.system('res').spawn(FencedResource, { name: 'ledger' });
  const rngs = new Map<string, Rng>(clientNames.map((n, i) => [n, createRng(seed * 1_000 + i)]));

  /** Record what a dead (or finished) incarnation left unfinished, as `info`. */
  const finish = (s: ClientState): void => {
    if (s.done) return;
    s.done = true;
    const now = sim.now();
    if (s.lease && s.lease.status !== 'released') {
      ops.push({ process: s.process, type: OpType.Info, f: 'release', key: LOCK, value: s.lease.token, invoke: s.lease.expiresAtMs - ttlMs, complete: Infinity, error: 'client ended holding the lease' });
    } else if (s.pending) {
      ops.push({ process: s.process, type: OpType.Info, f: s.pending.f, key: LOCK, value: s.pending.value, invoke: s.pending.invoke, complete: Infinity, error: `unfinished at ${now}` });
    }
  };

  function startClient(node: SimNode): void {
    const previous = states.get(node.name);
    if (previous) finish(previous);
    const s: ClientState = { node: node.name, incarnation: node.incarnation, process: `${node.name}#${node.incarnation}`, pending: undefined, lease: undefined, done: false };
    states.set(node.name, s);
    const system = sim.system(node.name, { messages: [fencedMessages] });
    const store = remoteKvStore(node.transport, { name: `${node.name}-${node.incarnation}`, clock: node.clock, timeoutMs: 200 });
    const lock = createLock(store, { clock: node.clock, owner: s.process, rng: rngs.get(node.name)!.fork(), ttlMs, retryDelayMs: 50 });
    const alive = (): boolean => !s.done && node.status !== 'crashed' && node.incarnation === s.incarnation;
    const loop = async (): Promise<void> => {
      for (let k = 0; sim.now() < endMs; k++) {
        const invoke = sim.now();
        s.pending = { f: 'acquire', invoke, value: null };
        let lease: Lease;
        try {
          lease = await lock.acquire(LOCK, { waitMs: 2 * ttlMs });
        } catch (err) {
          if (!alive()) return;
          // A timeout after a create with no answer may have left a lease that lapses on its own.
          ops.push({ process: s.process, type: OpType.Info, f: 'acquire', key: LOCK, value: null, invoke, complete: sim.now(), error: String(err) });
          s.pending = undefined;
          continue;
        }
        if (!alive()) return;
        ops.push({ process: s.process, type: OpType.Ok, f: 'acquire', key: LOCK, value: lease.token, invoke, complete: sim.now() });
        log?.(`${sim.now()} ${s.process} granted token ${lease.token}`);
        s.pending = undefined;
        s.lease = lease;
        grants++;
        grantsByClient[node.name] = (grantsByClient[node.name] ?? 0) + 1;
        // the work the lock protects: long enough that pauses and crashes hit holders
        const rng = rngs.get(node.name)!;
        await new Promise<void>((resolve) => node.clock.setTimeout(resolve, 50 + rng.int(200)));
        if (!alive()) return;
        const value = `${s.process}-${k}`;
        try {
          await fencedWrite(system, resource.address, lease.token, value, { timeoutMs: 300 });
          acked.push(value);
          log?.(`${sim.now()} ${s.process} appended ${value} under token ${lease.token}`);
        } catch (err) {
          if (isFencingTokenRejectedError(err)) rejected++;
          log?.(`${sim.now()} ${s.process} append under token ${lease.token} failed: ${String(err)}`);
        }
        if (!alive()) return;
        s.pending = { f: 'release', invoke: sim.now(), value: lease.token };
        try {
          await lease.release();
          if (!alive()) return;
          ops.push({ process: s.process, type: OpType.Ok, f: 'release', key: LOCK, value: lease.token, invoke: s.pending.invoke, complete: sim.now() });
        } catch (err) {
          if (!alive()) return;
          log?.(`${sim.now()} ${s.process} release of token ${lease.token} failed: ${String(err)}`);
          // Lost: it lapsed at some time after its last successful write began.
          ops.push({ process: s.process, type: OpType.Info, f: 'release', key: LOCK, value: lease.token, invoke: lease.expiresAtMs - ttlMs, complete: sim.now(), error: String(err) });
        }
        s.pending = undefined;
        s.lease = undefined;
      }
      s.done = true;
    };
    void loop();
  }

  sim.addInvariant('at most one client holds a lease it believes valid', () => {
    if (!started) return undefined;
    const now = sim.now();
    const valid = [...states.values()].filter((s) => !s.done && s.lease && (s.lease.status === 'held' || s.lease.status === 'renewing') && now < s.lease.expiresAtMs);
    return valid.length > 1 ? `${valid.map((s) => `${s.process} (token ${s.lease!.token}, valid until ${s.lease!.expiresAtMs})`).join(' and ')} at ${now}` : undefined;
  });

  const faultRng = createRng(seed ^ 0x5eed);
  sim.nemesis.plan([
    ...randomSchedule(faultRng.fork(), { nodes: clientNames, faults: ['pause', 'pause', 'crash'], durationMs, startMs: 500, gapMs: [100, 600], faultMs: [500, 3_000] }),
    ...randomSchedule(faultRng.fork(), { nodes: ['kv', 'res', ...clientNames], faults: ['partition', 'isolate'], durationMs, startMs: 500, gapMs: [300, 1_500], faultMs: [200, 1_500] }),
  ].sort((a, b) => a.atMs - b.atMs));

  started = true;
  for (const n of clientNames) startClient(sim.nodes.get(n)!);
  try {
    await sim.run({ until: () => [...states.values()].every((s) => s.done || sim.nodes.get(s.node)!.status !== 'up'), untilMs: endMs + 10 * ttlMs });
  } catch (err) {
    violations.push(err instanceof Error ? err.message : String(err));
  }
  for (const s of states.values()) finish(s);

  const reading = readFenced(sim.system('res'), resource.address, { timeoutMs: 1_000 });
  await sim.run({ forMs: 100 });
  const state = await reading;
  const seen = new Set<string>();
  for (const v of state.values) {
    if (seen.has(v)) violations.push(`append ${v} accepted twice`);
    seen.add(v);
  }
  for (const v of acked) if (!seen.has(v)) violations.push(`acknowledged append ${v} is missing`);
  for (let i = 1; i < state.tokens.length; i++) {
    if (state.tokens[i]! <= state.tokens[i - 1]!) violations.push(`token ${state.tokens[i]} accepted after ${state.tokens[i - 1]}`);
  }
  stopServing();
  const schedule = [...sim.schedule];
  await sim.shutdown();
  return {
    seed,
    operations: ops,
    check: checkLinearizable(ops, mutexModel(), { maxSteps: 5_000_000 }),
    grants,
    grantsByClient,
    appendsAcked: acked.length,
    appendsRejected: rejected,
    violations,
    schedule,
    replay: sim.replayCommand(),
  };
}

/** `troupe sim lock --seed N`: the run test/sim/lock.test.ts makes of seed N (8 s). */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const r = await runLockScenario({ seed: options.seed, ...(options.durationMs !== undefined ? { durationMs: options.durationMs } : {}) });
  const checked = linearizabilityRun(r.seed, r.check, `mutex + fencing model, ${r.operations.length} operations checked, ${r.grants} grants, ${r.appendsRejected} stale appends refused, ${r.schedule.length} faults`, r.replay);
  if (r.violations.length === 0) return checked;
  return { ...checked, ok: false, failure: [...r.violations.slice(0, 5), checked.failure ?? ''].join('\n').trim() };
}
