/**
 * Deterministic simulation: N troupe nodes on one simulated network, driven by one scheduler on
 * simulated time and by randomness derived from one seed, with a nemesis to inflict faults and
 * invariants checked after every step. No wall clock anywhere: the same seed gives the same run.
 *
 * How a run advances. The scheduler (`scheduler.ts`) holds every future event — message
 * deliveries, every node's timers (XState `after` delays, ask timeouts, heartbeats, restart
 * backoff) and planned faults. A step takes the earliest event (by time, then by the order events
 * were scheduled), moves simulated time to it and runs it; then it lets the actors react. Actors
 * run on microtasks (and, after a large batch, on a `setImmediate` yield), so the simulation
 * **drains** after every event: it yields to the event loop with `setImmediate` — which first runs
 * every queued microtask — again and again until a yield passes in which nothing was scheduled,
 * cancelled or published (at least twice, so that an actor dispatcher's own `setImmediate` yield
 * is followed). No time passes while draining. Only then are invariants checked and the next event
 * taken. Because every source of time and randomness is the scheduler and the seeded Rng, and the
 * event loop runs microtasks and `setImmediate` callbacks in a fixed order, a seed replays the same
 * sequence of events (compare `sim.trace()` of two runs). Work that is invisible to the scheduler
 * and the network — an actor telling a local actor forever without ever touching a timer or the
 * network — is not waited for beyond those two yields.
 *
 * Randomness: `sim.rng` is the scenario's (seeded with `seed`); the network, the nemesis, storage
 * crashes and each node incarnation's system get their own generators derived from the seed and
 * a label, so creating a system or drawing from `sim.rng` does not shift network latencies.
 */
import { createRng, type Clock, type Rng } from '../clock.ts';
import { silentLogger } from '../log.ts';
import type { SystemOptions } from '../options.ts';
import { createSystem, type ActorSystem } from '../system.ts';
import { validateName } from '../transport/subjects.ts';
import type { Transport } from '../transport/transport.ts';
import { replayCommand, SimulationFailure } from './failure.ts';
import { createHistory, type HistoryRecorder } from './history.ts';
import { createNemesis, type FaultEvent, type Nemesis } from './nemesis.ts';
import { createSimNetwork, DEFAULT_LATENCY_MS, type SimNetwork } from './network.ts';
import { createNodeClock, createScheduler, type NodeClock, type SimScheduler, type TraceEntry } from './scheduler.ts';
import { createSimStorage, type SimStorage, type UnsyncedOnCrash } from './storage.ts';

/** Default cluster name of a simulation's systems. */
export const DEFAULT_SIM_CLUSTER = 'sim';
/** Default scenario name (it appears in the replay command). */
export const DEFAULT_SIM_SCENARIO = 'adhoc';
/** Default bound on the steps of a `run` that has no other bound (or whose `until` never holds). */
export const DEFAULT_SIM_MAX_STEPS = 1_000_000;
/** Event-loop yields a drain always makes (see the module docs). */
const MIN_DRAIN_TURNS = 2;
/** A drain that sees activity for this many yields in a row without time passing is a livelock. */
const MAX_DRAIN_TURNS = 100_000;

/** Options of `system(name, options)`: everything but what the simulation provides itself. */
export type SimSystemOptions = Omit<SystemOptions, 'node' | 'cluster' | 'transport' | 'clock'>;

/** Options of {@link createSimulation}. */
export interface SimulationOptions {
  /** The one source of randomness; the replay command carries it. A safe integer. */
  seed: number;
  /** Node names, or a count (`3` → `n1`, `n2`, `n3`). */
  nodes: readonly string[] | number;
  /** One-way latency of a link, `[minMs, maxMs]`, integers. @default [1, 10] */
  latencyMs?: readonly [number, number];
  /** Cluster name of every system. @default 'sim' */
  cluster?: string;
  /** Name of the scenario, for the replay command `npx tsx framework/cli.ts sim <scenario> --seed N`. @default 'adhoc' */
  scenario?: string;
  /**
   * What a crash does to unsynced storage writes: `'lose'` them all, or keep a seeded
   * `'random-prefix'` of them (see `storage.ts`).
   * @default 'lose'
   */
  unsyncedOnCrash?: UnsyncedOnCrash;
  /** Options every system gets (before the per-call options of `system()`). */
  systemOptions?: SimSystemOptions;
  /**
   * Called when a crashed node restarts, after its fresh (empty) system — if it had one — was
   * created: respawn the node's actors here.
   */
  onRestart?: (node: SimNode, sim: Simulation) => void;
  /** Bound on the steps of one `run` (a run that hits it fails). @default 1_000_000 */
  maxSteps?: number;
  /** Record every event in `trace()`. @default true */
  trace?: boolean;
  /** Largest payload the network accepts, in bytes. @default 1048576 */
  maxPayloadBytes?: number;
}

