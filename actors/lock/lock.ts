/**
 * `createLock(store, options)`: distributed locks with fencing tokens over any `KvStore` (NATS
 * JetStream KV, troupe's Raft KV, the memory store in tests and the simulator).
 *
 * Keys, under `<prefix>.<name>.`:
 * - `holder` — the lease: `{ owner, leaseId, token }`, created with the lease TTL and renewed by a
 *   revision-checked `update` every `renewIntervalMs`. The fencing token is the revision of the
 *   `create` that granted it, so tokens of one lock strictly increase.
 * - `q.<leaseId>` — a waiter's place in line, created with the TTL and renewed the same way; its
 *   position (ticket) is the revision of its `create`.
 *
 * Waiting: a client that finds the lock taken enqueues, and watches `<prefix>.<name>.>` (ONE watch
 * per client and lock name, however many of its callers wait). Only the first waiter in line ever
 * tries to take the lock when it is released, so a release costs one `create`, not one per waiter.
 * Expiry is not delivered to watchers, so entries that fall silent for a TTL are checked with `get`.
 */
import { createActor, fromPromise, type Actor, type SnapshotFrom } from 'xstate';
import { createRng, entropySeed, type Clock, type Rng, type TimerId } from '../../framework/clock.ts';
import {
  AbortedError,
  InvalidNameError,
  isKvConflictError,
  LockLostError,
  LockTimeoutError,
  NotLockOwnerError,
} from '../../framework/errors.ts';
import type { KvEntry, KvStore } from '../../framework/store/store.ts';
import {
  leaseMachine,
  type CreateOutcome,
  type LeaseContext,
  type LeaseEffectInput,
  type LeaseEvent,
  type ReconcileOutcome,
  type ReleaseOutcome,
  type RenewOutcome,
  type TicketOutcome,
} from './machine.ts';
import { decodeRecord, encodeRecord } from './record.ts';
import { LockView, type LockViewHost } from './view.ts';

export { LOCK_VIEW_IDLE_MS } from './view.ts';

/** Default key prefix of every lock. */
export const DEFAULT_LOCK_PREFIX = 'locks';
/** Default lease TTL. */
export const DEFAULT_LOCK_TTL_MS = 10_000;
/** Default longest wait of `acquire`. */
export const DEFAULT_LOCK_WAIT_MS = 30_000;
/** Default pause before retrying a store call that got no answer. */
export const DEFAULT_LOCK_RETRY_DELAY_MS = 100;

/** Options of {@link createLock}. */
export interface LockOptions {
  /** Time source of renewals, retries and expiry checks. */
  clock: Clock;
  /** Who this client is (a node or process name); stored with every lease, shown in errors. */
  owner: string;
  /**
   * Lease ids. @default a generator seeded from the wall clock and pid
   */
  rng?: Rng;
  /**
   * Key prefix: letters, digits, `-`, `_`, `=`, dot-separated.
   * @default 'locks'
   */
  prefix?: string;
  /**
   * Lease TTL of `acquire` calls that do not give one. On the NATS KV store it must equal the
   * bucket's `ttlMs` (a bucket-wide max age on nats-server 2.9/2.10).
   * @default 10000
   */
  ttlMs?: number;
  /**
   * How often a held lease (and a place in the queue) is renewed; well below the TTL so that a
   * renewal or two may fail without losing the lease.
   * @default ttlMs / 3
   */
  renewIntervalMs?: number;
  /**
   * How often a waiter checks, with `get`, whether the holder or a waiter ahead of it that has
   * fallen silent has expired. Bounds how late a crashed holder's lock is noticed as free.
   * @default renewIntervalMs
   */
  pollIntervalMs?: number;
  /**
   * Pause before retrying a store call that got no answer.
   * @default 100
   */
  retryDelayMs?: number;
}

/** Options of {@link LockClient.acquire}. */
export interface AcquireOptions {
  /** Lease TTL. @default the client's `ttlMs` */
  ttlMs?: number;
  /** Give up (`LockTimeoutError`) after this long; `Infinity` waits for ever. @default 30000 */
  waitMs?: number;
  /** Abort the wait (`AbortedError`). Has no effect once the lock is granted. */
  signal?: AbortSignal;
}

/** Where a granted lease is in its life. */
export type LeaseStatus = 'held' | 'renewing' | 'releasing' | 'released' | 'lost';

