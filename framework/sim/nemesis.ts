/**
 * The nemesis: the faults a simulation can inflict, as named operations whose arguments are plain
 * data, so that a fault schedule can be generated from a seed, printed, recorded and replayed.
 *
 * Network faults (links are one-way; see `network.ts`):
 * - `partition(groups)` — cut every link between nodes of different groups (nodes named in no
 *   group form one more group together). Cuts add up; `heal()` lifts them all.
 * - `partitionOneWay(from, to)` — cut `from → to` only (each may be a node or a list of nodes).
 * - `majoritiesRing(order?)` — Jepsen's overlapping majorities: on a ring of the nodes (`order`, or
 *   a seeded shuffle), every node hears only from the majority of nodes around it, so every node
 *   sees a majority and no two see the same one.
 * - `isolate(node)` — cut the node off from every other node, both ways.
 * - `heal()` — restore every link (message faults stay).
 * - `drop(p)`, `duplicate(p)`, `delay(extraMs)`, `reorder(on)` — message faults on every link
 *   between two different nodes; `drop(0)`, `duplicate(0)`, `delay(0)`, `reorder(false)` end them.
 *
 * Process faults:
 * - `crash(node)` — the process dies: no goodbye messages, its subscriptions and timers vanish, its
 *   volatile state is gone and its storage keeps only what was synced.
 * - `restart(node)` — a crashed node starts again, empty, as a new incarnation.
 * - `pause(node, forMs?)` / `resume(node)` — the process freezes (GC pause, SIGSTOP): its timers
 *   and incoming messages are held and all arrive late when it resumes (after `forMs`, if given).
 * - `skew(node, ms)` — the node's clock reads `ms` off the shared time (0 puts it right).
 *
 * Every operation applied — by hand or from a schedule — is recorded with its time.
 */
import type { Rng } from '../clock.ts';
import type { SimNetwork } from './network.ts';
import type { SimScheduler } from './scheduler.ts';

/** The nemesis operations, with plain-data arguments (see the module docs). */
export interface NemesisOps {
  partition(groups: readonly (readonly string[])[]): void;
  partitionOneWay(from: string | readonly string[], to: string | readonly string[]): void;
  majoritiesRing(order?: readonly string[]): void;
  isolate(node: string): void;
  heal(): void;
  drop(probability: number): void;
  duplicate(probability: number): void;
  delay(extraMs: number): void;
  reorder(on: boolean): void;
  crash(node: string): void;
  restart(node: string): void;
  pause(node: string, forMs?: number): void;
  resume(node: string): void;
  skew(node: string, ms: number): void;
}

/** Name of a nemesis operation. */
export type NemesisOp = keyof NemesisOps;

/** A fault without its time: what {@link Nemesis.apply} takes. */
export type FaultCommand = {
  [K in NemesisOp]: { readonly op: K; readonly args: Parameters<NemesisOps[K]> };
}[NemesisOp];

/** One operation of a fault schedule: what to do, to whom, when (absolute simulated ms). */
export type FaultEvent = FaultCommand & { readonly atMs: number };

/** The kinds of fault episode {@link randomSchedule} can generate. */
export type FaultKind =
  | 'partition'
  | 'partitionOneWay'
  | 'majoritiesRing'
  | 'isolate'
  | 'drop'
  | 'duplicate'
  | 'delay'
  | 'reorder'
  | 'crash'
  | 'pause'
  | 'skew';

/** Every fault kind. */
export const FAULT_KINDS: readonly FaultKind[] = [
  'partition', 'partitionOneWay', 'majoritiesRing', 'isolate', 'drop', 'duplicate', 'delay', 'reorder', 'crash', 'pause', 'skew',
];

/** Options of {@link randomSchedule}. */
export interface RandomScheduleOptions {
  /** Every fault ends (is healed, restarted, resumed…) by `startMs + durationMs`. */
  durationMs: number;
  /** The kinds of fault to draw from. @default every kind ({@link FAULT_KINDS}) */
  faults?: readonly FaultKind[];
  /** When the schedule starts (absolute simulated ms). @default 0 (the nemesis method: now) */
  startMs?: number;
  /** Quiet time before each fault, `[min, max]` ms, uniform. @default [100, 1000] */
  gapMs?: readonly [number, number];
  /** How long each fault lasts, `[min, max]` ms, uniform. @default [200, 2000] */
  faultMs?: readonly [number, number];
}