/** Whether a node's process is running, frozen, or dead. */
export type SimNodeStatus = 'up' | 'paused' | 'crashed';

/** One simulated node (a live view: fields change as faults happen). */
export interface SimNode {
  readonly name: string;
  /** 1 at the start; +1 on every restart. */
  readonly incarnation: number;
  readonly status: SimNodeStatus;
  /** This incarnation's connection to the simulated network (what its system uses). */
  readonly transport: Transport;
  /** This incarnation's clock: shared simulated time + skew; timers on the shared scheduler. */
  readonly clock: Clock;
  /** This incarnation's handle on the node's disk. */
  readonly storage: SimStorage;
  /** How far the node's clock is off, in ms. */
  readonly skewMs: number;
  /** The node's actor system, once `sim.system(name)` created it (undefined after a crash). */
  readonly system: ActorSystem | undefined;
}

/** Options of {@link Simulation.run}; it stops at the first bound reached. */
export interface RunOptions {
  /** Run every event due up to this simulated time (absolute ms), then move time to it. */
  untilMs?: number;
  /** Same as `untilMs: now + forMs`. */
  forMs?: number;
  /** Run at most this many events. */
  steps?: number;
  /** Stop as soon as this holds (checked before the first step and after each). */
  until?: () => boolean;
  /** Fail when this many events ran without another bound being reached. @default the simulation's maxSteps */
  maxSteps?: number;
}

/** Why and where a run stopped. */
export interface RunResult {
  readonly reason: 'until' | 'time' | 'steps' | 'idle';
  /** Events run by this call. */
  readonly steps: number;
  readonly nowMs: number;
}

/** An invariant: return a description of the violation (or throw) when it does not hold. */
export type Invariant = () => void | string | undefined;

/** A running simulation. */
export interface Simulation extends AsyncDisposable {
  readonly seed: number;
  readonly scenario: string;
  readonly cluster: string;
  /** The shared simulated time, without any node's skew. */
  readonly clock: Clock;
  /** The scenario's own randomness (seeded with `seed`). */
  readonly rng: Rng;
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly nemesis: Nemesis;
  readonly nodes: ReadonlyMap<string, SimNode>;
  /** Faults applied so far, in order, as data. */
  readonly schedule: readonly FaultEvent[];
  /** A client-operation history on the shared simulated time, for linearizability checks. */
  readonly history: HistoryRecorder;
  /** Events run so far (all runs). */
  readonly steps: number;
  /** Current simulated time, in ms. */
  now(): number;
  /**
   * The node's actor system: created on first call (the node's transport, clock, a seeded Rng, a
   * silent logger, then `systemOptions`, then `options`), returned as is afterwards. The node must
   * not be crashed.
   */
  system(name: string, options?: SimSystemOptions): ActorSystem;
  /** The node's storage handle (the current incarnation's). */
  storage(name: string): SimStorage;
  /** Run the next event and drain; false when nothing can run. Invariants are checked after it. */
  step(): Promise<boolean>;
  /**
   * Run events until a bound is reached (see {@link RunOptions}). Rejects with a
   * `SimulationFailure` when an invariant breaks, an event throws, or `maxSteps` is hit.
   */
  run(options?: RunOptions): Promise<RunResult>;
  /** Let the actors react to what the caller just did, without moving time. */
  settle(): Promise<void>;
  /** Check `fn` after every step from now on. */
  addInvariant(name: string, fn: Invariant): void;
  /** Check every invariant now. */
  check(): void;
  /** Throw a `SimulationFailure` unless `condition` holds. */
  assert(condition: unknown, message: string): asserts condition;
  /** Throw a `SimulationFailure` with `reason`. */
  fail(reason: string, cause?: unknown): never;
  /** Every event run so far (and messages lost), in order. */
  trace(): readonly TraceEntry[];
  /** `npx tsx framework/cli.ts sim <scenario> --seed <seed>` */
  replayCommand(): string;
  /** Shut down every system (gracefully) and close every connection. */
  shutdown(): Promise<void>;
}