/** A granted lock. Renewed automatically until released or lost. */
export interface Lease {
  readonly name: string;
  readonly owner: string;
  /** Unique per `acquire` call. */
  readonly leaseId: string;
  /**
   * The fencing token: greater than every token granted before for this lock. Pass it with every
   * write to a resource the lock protects, and have the resource reject lower tokens.
   */
  readonly token: number;
  readonly status: LeaseStatus;
  /**
   * Until when (this client's clock) the lease is certainly still held, as far as renewals that
   * succeeded tell: the start of the last successful write plus the TTL. Past it, assume nothing.
   */
  readonly expiresAtMs: number;
  /** Aborted, with the `LockLostError` as reason, when the lease is lost. */
  readonly signal: AbortSignal;
  /** Called once if the lease is lost (renewal refused, or unconfirmed before expiry). Returns an unsubscribe. */
  onLost(listener: (err: LockLostError) => void): () => void;
  /**
   * Give the lock up. Idempotent once it succeeded. Rejects with `LockLostError` when the lease
   * had already been lost: what was done under it was not protected throughout.
   */
  release(): Promise<void>;
  /** The hosted state chart (inspection, tests). */
  readonly actor: Actor<typeof leaseMachine>;
}

/** Locks of one owner over one store. */
export interface LockClient {
  readonly owner: string;
  /**
   * Wait for the lock `name` (letters, digits, `-`, `_`, `=`) and return its lease. Waiters are
   * granted the lock in the order they queued. Rejects with `LockTimeoutError` after `waitMs`,
   * `AbortedError` when `signal` fires, `RangeError` for bad options, `InvalidNameError` for a bad name.
   * @example
   * const lease = await locks.acquire('orders', { waitMs: 5_000 });
   * try { await resource.write(data, lease.token); } finally { await lease.release(); }
   */
  acquire(name: string, options?: AcquireOptions): Promise<Lease>;
  /**
   * Release the lock `name` held under `token` by THIS owner (e.g. after a restart, from a token
   * that was persisted). Resolves when the lock is not held under that token any more (idempotent);
   * `NotLockOwnerError` when another owner or another lease holds it.
   */
  release(name: string, token: number): Promise<void>;
  /**
   * Abort pending acquires, release held leases (best effort, waiting at most the longest lease TTL),
   * stop watching. Idempotent.
   */
  close(): Promise<void>;
}

interface ResolvedLockOptions {
  clock: Clock;
  owner: string;
  rng: Rng;
  prefix: string;
  ttlMs: number;
  renewIntervalMs: number | undefined;
  pollIntervalMs: number | undefined;
  retryDelayMs: number;
}

const NAME = /^[-_=a-zA-Z0-9]+$/;
const PREFIX = /^[-_=a-zA-Z0-9]+(\.[-_=a-zA-Z0-9]+)*$/;

const positiveMs = (what: string, v: unknown): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`lock option ${what} must be a positive number of ms, got ${String(v)}`);
  return v;
};

function resolveLockOptions(options: LockOptions): ResolvedLockOptions {
  if (options === null || typeof options !== 'object') throw new RangeError('lock options must be an object');
  const { clock, owner } = options;
  if (!clock || typeof clock.now !== 'function' || typeof clock.setTimeout !== 'function') throw new RangeError('lock option clock must be a Clock');
  if (typeof owner !== 'string' || owner.length === 0) throw new RangeError(`lock option owner must be a non-empty string, got ${String(owner)}`);
  const prefix = options.prefix ?? DEFAULT_LOCK_PREFIX;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) throw new RangeError(`lock option prefix must be dot-separated tokens of letters, digits, - _ =, got ${String(prefix)}`);
  const ttlMs = positiveMs('ttlMs', options.ttlMs ?? DEFAULT_LOCK_TTL_MS);
  const renewIntervalMs = options.renewIntervalMs === undefined ? undefined : positiveMs('renewIntervalMs', options.renewIntervalMs);
  if (renewIntervalMs !== undefined && renewIntervalMs >= ttlMs) throw new RangeError(`lock option renewIntervalMs must be less than ttlMs (${ttlMs}), got ${renewIntervalMs}`);
  const pollIntervalMs = options.pollIntervalMs === undefined ? undefined : positiveMs('pollIntervalMs', options.pollIntervalMs);
  const retryDelayMs = positiveMs('retryDelayMs', options.retryDelayMs ?? DEFAULT_LOCK_RETRY_DELAY_MS);
  return { clock, owner, rng: options.rng ?? createRng(entropySeed()), prefix, ttlMs, renewIntervalMs, pollIntervalMs, retryDelayMs };
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Per-acquire state the effects need beyond the machine's context. */
interface LeaseRecord {
  readonly name: string;
  readonly leaseId: string;
  readonly ttlMs: number;
  readonly actor: Actor<typeof leaseMachine>;
  /** When the first release attempt was sent (a later attempt may find it applied). */
  releaseFirstAtMs: number | undefined;
}