/** What the nemesis needs from its simulation. */
export interface NemesisHost {
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  /** The nemesis's own randomness (majorities-ring order when none is given). */
  readonly rng: Rng;
  /** The simulation's node names, in a stable order. */
  nodeNames(): readonly string[];
  crash(node: string): void;
  restart(node: string): void;
  pause(node: string): void;
  resume(node: string): void;
  isPaused(node: string): boolean;
  skew(node: string, ms: number): void;
  /** Called for every operation applied, before it takes effect. */
  record(event: FaultEvent): void;
}

/** Fault injection for one simulation: the operations, plus schedules of them. */
export interface Nemesis extends NemesisOps {
  /** Apply one operation now (recorded like the direct calls). */
  apply(command: FaultCommand): void;
  /** Apply each event of `schedule` when the simulation reaches its `atMs` (not in the past). */
  plan(schedule: readonly FaultEvent[]): void;
  /**
   * Generate a random schedule for this simulation's nodes, starting now (see
   * {@link randomSchedule}), plan it, and return it.
   */
  randomSchedule(rng: Rng, options: RandomScheduleOptions): FaultEvent[];
}

/** Create the nemesis of a simulation. */
export function createNemesis(host: NemesisHost): Nemesis {
  return new NemesisImpl(host);
}

const cloneArgs = <T>(args: T): T => JSON.parse(JSON.stringify(args ?? [])) as T;

/** `op(args…)` as a short readable string. */
export function describeFault(command: FaultCommand): string {
  return `${command.op}(${(command.args as readonly unknown[]).map((a) => JSON.stringify(a)).join(', ')})`;
}

class NemesisImpl implements Nemesis {
  /** The pause each auto-resume belongs to, so a stale one does not end a later pause. */
  private readonly pauseSeq = new Map<string, number>();
  private nextPause = 1;

  constructor(private readonly host: NemesisHost) {}

  partition(groups: readonly (readonly string[])[]): void {
    if (!Array.isArray(groups) || !groups.every((g) => Array.isArray(g))) throw new TypeError('partition takes an array of node-name arrays');
    const seen = new Set<string>();
    for (const g of groups) {
      for (const n of g) {
        this.known(n);
        if (seen.has(n)) throw new RangeError(`partition: node '${n}' is in more than one group`);
        seen.add(n);
      }
    }
    const rest = this.host.nodeNames().filter((n) => !seen.has(n));
    const all = rest.length > 0 ? [...groups, rest] : groups;
    this.record('partition', [groups]);
    for (let i = 0; i < all.length; i++) {
      for (let j = 0; j < all.length; j++) {
        if (i === j) continue;
        for (const a of all[i]!) for (const b of all[j]!) this.host.network.cut(a, b);
      }
    }
  }

  partitionOneWay(from: string | readonly string[], to: string | readonly string[]): void {
    const froms = typeof from === 'string' ? [from] : [...from];
    const tos = typeof to === 'string' ? [to] : [...to];
    for (const n of [...froms, ...tos]) this.known(n);
    this.record('partitionOneWay', [from, to]);
    for (const a of froms) for (const b of tos) this.host.network.cut(a, b);
  }

  majoritiesRing(order?: readonly string[]): void {
    const nodes = this.host.nodeNames();
    let ring: string[];
    if (order === undefined) {
      ring = shuffle(this.host.rng, nodes);
    } else {
      ring = [...order];
      for (const n of ring) this.known(n);
      if (ring.length !== nodes.length || new Set(ring).size !== nodes.length) {
        throw new RangeError('majoritiesRing: order must name every node exactly once');
      }
    }
    this.record('majoritiesRing', [ring]);
    for (const [from, to] of majoritiesRingCuts(ring)) this.host.network.cut(from, to);
  }

  isolate(node: string): void {
    this.known(node);
    this.record('isolate', [node]);
    for (const other of this.host.nodeNames()) {
      if (other === node) continue;
      this.host.network.cut(node, other);
      this.host.network.cut(other, node);
    }
  }

  heal(): void {
    this.record('heal', []);
    this.host.network.heal();
  }

  drop(probability: number): void {
    this.host.network.setDrop(probability); // validates first; recorded only once it took
    this.record('drop', [probability]);
  }

  duplicate(probability: number): void {
    this.host.network.setDuplicate(probability);
    this.record('duplicate', [probability]);
  }

  delay(extraMs: number): void {
    this.host.network.setDelay(extraMs);
    this.record('delay', [extraMs]);
  }

  reorder(on: boolean): void {
    this.record('reorder', [Boolean(on)]);
    this.host.network.setReorder(on);
  }

  crash(node: string): void {
    this.known(node);
    this.record('crash', [node]);
    this.pauseSeq.delete(node);
    this.host.crash(node);
  }