/**
 * Create a simulation.
 * @example
 * const sim = createSimulation({ seed: 42, nodes: ['n1', 'n2'], scenario: 'ping' });
 * const ponger = sim.system('n2').spawn(Ponger, { name: 'ponger' });
 * const reply = sim.system('n1').ask(ponger, { type: 'Ping', n: 1 }, { timeoutMs: 1_000 });
 * sim.nemesis.partition([['n1'], ['n2']]);
 * await sim.run({ untilMs: 2_000 });            // the ask times out on simulated time
 */
export function createSimulation(options: SimulationOptions): Simulation {
  return new SimulationImpl(options);
}

// ---------------------------------------------------------------------------------------------

/** A seed for one component, from the run's seed and a label (FNV-1a, then splitmix-style mixing). */
function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  const text = `${seed}/${label}`;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const SCENARIO = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

/** One event-loop turn: every queued microtask runs first, then pending `setImmediate` callbacks. */
const yieldTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** A node's lasting record; `clock` and `transport` are replaced on every (re)start. */
class NodeState {
  incarnation = 0;
  status: SimNodeStatus = 'up';
  clock!: NodeClock;
  transport!: Transport;
  skewMs = 0;
  system: ActorSystem | undefined = undefined;
  /** Options its system was created with: a restarted node gets a fresh system with the same. */
  systemOptions: SimSystemOptions | undefined = undefined;
  constructor(readonly name: string, public storage: SimStorage) {}
}

class NodeView implements SimNode {
  constructor(private readonly s: NodeState) {}
  get name(): string { return this.s.name; }
  get incarnation(): number { return this.s.incarnation; }
  get status(): SimNodeStatus { return this.s.status; }
  get transport(): Transport { return this.s.transport; }
  get clock(): Clock { return this.s.clock; }
  get storage(): SimStorage { return this.s.storage; }
  get skewMs(): number { return this.s.skewMs; }
  get system(): ActorSystem | undefined { return this.s.system; }
}

class SimulationImpl implements Simulation {
  readonly seed: number;
  readonly scenario: string;
  readonly cluster: string;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly nemesis: Nemesis;
  readonly nodes: ReadonlyMap<string, SimNode>;
  readonly history: HistoryRecorder;
  private readonly states = new Map<string, NodeState>();
  private readonly names: readonly string[];
  private readonly faults: FaultEvent[] = [];
  private readonly invariants: Array<{ name: string; fn: Invariant }> = [];
  private readonly storageRng: Rng;
  private readonly unsyncedOnCrash: UnsyncedOnCrash;
  private readonly defaults: SimSystemOptions;
  private readonly onRestart: SimulationOptions['onRestart'];
  private readonly maxSteps: number;
  private stepCount = 0;

  constructor(options: SimulationOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('createSimulation needs options { seed, nodes }');
    const { seed } = options;
    if (!Number.isSafeInteger(seed)) throw new RangeError(`simulation option seed must be a safe integer, got ${String(seed)}`);
    this.seed = seed;
    this.scenario = options.scenario ?? DEFAULT_SIM_SCENARIO;
    if (typeof this.scenario !== 'string' || !SCENARIO.test(this.scenario)) {
      throw new RangeError(`simulation option scenario must be a word (letters, digits, - _ . :), got ${JSON.stringify(options.scenario)}`);
    }
    this.cluster = validateName(options.cluster ?? DEFAULT_SIM_CLUSTER, 'simulation option cluster');
    this.names = resolveNodeNames(options.nodes);
    this.unsyncedOnCrash = options.unsyncedOnCrash ?? 'lose';
    if (this.unsyncedOnCrash !== 'lose' && this.unsyncedOnCrash !== 'random-prefix') {
      throw new RangeError(`simulation option unsyncedOnCrash must be 'lose' or 'random-prefix', got ${String(options.unsyncedOnCrash)}`);
    }
    this.maxSteps = options.maxSteps ?? DEFAULT_SIM_MAX_STEPS;
    if (!Number.isSafeInteger(this.maxSteps) || this.maxSteps < 1) throw new RangeError(`simulation option maxSteps must be a positive integer, got ${String(options.maxSteps)}`);
    this.defaults = options.systemOptions ?? {};
    this.onRestart = options.onRestart;

    this.rng = createRng(seed);
    this.storageRng = createRng(deriveSeed(seed, 'storage'));
    this.scheduler = createScheduler({ trace: options.trace ?? true });
    const scheduler = this.scheduler;
    this.clock = {
      now: () => scheduler.now(),
      setTimeout: (fn, delayMs) => scheduler.at(scheduler.now() + (Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0), 'timer', undefined, '', fn),
      clearTimeout: (id) => scheduler.cancel(id),
    };
    this.history = createHistory({ clock: this.clock });
    this.network = createSimNetwork({
      scheduler,
      rng: createRng(deriveSeed(seed, 'network')),
      latencyMs: options.latencyMs ?? DEFAULT_LATENCY_MS,
      ...(options.maxPayloadBytes !== undefined ? { maxPayloadBytes: options.maxPayloadBytes } : {}),
    });
    const views = new Map<string, SimNode>();
    for (const name of this.names) {
      const state = new NodeState(name, createSimStorage());
      this.incarnate(state);
      this.states.set(name, state);
      views.set(name, new NodeView(state));
    }
    this.nodes = views;
    this.nemesis = createNemesis({
      scheduler,
      network: this.network,
      rng: createRng(deriveSeed(seed, 'nemesis')),
      nodeNames: () => this.names,
      crash: (n) => this.crashNode(n),
      restart: (n) => this.restartNode(n),
      pause: (n) => this.pauseNode(n),
      resume: (n) => this.resumeNode(n),
      isPaused: (n) => this.stateOf(n).status === 'paused',
      skew: (n, ms) => {
        this.stateOf(n).skewMs = ms;
      },
      record: (ev) => {
        this.faults.push(ev);
      },
    });
  }