/**
 * Create a lock client.
 * @example
 * const locks = createLock(store, { clock: system.clock, owner: system.node, ttlMs: 10_000 });
 * const lease = await locks.acquire('orders');
 * lease.onLost((err) => log.warn(err.message));
 * await fenced.write(entry, lease.token);
 * await lease.release();
 */
export function createLock(store: KvStore, options: LockOptions): LockClient {
  return new LockClientImpl(store, resolveLockOptions(options));
}

class LockClientImpl implements LockClient, LockViewHost {
  readonly owner: string;
  private readonly leases = new Map<string, LeaseRecord>();
  private readonly views = new Map<string, LockView>();
  /** Locks last seen free (a release marker) and at which revision: the next claim is one `update`. */
  private readonly freeAt = new Map<string, number>();
  private readonly machine;
  private closed = false;

  constructor(private readonly store: KvStore, private readonly o: ResolvedLockOptions) {
    this.owner = o.owner;
    const effect = <T>(fn: (rec: LeaseRecord, input: LeaseEffectInput) => Promise<T>) =>
      fromPromise<T, LeaseEffectInput>(({ input }) => {
        const rec = this.leases.get(input.leaseId);
        if (!rec) return Promise.reject(new Error(`unknown lease ${input.leaseId}`));
        return fn(rec, input);
      });
    /** Runs an effect started by an action and sends its outcome back, unless the lease has ended. */
    const reply = <T>(context: LeaseContext, fn: (rec: LeaseRecord) => Promise<T>, toEvent: (outcome: T) => LeaseEvent): void => {
      const rec = this.leases.get(context.leaseId);
      if (!rec) return;
      void fn(rec).then((outcome) => {
        if (rec.actor.getSnapshot().status === 'active') rec.actor.send(toEvent(outcome));
      });
    };
    this.machine = leaseMachine.provide({
      actors: {
        reconcileLease: effect((rec) => this.reconcileLease(rec)),
        enqueue: effect((rec) => this.enqueue(rec)),
        renewTicket: effect((rec, input) => this.renewTicket(rec, input)),
        renewLease: effect((rec, input) => this.renewLease(rec, input)),
      },
      actions: {
        createLease: ({ context }) => {
          const attempt = context.attempt;
          reply(context, (rec) => this.createLease(rec), (outcome) => ({ type: 'CREATE_RESULT', attempt, outcome }));
        },
        releaseLease: ({ context }) => {
          const attempt = context.attempt;
          reply(context, (rec) => this.releaseLease(rec, context), (outcome) => ({ type: 'RELEASE_RESULT', attempt, outcome }));
        },
        dropTicket: ({ context }) => {
          if (context.ticket !== undefined) void this.store.delete(this.queueKey(context.name, context.leaseId)).catch(() => undefined);
        },
        abandon: ({ context }) => {
          if (context.attemptAtMs >= 0) void this.abandon(context.name, context.leaseId);
        },
      },
    });
  }

  // --- keys ---------------------------------------------------------------------------------

  holderKey(name: string): string {
    return `${this.o.prefix}.${name}.holder`;
  }
  lockPattern(name: string): string {
    return `${this.o.prefix}.${name}.>`;
  }
  queuePrefix(name: string): string {
    return `${this.o.prefix}.${name}.q.`;
  }
  queueKey(name: string, leaseId: string): string {
    return `${this.queuePrefix(name)}${leaseId}`;
  }
  get clock(): Clock {
    return this.o.clock;
  }
  get kv(): KvStore {
    return this.store;
  }
  /** The view saw the lock's holder key: remember whether it is a release marker, and at which revision. */
  noteHolder(name: string, entry: KvEntry | undefined): boolean {
    const free = entry === undefined || decodeRecord(entry.value)?.free === true;
    if (entry && free) this.freeAt.set(name, entry.revision);
    else this.freeAt.delete(name);
    return free;
  }

