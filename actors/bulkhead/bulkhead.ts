/**
 * Bulkhead isolation: at most `limit` executions of a call at once, a bounded queue behind them,
 * and an immediate typed rejection when both are taken — so one slow dependency ties up a bounded
 * number of callers instead of all of them. Use one bulkhead per dependency
 * ({@link createBulkheads}).
 *
 * The counters live in the policy and admitting a call costs no XState event; the bulkhead's mode
 * (`open` / `saturated` / `full`) is a state chart ({@link bulkheadMachine}) that the policy
 * updates only when a threshold is crossed.
 */
import { createActor, type Actor, type ActorOptions, type AnyActorLogic, type SnapshotFrom } from 'xstate';
import { realClock, type Clock, type TimerId } from '../../framework/clock.ts';
import { AbortedError, BulkheadRejectedError } from '../../framework/errors.ts';
import { NEVER_ABORTED, type Policy, type PolicyContext, type Protected } from '../policy/policy.ts';
import { BulkheadMode, bulkheadMachine, bulkheadMode, type BulkheadStateEffect } from './machine.ts';

export const DEFAULT_BULKHEAD_NAME = 'bulkhead';
/** No queue: a call that finds every slot busy is rejected at once. */
export const DEFAULT_BULKHEAD_QUEUE = 0;
/** Queued callers wait until a slot frees or their own signal aborts. */
export const DEFAULT_BULKHEAD_QUEUE_TIMEOUT_MS = Number.POSITIVE_INFINITY;

/** Options of {@link createBulkhead}. */
export interface BulkheadOptions {
  /** Name for errors, logs and the inspector (usually the protected dependency). @default 'bulkhead' */
  name?: string;
  /** Executions allowed at once; an integer ≥ 1. Required. */
  limit: number;
  /** Callers that may wait for a slot when all are busy; an integer ≥ 0. @default 0 */
  queue?: number;
  /**
   * How long a caller may wait in the queue before it is rejected with a `BulkheadRejectedError`
   * whose `reason` is `'queue-timeout'`; a number > 0, or `Infinity` for no limit.
   * @default Infinity
   */
  queueTimeoutMs?: number;
  /** Time source for queue timeouts and transition timestamps. @default realClock() */
  clock?: Clock;
  /** XState inspection observer for the bulkhead's state chart (the inspector, tests). */
  inspect?: ActorOptions<AnyActorLogic>['inspect'];
}

/** {@link BulkheadOptions} after defaults and validation. */
export interface ResolvedBulkheadOptions {
  readonly name: string;
  readonly limit: number;
  readonly queue: number;
  readonly queueTimeoutMs: number;
  readonly clock: Clock;
  readonly inspect: ActorOptions<AnyActorLogic>['inspect'];
}

/** Counters of a bulkhead, read at call time. */
export interface BulkheadStats {
  /** Executions running now. */
  readonly active: number;
  /** Callers waiting in the queue now. */
  readonly queued: number;
  readonly limit: number;
  readonly queueCapacity: number;
  /** Calls rejected since creation (full, or timed out in the queue). Aborted waiters are not counted. */
  readonly rejected: number;
}

/** What `on(event, listener)` delivers, by event name. */
export interface BulkheadEvents {
  /** A call was rejected: the bulkhead was full, or the call waited longer than `queueTimeoutMs`. */
  rejected: BulkheadRejectedError;
  /** The mode changed (`open` / `saturated` / `full`), with the counts at that moment. */
  state: BulkheadStateEffect;
}

/**
 * A bulkhead policy.
 *
 * Guarantees: never more than `limit` executions started by this bulkhead are running at once;
 * never more than `queue` callers wait; queued callers start in arrival order; a full bulkhead
 * rejects at once with `BulkheadRejectedError`; a queued caller whose signal aborts leaves the
 * queue and gets `AbortedError`. An execution counts as running until the promise returned by the
 * protected call settles.
 *
 * Does NOT guarantee: that a call is cancelled — the caller's signal is passed to the call and the
 * bulkhead keeps the slot until the call settles; and nothing across processes (the limit is per
 * bulkhead object).
 */