  get schedule(): readonly FaultEvent[] {
    return this.faults;
  }

  get steps(): number {
    return this.stepCount;
  }

  now(): number {
    return this.scheduler.now();
  }

  // --- nodes ----------------------------------------------------------------------------------

  system(name: string, options: SimSystemOptions = {}): ActorSystem {
    const s = this.stateOf(name);
    if (s.system) return s.system;
    if (s.status === 'crashed') throw new RangeError(`node '${name}' is crashed; restart it first (sim.nemesis.restart)`);
    s.systemOptions = options;
    s.system = this.createNodeSystem(s, options);
    return s.system;
  }

  storage(name: string): SimStorage {
    return this.stateOf(name).storage;
  }

  private createNodeSystem(s: NodeState, options: SimSystemOptions): ActorSystem {
    return createSystem({
      rng: createRng(deriveSeed(this.seed, `system/${s.name}/${s.incarnation}`)),
      logger: silentLogger(),
      ...this.defaults,
      ...options,
      cluster: this.cluster,
      node: s.name,
      transport: s.transport,
      clock: s.clock,
    });
  }

  /** Start the node's next incarnation: a fresh clock and connection (its disk and skew carry over). */
  private incarnate(s: NodeState): void {
    s.incarnation++;
    s.status = 'up';
    s.clock = createNodeClock(this.scheduler, s.name, () => s.skewMs);
    s.transport = this.network.connect(s.name, { clock: s.clock });
  }

  private stateOf(name: string): NodeState {
    const s = this.states.get(name);
    if (!s) throw new RangeError(`unknown node '${String(name)}' (nodes: ${this.names.join(', ')})`);
    return s;
  }

  private crashNode(name: string): void {
    const s = this.stateOf(name);
    if (s.status === 'crashed') return;
    s.status = 'crashed';
    // Order matters: first make the process unable to affect the world (no timers, no network,
    // no disk), then let its system release its actors — whatever it still does goes nowhere.
    this.scheduler.dropNode(name);
    s.clock.kill();
    this.network.crash(name);
    s.storage = s.storage.crash({ unsynced: this.unsyncedOnCrash, rng: this.storageRng }).storage;
    const dead = s.system;
    s.system = undefined;
    if (dead) void dead.shutdown().catch(() => undefined);
  }

  private restartNode(name: string): void {
    const s = this.stateOf(name);
    if (s.status !== 'crashed') throw new RangeError(`node '${name}' is ${s.status}; only a crashed node can restart`);
    this.incarnate(s);
    if (s.systemOptions !== undefined) s.system = this.createNodeSystem(s, s.systemOptions);
    this.onRestart?.(this.nodes.get(name)!, this);
  }

  private pauseNode(name: string): void {
    const s = this.stateOf(name);
    if (s.status === 'crashed') throw new RangeError(`node '${name}' is crashed; it cannot be paused`);
    s.status = 'paused';
    this.scheduler.pause(name);
  }

  private resumeNode(name: string): void {
    const s = this.stateOf(name);
    if (s.status !== 'paused') return;
    s.status = 'up';
    this.scheduler.resume(name);
  }

  // --- running --------------------------------------------------------------------------------

  async step(): Promise<boolean> {
    await this.drain();
    return this.stepOnce();
  }