  restart(node: string): void {
    this.known(node);
    this.record('restart', [node]);
    this.host.restart(node);
  }

  pause(node: string, forMs?: number): void {
    this.known(node);
    if (forMs !== undefined && !(Number.isFinite(forMs) && forMs >= 0)) throw new RangeError(`pause: forMs must be a finite number ≥ 0, got ${String(forMs)}`);
    this.record('pause', forMs === undefined ? [node] : [node, forMs]);
    this.host.pause(node);
    const id = this.nextPause++;
    this.pauseSeq.set(node, id);
    if (forMs !== undefined) {
      const s = this.host.scheduler;
      s.at(s.now() + forMs, 'nemesis', undefined, `resume(${JSON.stringify(node)}) after pause`, () => {
        if (this.pauseSeq.get(node) === id && this.host.isPaused(node)) this.resume(node);
      });
    }
  }

  resume(node: string): void {
    this.known(node);
    this.record('resume', [node]);
    this.pauseSeq.delete(node);
    this.host.resume(node);
  }

  skew(node: string, ms: number): void {
    this.known(node);
    if (!Number.isFinite(ms)) throw new RangeError(`skew: ms must be a finite number, got ${String(ms)}`);
    this.record('skew', [node, ms]);
    this.host.skew(node, ms);
  }

  apply(command: FaultCommand): void {
    const fn = (this as unknown as Record<string, unknown>)[command.op];
    if (!(FAULT_OPS as readonly string[]).includes(command.op) || typeof fn !== 'function') {
      throw new RangeError(`unknown nemesis operation '${String(command.op)}'`);
    }
    (fn as (...args: unknown[]) => void).apply(this, cloneArgs(command.args as unknown[]));
  }

  plan(schedule: readonly FaultEvent[]): void {
    const s = this.host.scheduler;
    for (const ev of schedule) {
      if (!(FAULT_OPS as readonly string[]).includes(ev.op)) throw new RangeError(`unknown nemesis operation '${String(ev.op)}'`);
      if (!(Number.isFinite(ev.atMs) && ev.atMs >= s.now())) throw new RangeError(`cannot plan ${ev.op} at ${ev.atMs} ms: it is ${s.now()} ms already`);
    }
    for (const ev of schedule) {
      const command = { op: ev.op, args: cloneArgs(ev.args) } as FaultCommand;
      s.at(ev.atMs, 'nemesis', undefined, describeFault(command), () => this.apply(command));
    }
  }

  randomSchedule(rng: Rng, options: RandomScheduleOptions): FaultEvent[] {
    const schedule = randomSchedule(rng, { ...options, startMs: options.startMs ?? this.host.scheduler.now(), nodes: this.host.nodeNames() });
    this.plan(schedule);
    return schedule;
  }

  private known(node: string): void {
    if (!this.host.nodeNames().includes(node)) throw new RangeError(`unknown node '${String(node)}' (nodes: ${this.host.nodeNames().join(', ')})`);
  }

  private record<K extends NemesisOp>(op: K, args: Parameters<NemesisOps[K]>): void {
    this.host.record({ atMs: this.host.scheduler.now(), op, args: cloneArgs(args) } as FaultEvent);
  }
}

const FAULT_OPS: readonly NemesisOp[] = [
  'partition', 'partitionOneWay', 'majoritiesRing', 'isolate', 'heal', 'drop', 'duplicate', 'delay', 'reorder',
  'crash', 'restart', 'pause', 'resume', 'skew',
];

/**
 * The one-way links a majorities ring cuts, as `[from, to]`: on the ring `order`, node i hears only
 * from the `floor(n/2) + 1` nodes centred on it (itself included).
 */
export function majoritiesRingCuts(order: readonly string[]): Array<[string, string]> {
  const n = order.length;
  const majority = Math.floor(n / 2) + 1;
  const behind = Math.floor((majority - 1) / 2);
  const ahead = majority - 1 - behind;
  const cuts: Array<[string, string]> = [];
  for (let i = 0; i < n; i++) {
    const hears = new Set<string>();
    for (let d = -behind; d <= ahead; d++) hears.add(order[(((i + d) % n) + n) % n]!);
    for (const from of order) if (!hears.has(from)) cuts.push([from, order[i]!]);
  }
  return cuts;
}

