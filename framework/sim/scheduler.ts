/**
 * The simulator's single scheduler: one priority queue, ordered by (time, sequence number), that
 * holds EVERY future event of a simulation — message deliveries of the simulated network, timers of
 * every node's clock (XState `after` delays, ask timeouts, heartbeats, restart backoff) and planned
 * nemesis operations. Time only moves when an event is taken off the queue, so one seed always gives
 * the same order of events.
 *
 * Events may belong to a node. While a node is paused its events are held (not run, not dropped)
 * and are released, in their original order, at the moment it resumes — they fire late, the way a
 * process frozen by a GC pause or SIGSTOP sees its timers and its socket buffer all at once.
 */
import { MinHeap } from '../min-heap.ts';
import type { Clock, TimerId } from '../clock.ts';

/** What a scheduled event is. */
export type SimEventKind = 'timer' | 'deliver' | 'nemesis';

/** One line of a simulation trace: an event that ran, or (`lost`) a message the network lost. */
export interface TraceEntry {
  /** Simulated time, in ms. */
  readonly atMs: number;
  readonly kind: SimEventKind | 'lost';
  /** The node whose code ran (the receiver, for deliveries); undefined for the simulation's own events. */
  readonly node: string | undefined;
  /** Human-readable detail: `from>to subject` for messages, the operation for nemesis events. */
  readonly detail: string;
}

/** Options of {@link createScheduler}. */
export interface SchedulerOptions {
  /** Simulated time at the start, in ms. @default 0 */
  startMs?: number;
  /** Record every event in {@link SimScheduler.trace}. @default true */
  trace?: boolean;
}

/** The shared event queue and the simulated time it drives. */
export interface SimScheduler {
  /** Current simulated time, in ms (never goes backwards). */
  now(): number;
  /**
   * Run `run` at `atMs` (not earlier than now). Events at the same time run in the order they were
   * scheduled. Returns a handle for {@link cancel}.
   */
  at(atMs: number, kind: SimEventKind, node: string | undefined, detail: string, run: () => void): TimerId;
  /** Cancel a pending event. Unknown or already-run handles are ignored. */
  cancel(handle: TimerId): void;
  /** Time of the next event that can run (events of paused nodes do not count), or undefined when idle. */
  peekTime(): number | undefined;
  /**
   * Take the next runnable event off the queue, move time to it, and run it. Returns its trace
   * entry, or undefined when nothing can run. An exception thrown by the event propagates.
   */
  runNext(): TraceEntry | undefined;
  /** Move time forward to `ms` without running anything (there must be no runnable event before it). */
  advanceTo(ms: number): void;
  /** Hold `node`'s events until {@link resume}. Idempotent. */
  pause(node: string): void;
  /** Release `node`'s held events at the current time, in their original order; returns how many. */
  resume(node: string): number;
  isPaused(node: string): boolean;
  /** Forget every pending and held event of `node` (it crashed); returns how many. Ends a pause. */
  dropNode(node: string): number;
  /** Append a line to the trace without scheduling anything (messages lost by the network). */
  note(kind: TraceEntry['kind'], node: string | undefined, detail: string): void;
  /** Everything that happened so far, in order (empty when tracing is off). */
  trace(): readonly TraceEntry[];
  /** Events waiting (held ones included). */
  pending(): number;
  /**
   * A counter that changes whenever anything is scheduled or cancelled: the simulation watches it to
   * tell when the actors have gone quiet between two events.
   */
  activity(): number;
}

interface Entry {
  atMs: number;
  seq: number;
  readonly kind: SimEventKind;
  readonly node: string | undefined;
  readonly detail: string;
  readonly run: () => void;
  cancelled: boolean;
  /** True while in the heap or in a held list. */
  queued: boolean;
}

const before = (a: Entry, b: Entry): boolean => a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);


/**
 * A fresh scheduler at `startMs`.
 * @example
 * const s = createScheduler();
 * s.at(10, 'timer', 'n1', '', () => console.log('fired at', s.now()));
 * s.runNext(); // fired at 10
 */
export function createScheduler(options: SchedulerOptions = {}): SimScheduler {
  return new Scheduler(options.startMs ?? 0, options.trace ?? true);
}

class Scheduler implements SimScheduler {
  private time: number;
  private seq = 0;
  private changes = 0;
  private readonly heap = new MinHeap<Entry>(before);
  private readonly held = new Map<string, Entry[]>();
  private readonly lines: TraceEntry[] = [];