  async run(options: RunOptions = {}): Promise<RunResult> {
    const { until, steps } = options;
    if (options.untilMs !== undefined && options.forMs !== undefined) throw new RangeError('run takes untilMs or forMs, not both');
    const untilMs = options.forMs !== undefined ? this.now() + options.forMs : options.untilMs;
    if (untilMs !== undefined && !Number.isFinite(untilMs)) throw new RangeError(`run: untilMs must be finite, got ${String(untilMs)}`);
    if (steps !== undefined && !(Number.isInteger(steps) && steps >= 0)) throw new RangeError(`run: steps must be an integer ≥ 0, got ${String(steps)}`);
    const maxSteps = options.maxSteps ?? this.maxSteps;
    await this.drain();
    let ran = 0;
    const result = (reason: RunResult['reason']): RunResult => ({ reason, steps: ran, nowMs: this.now() });
    for (;;) {
      if (until?.()) return result('until');
      if (steps !== undefined && ran >= steps) return result('steps');
      const next = this.scheduler.peekTime();
      if (untilMs !== undefined && (next === undefined || next > untilMs)) {
        if (untilMs > this.now()) this.scheduler.advanceTo(untilMs);
        return result('time');
      }
      if (next === undefined) return result('idle');
      if (ran >= maxSteps) {
        this.fail(`run did not reach its bound within ${maxSteps} steps${until ? ' (its until() never held)' : ''}`);
      }
      await this.stepOnce();
      ran++;
    }
  }

  settle(): Promise<void> {
    return this.drain();
  }

  private async stepOnce(): Promise<boolean> {
    let entry: TraceEntry | undefined;
    try {
      entry = this.scheduler.runNext();
    } catch (err) {
      this.fail(`an event threw: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    if (entry === undefined) return false;
    this.stepCount++;
    await this.drain();
    this.check();
    return true;
  }

  /** Let microtasks and `setImmediate` yields run until the actors go quiet (see the module docs). */
  private async drain(): Promise<void> {
    let last = this.activity();
    for (let turn = 1; ; turn++) {
      await yieldTurn();
      const now = this.activity();
      if (now === last && turn >= MIN_DRAIN_TURNS) return;
      last = now;
      if (turn >= MAX_DRAIN_TURNS) this.fail(`the actors never went quiet: ${MAX_DRAIN_TURNS} event-loop turns of activity without time passing (a livelock?)`);
    }
  }

  private activity(): number {
    return this.scheduler.activity() + this.network.stats().published;
  }

  // --- invariants and failures ----------------------------------------------------------------

  addInvariant(name: string, fn: Invariant): void {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('an invariant needs a name');
    if (typeof fn !== 'function') throw new TypeError(`invariant '${name}' must be a function`);
    this.invariants.push({ name, fn });
  }

  check(): void {
    for (const { name, fn } of this.invariants) {
      let violation: string | undefined;
      let cause: unknown;
      try {
        const r = fn();
        if (typeof r === 'string' && r.length > 0) violation = r;
      } catch (err) {
        cause = err;
        violation = err instanceof Error ? err.message : String(err);
      }
      if (violation !== undefined) this.fail(`invariant '${name}' violated: ${violation}`, cause);
    }
  }

  assert(condition: unknown, message: string): asserts condition {
    if (!condition) this.fail(`assertion failed: ${message}`);
  }

  fail(reason: string, cause?: unknown): never {
    throw new SimulationFailure(
      { scenario: this.scenario, seed: this.seed, atMs: this.now(), step: this.stepCount, reason, schedule: [...this.faults] },
      cause === undefined ? undefined : { cause },
    );
  }

  trace(): readonly TraceEntry[] {
    return this.scheduler.trace();
  }

  replayCommand(): string {
    return replayCommand(this.scenario, this.seed);
  }

  async shutdown(): Promise<void> {
    const systems: Array<Promise<void>> = [];
    for (const s of this.states.values()) {
      if (s.system) systems.push(s.system.shutdown());
      else if (s.status !== 'crashed') systems.push(s.transport.close());
    }
    await Promise.all(systems);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

function resolveNodeNames(nodes: SimulationOptions['nodes']): readonly string[] {
  if (typeof nodes === 'number') {
    if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`simulation option nodes must be a positive integer or a list of names, got ${String(nodes)}`);
    return Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  }
  if (!Array.isArray(nodes) || nodes.length === 0) throw new RangeError('simulation option nodes must be a positive integer or a non-empty list of names');
  const names = nodes.map((n: string) => validateName(n, 'simulation node name'));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new RangeError(`simulation option nodes names '${dup}' twice`);
  return Object.freeze([...names]);
}