export interface Bulkhead extends Policy {
  readonly kind: 'bulkhead';
  readonly name: string;
  /** Run `fn` in a slot, after waiting in the queue if needed. */
  execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T>;
  stats(): BulkheadStats;
  /** The bulkhead's state chart: its mode and the counts as of the latest mode change. */
  snapshot(): SnapshotFrom<typeof bulkheadMachine>;
  /** The hosted XState actor of the mode chart (`system.host(…)`, the inspector). */
  readonly actor: Actor<typeof bulkheadMachine>;
  /** Listen to rejections or mode changes; returns the function that stops listening. Listeners must not throw. */
  on<E extends keyof BulkheadEvents>(event: E, listener: (payload: BulkheadEvents[E]) => void): () => void;
}

function fail(option: string, expected: string, value: unknown): never {
  throw new RangeError(`option ${option} must be ${expected}, got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
}

/** Fill defaults and validate; throws `RangeError` naming the bad option and its value. */
export function resolveBulkheadOptions(options: BulkheadOptions): ResolvedBulkheadOptions {
  const name = options.name ?? DEFAULT_BULKHEAD_NAME;
  if (typeof name !== 'string' || name.length === 0) fail('name', 'a non-empty string', name);
  const { limit } = options;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) fail('limit', 'an integer ≥ 1', limit);
  const queue = options.queue ?? DEFAULT_BULKHEAD_QUEUE;
  if (typeof queue !== 'number' || !Number.isInteger(queue) || queue < 0) fail('queue', 'an integer ≥ 0', queue);
  const queueTimeoutMs = options.queueTimeoutMs ?? DEFAULT_BULKHEAD_QUEUE_TIMEOUT_MS;
  if (typeof queueTimeoutMs !== 'number' || Number.isNaN(queueTimeoutMs) || queueTimeoutMs <= 0) {
    fail('queueTimeoutMs', 'a number > 0 (or Infinity)', queueTimeoutMs);
  }
  return { name, limit, queue, queueTimeoutMs, clock: options.clock ?? realClock(), inspect: options.inspect };
}

/** A caller waiting for a slot: a node of the queue's doubly linked list, and its abort listener. */
class Waiter {
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  timer: TimerId | undefined = undefined;
  constructor(
    readonly owner: BulkheadImpl,
    readonly fn: Protected<unknown>,
    readonly signal: AbortSignal,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
  /** EventListener object for the caller's signal (no closure per waiter). */
  handleEvent(): void {
    this.owner.abandon(this);
  }
}

const NEVER_CONTEXT: PolicyContext = { signal: NEVER_ABORTED };

const isThenable = <T>(x: PromiseLike<T> | T): x is PromiseLike<T> =>
  x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';

class BulkheadImpl implements Bulkhead {
  readonly kind = 'bulkhead' as const;
  readonly name: string;
  private readonly limit: number;
  private readonly queueCapacity: number;
  private readonly queueTimeoutMs: number;
  private readonly clock: Clock;
  readonly actor: Actor<typeof bulkheadMachine>;
  private active = 0;
  private queued = 0;
  private rejected = 0;
  /** The mode last reported to the chart. */
  private mode: BulkheadMode = BulkheadMode.Open;
  private head: Waiter | undefined = undefined;
  private tail: Waiter | undefined = undefined;
  private draining = false;
  /** Set while mode reports are held back until the next clock turn (see syncMode). */
  private flushTimer: TimerId | undefined = undefined;
  private readonly rejectedListeners: Array<(e: BulkheadRejectedError) => void> = [];
  private readonly stateListeners: Array<(e: BulkheadStateEffect) => void> = [];

  constructor(o: ResolvedBulkheadOptions) {
    this.name = o.name;
    this.limit = o.limit;
    this.queueCapacity = o.queue;
    this.queueTimeoutMs = o.queueTimeoutMs;
    this.clock = o.clock;
    this.actor = createActor(bulkheadMachine, {
      clock: o.clock,
      input: { name: o.name, limit: o.limit, queueCapacity: o.queue, nowMs: o.clock.now() },
      ...(o.inspect ? { inspect: o.inspect } : {}),
    });
    this.actor.on('bulkhead.state', (effect) => {
      for (const l of this.stateListeners.slice()) l(effect);
    });
    this.actor.start();
  }

  execute<T>(fn: Protected<T>, signal: AbortSignal = NEVER_ABORTED): Promise<T> {
    if (signal.aborted) return Promise.reject(new AbortedError(`bulkhead '${this.name}'`, signal.reason));
    if (this.active < this.limit) {
      if (++this.active === this.limit) this.syncMode();
      return this.run(fn, signal);
    }
    if (this.queued < this.queueCapacity) return this.enqueue(fn, signal);
    return Promise.reject(this.rejection('full'));
  }

  stats(): BulkheadStats {
    return { active: this.active, queued: this.queued, limit: this.limit, queueCapacity: this.queueCapacity, rejected: this.rejected };
  }

  snapshot(): SnapshotFrom<typeof bulkheadMachine> {
    return this.actor.getSnapshot();
  }

  on<E extends keyof BulkheadEvents>(event: E, listener: (payload: BulkheadEvents[E]) => void): () => void {
    const list = (event === 'rejected' ? this.rejectedListeners : this.stateListeners) as Array<(p: BulkheadEvents[E]) => void>;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Run `fn` in a slot already counted in `active`; frees the slot when its result settles. */
  private run<T>(fn: Protected<T>, signal: AbortSignal): Promise<T> {
    let result: PromiseLike<T> | T;
    try {
      result = fn(signal === NEVER_ABORTED ? NEVER_CONTEXT : { signal });
    } catch (err) {
      this.release();
      return Promise.reject(err);
    }
    if (isThenable(result)) return this.settle(result);
    this.release();
    return Promise.resolve(result);
  }

  /** Free the slot when `result` settles (two handlers per bulkhead, not per call). */
  private settle<T>(result: PromiseLike<T>): Promise<T> {
    return (result instanceof Promise ? result : Promise.resolve(result)).then(this.releaseAndReturn, this.releaseAndThrow) as Promise<T>;
  }

  private readonly releaseAndReturn = (value: unknown): unknown => {
    this.release();
    return value;
  };

  private readonly releaseAndThrow = (err: unknown): never => {
    this.release();
    throw err;
  };

  private release(): void {
    this.active--;
    if (this.head !== undefined) this.drain();
    else if (this.mode !== BulkheadMode.Open) this.syncMode();
  }

  /** Start queued callers while slots are free. Re-entrant calls (a call that settles synchronously) just free their slot. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.active < this.limit && this.head !== undefined) {
        const w = this.head;
        this.unlink(w);
        this.active++;
        this.run(w.fn, w.signal).then(w.resolve, w.reject);
      }
    } finally {
      this.draining = false;
    }
    this.syncMode();
  }

  private enqueue<T>(fn: Protected<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const w = new Waiter(this, fn, signal, resolve as (value: unknown) => void, reject);
      if (this.tail === undefined) this.head = w;
      else {
        this.tail.next = w;
        w.prev = this.tail;
      }
      this.tail = w;
      this.queued++;
      if (signal !== NEVER_ABORTED) signal.addEventListener('abort', w);
      if (this.queueTimeoutMs !== Number.POSITIVE_INFINITY) {
        w.timer = this.clock.setTimeout(() => this.expire(w), this.queueTimeoutMs);
      }
      this.syncMode();
    });
  }

  /** Take `w` out of the queue and drop its timer and abort listener. */
  private unlink(w: Waiter): void {
    if (w.prev === undefined) this.head = w.next;
    else w.prev.next = w.next;
    if (w.next === undefined) this.tail = w.prev;
    else w.next.prev = w.prev;
    w.prev = w.next = undefined;
    this.queued--;
    if (w.timer !== undefined) this.clock.clearTimeout(w.timer);
    if (w.signal !== NEVER_ABORTED) w.signal.removeEventListener('abort', w);
  }

  private isQueued(w: Waiter): boolean {
    return w.prev !== undefined || this.head === w;
  }

  /** The caller's signal fired while it waited. */
  abandon(w: Waiter): void {
    if (!this.isQueued(w)) return;
    this.unlink(w);
    w.reject(new AbortedError(`bulkhead '${this.name}'`, w.signal.reason));
    this.syncMode();
  }

  private expire(w: Waiter): void {
    if (!this.isQueued(w)) return;
    const err = this.rejection('queue-timeout');
    w.timer = undefined;
    this.unlink(w);
    w.reject(err);
    this.syncMode();
  }

  private rejection(reason: 'full' | 'queue-timeout'): BulkheadRejectedError {
    this.rejected++;
    const err = new BulkheadRejectedError(this.name, this.limit, this.queueCapacity, this.active, this.queued, reason);
    for (const l of this.rejectedListeners.slice()) l(err);
    return err;
  }

  /**
   * Tell the chart when the counts have crossed into another mode. A bulkhead running at its limit
   * crosses a threshold on nearly every call, so after reporting a change the policy reports no
   * other until one clock turn later (`clock.setTimeout(…, 0)`), then the mode as of that moment:
   * the chart may lag the counters by one turn, never by more, and costs at most one event per turn.
   */
  private syncMode(): void {
    if (this.flushTimer !== undefined) return;
    this.report();
  }

  private readonly flush = (): void => {
    this.flushTimer = undefined;
    this.report();
  };

  private report(): void {
    const mode = bulkheadMode(this.active, this.queued, this.limit, this.queueCapacity);
    if (mode === this.mode) return;
    this.mode = mode;
    this.flushTimer = this.clock.setTimeout(this.flush, 0);
    this.actor.send({ type: 'LOAD', active: this.active, queued: this.queued, rejected: this.rejected, atMs: this.clock.now() });
  }
}

/**
 * Create a bulkhead.
 * @example
 * const db = createBulkhead({ name: 'db', limit: 10, queue: 100, queueTimeoutMs: 2_000 });
 * const rows = await db.execute(({ signal }) => pool.query(sql, { signal }));
 */
export function createBulkhead(options: BulkheadOptions): Bulkhead {
  return new BulkheadImpl(resolveBulkheadOptions(options));
}

/** Capacity figures a registry may set per target. */
export type BulkheadTargetOptions = Partial<Pick<BulkheadOptions, 'limit' | 'queue' | 'queueTimeoutMs'>>;

/** Options of {@link createBulkheads}: the defaults of every target's bulkhead, and per-target overrides. */
export interface BulkheadRegistryOptions extends Omit<BulkheadOptions, 'name'> {
  /** Overrides by target name, e.g. `{ search: { limit: 2 } }`. */
  targets?: Readonly<Record<string, BulkheadTargetOptions>>;
}

/** One bulkhead per named target, created on first use. */
export interface BulkheadRegistry {
  /** The bulkhead of `target` (named after it), created on first use. */
  for(target: string): Bulkhead;
  /** Targets that have a bulkhead so far. */
  targets(): string[];
}

/**
 * A registry of bulkheads, one per target, so a slow dependency fills only its own bulkhead.
 * Every option (defaults and overrides) is validated here, not on first use.
 * @example
 * const bulkheads = createBulkheads({ limit: 10, queue: 50, targets: { search: { limit: 2 } } });
 * await bulkheads.for('search').execute(() => search(q));
 */
export function createBulkheads(defaults: BulkheadRegistryOptions): BulkheadRegistry {
  const { targets: overrides = {}, ...base } = defaults;
  resolveBulkheadOptions(base);
  for (const [target, o] of Object.entries(overrides)) resolveBulkheadOptions({ ...base, ...o, name: target });
  const bulkheads = new Map<string, Bulkhead>();
  return {
    for(target: string): Bulkhead {
      let b = bulkheads.get(target);
      if (b === undefined) {
        if (typeof target !== 'string' || target.length === 0) fail('target', 'a non-empty string', target);
        b = createBulkhead({ ...base, ...(Object.hasOwn(overrides, target) ? overrides[target] : undefined), name: target });
        bulkheads.set(target, b);
      }
      return b;
    },
    targets: () => [...bulkheads.keys()],
  };
}