  constructor(startMs: number, private readonly tracing: boolean) {
    if (!Number.isFinite(startMs) || startMs < 0) throw new RangeError(`scheduler option startMs must be a finite number ≥ 0, got ${String(startMs)}`);
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  at(atMs: number, kind: SimEventKind, node: string | undefined, detail: string, run: () => void): TimerId {
    if (!Number.isFinite(atMs)) throw new RangeError(`cannot schedule an event at ${String(atMs)}`);
    const e: Entry = { atMs: Math.max(atMs, this.time), seq: this.seq++, kind, node, detail, run, cancelled: false, queued: true };
    this.changes++;
    this.heap.push(e);
    return e;
  }

  cancel(handle: TimerId): void {
    const e = handle as Entry | undefined;
    if (e === undefined || e === null || typeof e !== 'object' || !('queued' in e) || !e.queued || e.cancelled) return;
    e.cancelled = true;
    this.changes++;
  }

  peekTime(): number | undefined {
    return this.head()?.atMs;
  }

  runNext(): TraceEntry | undefined {
    const e = this.head();
    if (e === undefined) return undefined;
    this.heap.pop();
    e.queued = false;
    this.time = e.atMs;
    this.changes++;
    const line: TraceEntry = { atMs: e.atMs, kind: e.kind, node: e.node, detail: e.detail };
    if (this.tracing) this.lines.push(line);
    e.run();
    return line;
  }

  advanceTo(ms: number): void {
    const next = this.peekTime();
    if (next !== undefined && next < ms) throw new RangeError(`cannot advance to ${ms} ms: an event is due at ${next} ms`);
    if (ms > this.time) this.time = ms;
  }

  pause(node: string): void {
    if (!this.held.has(node)) this.held.set(node, []);
  }

  resume(node: string): number {
    const held = this.held.get(node);
    if (held === undefined) return 0;
    this.held.delete(node);
    let n = 0;
    held.sort((a, b) => (before(a, b) ? -1 : 1));
    for (const e of held) {
      if (e.cancelled) {
        e.queued = false;
        continue;
      }
      // What fell due during the pause runs now, late, in the order it was due (fresh sequence
      // numbers in that order); what is not due yet keeps its time. The entry object is reused so
      // that its handle can still cancel it.
      if (e.atMs <= this.time) {
        e.atMs = this.time;
        e.seq = this.seq++;
      }
      this.heap.push(e);
      n++;
    }
    this.changes++;
    return n;
  }

  isPaused(node: string): boolean {
    return this.held.has(node);
  }

  dropNode(node: string): number {
    let n = 0;
    for (const e of this.held.get(node) ?? []) {
      if (!e.cancelled) n++;
      e.cancelled = true;
    }
    this.held.delete(node);
    for (const e of this.heap.items) {
      if (e.node === node && !e.cancelled) {
        e.cancelled = true;
        n++;
      }
    }
    this.changes++;
    return n;
  }

  note(kind: TraceEntry['kind'], node: string | undefined, detail: string): void {
    this.changes++;
    if (this.tracing) this.lines.push({ atMs: this.time, kind, node, detail });
  }

  trace(): readonly TraceEntry[] {
    return this.lines;
  }

  pending(): number {
    let n = 0;
    for (const e of this.heap.items) if (!e.cancelled) n++;
    for (const list of this.held.values()) for (const e of list) if (!e.cancelled) n++;
    return n;
  }

  activity(): number {
    return this.changes;
  }

  /** The next runnable entry, left in the heap; cancelled entries are discarded and paused nodes' entries moved aside. */
  private head(): Entry | undefined {
    for (let e = this.heap.peek(); e !== undefined; e = this.heap.peek()) {
      if (e.cancelled) {
        this.heap.pop();
        e.queued = false;
        continue;
      }
      const held = e.node === undefined ? undefined : this.held.get(e.node);
      if (held !== undefined) {
        this.heap.pop();
        held.push(e);
        continue;
      }
      return e;
    }
    return undefined;
  }
}

/** A node's clock: shared simulated time plus the node's skew; timers on the shared scheduler. */
export interface NodeClock extends Clock {
  /** The node this clock belongs to. */
  readonly node: string;
  /**
   * Stop the clock for good (the node crashed): pending timers are forgotten by the caller through
   * `dropNode`, and later `setTimeout` calls schedule nothing.
   */
  kill(): void;
}

/**
 * The `Clock` one node sees. `now()` is the shared time plus `skewMs()` (a skewed node reads a
 * wrong time; durations are unaffected, as with an offset wall clock). Timers are events of the
 * node on the shared scheduler, so they are held while the node is paused and fire late.
 */
export function createNodeClock(scheduler: SimScheduler, node: string, skewMs: () => number = () => 0): NodeClock {
  let alive = true;
  return {
    node,
    now: () => scheduler.now() + skewMs(),
    setTimeout: (fn, delayMs) => {
      if (!alive) return undefined;
      const d = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
      return scheduler.at(scheduler.now() + d, 'timer', node, '', fn);
    },
    clearTimeout: (id) => scheduler.cancel(id),
    kill: () => {
      alive = false;
    },
  };
}