  // --- public API ---------------------------------------------------------------------------

  acquire(name: string, options: AcquireOptions = {}): Promise<Lease> {
    if (typeof name !== 'string' || !NAME.test(name)) {
      return Promise.reject(new InvalidNameError(String(name), 'a lock name may only contain letters, digits, -, _ and ='));
    }
    let ttlMs: number;
    let waitMs: number;
    try {
      ttlMs = options.ttlMs === undefined ? this.o.ttlMs : positiveMs('ttlMs', options.ttlMs);
      waitMs = options.waitMs ?? DEFAULT_LOCK_WAIT_MS;
      if (typeof waitMs !== 'number' || Number.isNaN(waitMs) || waitMs < 0) throw new RangeError(`acquire option waitMs must be a number ≥ 0 (ms) or Infinity, got ${String(waitMs)}`);
      if (this.o.renewIntervalMs !== undefined && this.o.renewIntervalMs >= ttlMs) {
        throw new RangeError(`acquire option ttlMs (${ttlMs}) must exceed the client's renewIntervalMs (${this.o.renewIntervalMs})`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.closed) return Promise.reject(new AbortedError(`acquire of lock '${name}'`, 'the lock client is closed'));
    if (options.signal?.aborted) return Promise.reject(new AbortedError(`acquire of lock '${name}'`, options.signal.reason));
    const renewIntervalMs = this.o.renewIntervalMs ?? ttlMs / 3;
    const leaseId = this.o.rng.hex(16);
    const actor = createActor(this.machine, {
      clock: this.o.clock,
      input: { name, owner: this.owner, leaseId, ttlMs, renewIntervalMs, retryDelayMs: Math.min(this.o.retryDelayMs, renewIntervalMs), waitMs },
    });
    const rec: LeaseRecord = { name, leaseId, ttlMs, actor, releaseFirstAtMs: undefined };
    this.leases.set(leaseId, rec);
    const view = this.views.get(name);
    const contended = view !== undefined && view.contended();

    return new Promise<Lease>((resolve, reject) => {
      let lease: LeaseImpl | undefined;
      const onAbort = (): void => actor.send({ type: 'ABORT', reason: describe(options.signal?.reason ?? 'aborted') });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      let wasWaiting = false;
      // The lease's expiry by this client's clock: when it passes without a renewal, the lease is lost.
      let expiryTimer: TimerId | undefined;
      let expiryFor = -1;
      actor.subscribe({
        next: (snap) => {
          const top = topState(snap.value);
          const live = top === 'held' || top === 'renewing';
          if (!live || snap.context.confirmedAtMs !== expiryFor) {
            if (expiryTimer !== undefined) this.o.clock.clearTimeout(expiryTimer);
            expiryTimer = undefined;
            expiryFor = -1;
          }
          if (live && expiryTimer === undefined) {
            expiryFor = snap.context.confirmedAtMs;
            const dueAtMs = snap.context.confirmedAtMs + snap.context.ttlMs;
            const arm = (): void => {
              expiryTimer = this.o.clock.setTimeout(() => {
                if (this.o.clock.now() < dueAtMs) return arm(); // a timer that fired early
                expiryTimer = undefined;
                if (actor.getSnapshot().status === 'active') actor.send({ type: 'EXPIRY', nowMs: this.o.clock.now() });
              }, Math.max(0, dueAtMs - this.o.clock.now()));
            };
            arm();
          }
          const waiting = top === 'pending' && snap.matches({ pending: 'waiting' });
          if (waiting && !wasWaiting) this.viewFor(name, renewIntervalMs).addWaiter(rec);
          if (!waiting && wasWaiting) this.views.get(name)?.removeWaiter(rec);
          wasWaiting = waiting;
          if (waiting) this.views.get(name)?.evaluate();
          if (lease === undefined && top !== 'idle' && top !== 'pending' && top !== 'failed') {
            options.signal?.removeEventListener('abort', onAbort);
            lease = new LeaseImpl(this.owner, rec, snap.context);
            resolve(lease);
          }
          if (lease) lease.update(snap, top);
          if (snap.status === 'done') {
            this.leases.delete(leaseId);
            if (top === 'failed') {
              options.signal?.removeEventListener('abort', onAbort);
              const c = snap.context;
              reject(c.failure === 'aborted' ? new AbortedError(`acquire of lock '${name}'`, c.reason) : new LockTimeoutError(name, waitMs));
            }
          }
        },
      });
      actor.start();
      actor.send({ type: 'ACQUIRE', contended });
    });
  }

  async release(name: string, token: number): Promise<void> {
    if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidNameError(String(name), 'a lock name may only contain letters, digits, -, _ and =');
    if (!Number.isSafeInteger(token) || token <= 0) throw new RangeError(`release token must be a positive integer, got ${String(token)}`);
    for (const rec of this.leases.values()) {
      if (rec.name === name && rec.actor.getSnapshot().context.token === token) {
        const snap = rec.actor.getSnapshot();
        if (snap.matches('held') || snap.matches('renewing') || snap.matches('releasing')) {
          const done = waitForEnd(rec.actor);
          rec.actor.send({ type: 'RELEASE' });
          const end = await done;
          if (end.matches('lost')) throw new LockLostError(name, token, end.context.reason);
          return;
        }
      }
    }
    const key = this.holderKey(name);
    const entry = await this.store.get(key);
    if (entry === undefined || decodeRecord(entry.value)?.free) return;
    const r = decodeRecord(entry.value);
    const holding = r?.token ?? entry.revision;
    if (r?.owner !== this.owner || holding !== token) throw new NotLockOwnerError(name, this.owner, token, r?.owner ?? '(unknown)');
    try {
      await this.store.delete(key, { expectedRevision: entry.revision });
    } catch (err) {
      if (!isKvConflictError(err)) throw err;
      return this.release(name, token); // renewed meanwhile by a lease of ours elsewhere: look again
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ends: Promise<unknown>[] = [];
    for (const rec of Array.from(this.leases.values())) {
      const snap = rec.actor.getSnapshot();
      if (snap.status !== 'active') continue;
      ends.push(waitForEnd(rec.actor));
      if (snap.matches('pending') || snap.matches('idle')) rec.actor.send({ type: 'ABORT', reason: 'the lock client is closed' });
      else rec.actor.send({ type: 'RELEASE' });
    }
    // Bounded: a store that never answers must not hold close() up past the point where every lease
    // has expired anyway.
    let capMs = 0;
    for (const rec of this.leases.values()) capMs = Math.max(capMs, rec.ttlMs);
    let cap: TimerId | undefined;
    await Promise.race([
      Promise.allSettled(ends),
      new Promise<void>((resolve) => { cap = this.o.clock.setTimeout(resolve, capMs); }),
    ]);
    this.o.clock.clearTimeout(cap);
    for (const v of this.views.values()) v.stop();
    this.views.clear();
  }

  /** A view idle for `LOCK_VIEW_IDLE_MS`: stop it. */
  dropView(name: string, view: LockView): void {
    view.stop();
    if (this.views.get(name) === view) this.views.delete(name);
  }

  // --- effects ------------------------------------------------------------------------------

  private viewFor(name: string, pollIntervalMs: number): LockView {
    let view = this.views.get(name);
    if (!view) {
      view = new LockView(this, name, this.o.pollIntervalMs ?? pollIntervalMs);
      this.views.set(name, view);
    }
    return view;
  }

  private record(rec: LeaseRecord, token?: number): Uint8Array {
    return encodeRecord(token === undefined ? { owner: this.owner, leaseId: rec.leaseId } : { owner: this.owner, leaseId: rec.leaseId, token });
  }

  /**
   * Take the lock: a revision-checked `update` of a release marker when one is known (one round
   * trip, where NATS KV's `create` of a deleted key takes three), else `create`; a `create` that
   * finds a release marker updates it.
   */
  private async createLease(rec: LeaseRecord): Promise<CreateOutcome> {
    const key = this.holderKey(rec.name);
    const atMs = this.o.clock.now();
    const claim = async (revision: number): Promise<CreateOutcome> => {
      this.freeAt.delete(rec.name);
      return { kind: 'created', revision: await this.store.update(key, this.record(rec), revision), atMs };
    };
    try {
      const free = this.freeAt.get(rec.name);
      if (free !== undefined) {
        try {
          return await claim(free);
        } catch (err) {
          if (!isKvConflictError(err)) throw err;
        }
      }
      try {
        return { kind: 'created', revision: await this.store.create(key, this.record(rec), { ttlMs: rec.ttlMs }), atMs };
      } catch (err) {
        if (!isKvConflictError(err)) throw err;
      }
      const entry = await this.store.get(key);
      if (entry === undefined || !decodeRecord(entry.value)?.free) return { kind: 'taken' };
      return await claim(entry.revision);
    } catch (err) {
      if (isKvConflictError(err)) return { kind: 'taken' };
      return { kind: 'unknown', atMs, reason: describe(err) };
    }
  }

  private async reconcileLease(rec: LeaseRecord): Promise<ReconcileOutcome> {
    try {
      const entry = await this.store.get(this.holderKey(rec.name));
      const r = entry && decodeRecord(entry.value);
      if (entry === undefined || r?.free) return { kind: 'free' };
      if (r?.leaseId === rec.leaseId) return { kind: 'mine', token: r.token ?? entry.revision, revision: entry.revision };
      return { kind: 'taken' };
    } catch (err) {
      return { kind: 'unknown', reason: describe(err) };
    }
  }

  private async enqueue(rec: LeaseRecord): Promise<TicketOutcome> {
    const key = this.queueKey(rec.name, rec.leaseId);
    try {
      const revision = await this.store.create(key, this.record(rec), { ttlMs: rec.ttlMs });
      return { kind: 'queued', ticket: revision, revision };
    } catch (err) {
      if (!isKvConflictError(err)) return { kind: 'unknown', reason: describe(err) };
      return this.ownTicket(rec, key); // an earlier attempt with no answer did create it
    }
  }

  private async ownTicket(rec: LeaseRecord, key: string): Promise<TicketOutcome> {
    try {
      const entry = await this.store.get(key);
      if (entry === undefined) return { kind: 'unknown', reason: 'queue entry vanished' };
      return { kind: 'queued', ticket: decodeRecord(entry.value)?.token ?? entry.revision, revision: entry.revision };
    } catch (err) {
      return { kind: 'unknown', reason: describe(err) };
    }
  }

  private async renewTicket(rec: LeaseRecord, input: LeaseEffectInput): Promise<TicketOutcome> {
    const key = this.queueKey(rec.name, rec.leaseId);
    try {
      const revision = await this.store.update(key, this.record(rec, input.ticket), input.ticketRevision!);
      return { kind: 'queued', ticket: input.ticket!, revision };
    } catch (err) {
      if (!isKvConflictError(err)) return { kind: 'unknown', reason: describe(err) };
      // Expired (this client was too slow): queue again, at the back.
      const again = await this.enqueue(rec);
      return again;
    }
  }

  private async renewLease(rec: LeaseRecord, input: LeaseEffectInput): Promise<RenewOutcome> {
    const key = this.holderKey(rec.name);
    const atMs = this.o.clock.now();
    try {
      const revision = await this.store.update(key, this.record(rec, input.token), input.revision!);
      return { kind: 'renewed', revision, atMs };
    } catch (err) {
      if (!isKvConflictError(err)) return { kind: 'unknown', atMs, reason: describe(err) };
    }
    // Conflict: either an earlier renewal with no answer was applied, or the lease is gone.
    try {
      const entry = await this.store.get(key);
      const r = entry && decodeRecord(entry.value);
      if (!entry || r?.leaseId !== rec.leaseId || r.free) {
        return { kind: 'lost', reason: entry && !r?.free ? `the lock is held by '${r?.owner ?? '(unknown)'}'` : 'the lease expired' };
      }
      const revision = await this.store.update(key, this.record(rec, input.token), entry.revision);
      return { kind: 'renewed', revision, atMs };
    } catch (err) {
      return { kind: 'unknown', atMs, reason: describe(err) };
    }
  }

  /**
   * Give the lock up by replacing the lease with a release marker (revision-checked), not by
   * deleting it: the next holder then takes it with one `update` of the marker's revision. The
   * marker expires after the TTL like any lease; readers treat it as a free lock.
   */
  private async releaseLease(rec: LeaseRecord, input: Pick<LeaseContext, 'revision' | 'confirmedAtMs' | 'ttlMs'>): Promise<ReleaseOutcome> {
    const key = this.holderKey(rec.name);
    const atMs = this.o.clock.now();
    const tried = rec.releaseFirstAtMs !== undefined;
    rec.releaseFirstAtMs ??= atMs;
    // A key found missing after an attempt with no answer: released by us (then expired), or
    // expired before we got to it? Only the former if that attempt began while the lease was valid.
    const sentWhileValid = rec.releaseFirstAtMs < input.confirmedAtMs + input.ttlMs;
    const marker = encodeRecord({ owner: this.owner, leaseId: rec.leaseId, free: true });
    try {
      this.freeAt.set(rec.name, await this.store.update(key, marker, input.revision!));
      return { kind: 'released' };
    } catch (err) {
      if (!isKvConflictError(err)) return { kind: 'unknown', atMs, reason: describe(err) };
    }
    try {
      const entry = await this.store.get(key);
      const r = entry && decodeRecord(entry.value);
      if (!entry) return tried && sentWhileValid ? { kind: 'released' } : { kind: 'lost', reason: 'the lease had expired before the release' };
      if (r?.leaseId !== rec.leaseId) return { kind: 'lost', reason: r?.free ? 'the lease had expired before the release' : `the lock is held by '${r?.owner ?? '(unknown)'}'` };
      if (r.free) return { kind: 'released' }; // an earlier attempt with no answer did it
      this.freeAt.set(rec.name, await this.store.update(key, marker, entry.revision));
      return { kind: 'released' };
    } catch (err) {
      return { kind: 'unknown', atMs, reason: describe(err) };
    }
  }

  /** Best effort after giving up on a create of unknown outcome; the TTL is the backstop. */
  private async abandon(name: string, leaseId: string): Promise<void> {
    try {
      const entry = await this.store.get(this.holderKey(name));
      if (entry && decodeRecord(entry.value)?.leaseId === leaseId) await this.store.delete(this.holderKey(name), { expectedRevision: entry.revision });
    } catch {
      // the lease, if it is ours, expires on its own
    }
  }
}

/** The top-level state of a lease snapshot's value (`'held'`, `'pending'`, …). */
function topState(value: unknown): string {
  return typeof value === 'string' ? value : Object.keys(value as object)[0]!;
}

function waitForEnd(actor: Actor<typeof leaseMachine>): Promise<SnapshotFrom<typeof leaseMachine>> {
  return new Promise((resolve) => {
    const check = (snap: SnapshotFrom<typeof leaseMachine>): boolean => {
      if (snap.status !== 'active') {
        resolve(snap);
        return true;
      }
      return false;
    };
    if (check(actor.getSnapshot())) return;
    const sub = actor.subscribe((snap) => {
      if (check(snap)) sub.unsubscribe();
    });
  });
}

class LeaseImpl implements Lease {
  readonly name: string;
  readonly owner: string;
  readonly leaseId: string;
  readonly token: number;
  readonly actor: Actor<typeof leaseMachine>;
  private controller: AbortController | undefined;
  private readonly listeners = new Set<(err: LockLostError) => void>();
  private ctx: LeaseContext;
  private current: LeaseStatus = 'held';
  private lostError: LockLostError | undefined;

  constructor(owner: string, private readonly rec: LeaseRecord, ctx: LeaseContext) {
    this.name = rec.name;
    this.owner = owner;
    this.leaseId = rec.leaseId;
    this.token = ctx.token!;
    this.actor = rec.actor;
    this.ctx = ctx;
  }

  get status(): LeaseStatus {
    return this.current;
  }
  get expiresAtMs(): number {
    return this.ctx.confirmedAtMs + this.ctx.ttlMs;
  }
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.lostError && !this.controller.signal.aborted) this.controller.abort(this.lostError);
    return this.controller.signal;
  }

  update(snap: SnapshotFrom<typeof leaseMachine>, top: string): void {
    this.ctx = snap.context;
    const next = top as LeaseStatus; // held | renewing | releasing | released | lost once granted
    if (next === this.current) return;
    this.current = next;
    if (next === 'lost') {
      this.lostError = new LockLostError(this.name, this.token, snap.context.reason);
      this.controller?.abort(this.lostError);
      for (const l of Array.from(this.listeners)) {
        try {
          l(this.lostError);
        } catch {
          // a listener's failure is its own
        }
      }
      this.listeners.clear();
    }
  }

  onLost(listener: (err: LockLostError) => void): () => void {
    if (this.lostError) {
      const err = this.lostError;
      queueMicrotask(() => listener(err));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async release(): Promise<void> {
    if (this.current === 'released') return;
    if (this.current === 'lost') throw this.lostError!;
    const end = waitForEnd(this.rec.actor);
    this.rec.actor.send({ type: 'RELEASE' });
    const snap = await end;
    if (snap.matches('lost')) throw this.lostError ?? new LockLostError(this.name, this.token, snap.context.reason);
  }
}