/**
 * A random fault schedule as data: one fault episode at a time — a quiet gap, then a fault drawn
 * from `faults`, then the operation that ends it (heal, `drop(0)`, restart, resume, `skew(n, 0)`…)
 * — until `startMs + durationMs`, by which every fault has ended. Same `rng` state, same schedule.
 * @example
 * const schedule = randomSchedule(createRng(7), { nodes: ['n1', 'n2', 'n3'], durationMs: 10_000, faults: ['partition', 'crash'] });
 * // [{ atMs: 412, op: 'partition', args: [[['n2'], ['n3', 'n1']]] }, { atMs: 1630, op: 'heal', args: [] }, …]
 */
export function randomSchedule(rng: Rng, options: RandomScheduleOptions & { nodes: readonly string[] }): FaultEvent[] {
  const { durationMs, nodes } = options;
  const startMs = options.startMs ?? 0;
  const gap = options.gapMs ?? [100, 1000];
  const span = options.faultMs ?? [200, 2000];
  if (!(Number.isFinite(durationMs) && durationMs > 0)) throw new RangeError(`randomSchedule option durationMs must be a positive number, got ${String(durationMs)}`);
  for (const [name, r] of [['gapMs', gap], ['faultMs', span]] as const) {
    if (!(Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] >= 0 && r[1] >= r[0])) {
      throw new RangeError(`randomSchedule option ${name} must be [min, max] integers with 0 <= min <= max, got ${JSON.stringify(r)}`);
    }
  }
  if (nodes.length === 0) throw new RangeError('randomSchedule needs at least one node');
  const kinds = (options.faults ?? FAULT_KINDS).filter((k) => nodes.length >= 2 || !NEEDS_TWO.has(k));
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new RangeError(`randomSchedule: unknown fault kind '${String(k)}'`);
  const out: FaultEvent[] = [];
  if (kinds.length === 0) return out;
  const end = startMs + durationMs;
  const between = (r: readonly [number, number]): number => r[0] + rng.int(r[1] - r[0] + 1);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  let t = startMs + between(gap);
  while (t < end) {
    const kind = pick(kinds);
    const until = Math.min(t + Math.max(1, between(span)), end);
    const node = pick(nodes);
    switch (kind) {
      case 'partition': {
        const shuffled = shuffle(rng, nodes);
        const k = 1 + rng.int(shuffled.length - 1);
        out.push({ atMs: t, op: 'partition', args: [[shuffled.slice(0, k), shuffled.slice(k)]] }, { atMs: until, op: 'heal', args: [] });
        break;
      }
      case 'partitionOneWay': {
        const others = nodes.filter((n) => n !== node);
        out.push({ atMs: t, op: 'partitionOneWay', args: [node, pick(others)] }, { atMs: until, op: 'heal', args: [] });
        break;
      }
      case 'majoritiesRing':
        out.push({ atMs: t, op: 'majoritiesRing', args: [shuffle(rng, nodes)] }, { atMs: until, op: 'heal', args: [] });
        break;
      case 'isolate':
        out.push({ atMs: t, op: 'isolate', args: [node] }, { atMs: until, op: 'heal', args: [] });
        break;
      case 'drop':
        out.push({ atMs: t, op: 'drop', args: [(10 + rng.int(41)) / 100] }, { atMs: until, op: 'drop', args: [0] });
        break;
      case 'duplicate':
        out.push({ atMs: t, op: 'duplicate', args: [(10 + rng.int(41)) / 100] }, { atMs: until, op: 'duplicate', args: [0] });
        break;
      case 'delay':
        out.push({ atMs: t, op: 'delay', args: [10 + rng.int(191)] }, { atMs: until, op: 'delay', args: [0] });
        break;
      case 'reorder':
        out.push({ atMs: t, op: 'reorder', args: [true] }, { atMs: until, op: 'reorder', args: [false] });
        break;
      case 'crash':
        out.push({ atMs: t, op: 'crash', args: [node] }, { atMs: until, op: 'restart', args: [node] });
        break;
      case 'pause':
        out.push({ atMs: t, op: 'pause', args: [node] }, { atMs: until, op: 'resume', args: [node] });
        break;
      case 'skew': {
        const ms = (rng.int(2) === 0 ? -1 : 1) * (100 + rng.int(4901));
        out.push({ atMs: t, op: 'skew', args: [node, ms] }, { atMs: until, op: 'skew', args: [node, 0] });
        break;
      }
    }
    t = until + between(gap);
  }
  return out;
}

const NEEDS_TWO: ReadonlySet<FaultKind> = new Set<FaultKind>(['partition', 'partitionOneWay', 'majoritiesRing', 'isolate']);

/** A seeded Fisher–Yates shuffle (a copy). */
function shuffle<T>(rng: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
