/**
 * The key-value contract the coordination patterns (circuit-breaker sharing, leader election,
 * distributed lock) are written against, so that they never talk to NATS directly and run
 * unchanged over NATS JetStream KV, over troupe's own Raft KV, in unit tests and in the simulator.
 *
 * Semantics every implementation honours (checked by one conformance suite in
 * `test/helpers/store-conformance.ts`):
 *
 * - **Keys** are NATS-KV keys: one or more of `-/_=.a-zA-Z0-9`, no leading or trailing dot, no
 *   empty token (`a..b`). Anything else is rejected with `InvalidNameError` before the store is
 *   contacted.
 * - **Revisions** are positive integers (0 is never used) that increase with every write to the
 *   store; they are global, not per key (NATS KV uses the stream sequence). Compare them only for
 *   equality (compare-and-set) or for order among the revisions of ONE key; never do arithmetic
 *   on them — gaps are normal.
 * - **Writes are linearizable per key.** `create` succeeds for exactly one of many concurrent
 *   callers; of several `update`s with the same `expectedRevision` exactly one wins and the others
 *   fail with `KvConflictError`.
 * - **Deletes are soft**: a deleted key reads as missing, is left out of `keys()`, and may be
 *   created again. Deleting a missing key is a no-op.
 * - **TTL.** A key created with `ttlMs` disappears (reads as missing, may be created again) once
 *   `ttlMs` has passed since its LAST write: `update` and `put` renew it — which is what a lease
 *   holder wants. Expiry is NOT delivered to watchers (NATS KV before nats-server 2.11 has no
 *   expiry markers); a pattern that must notice an expired key polls `get`. See each
 *   implementation for how it realises TTL (the NATS KV store on nats-server 2.9/2.10 only has a
 *   bucket-wide max age).
 * - **Failures** are typed: `KvConflictError` (lost compare-and-set, not retryable),
 *   `StoreUnavailableError` (unreachable, timed out, or closed — the operation may or may not
 *   have been applied; retryable unless the store was closed), `InvalidNameError` (bad key or
 *   pattern) and `RangeError` (bad argument, e.g. a revision that is not a positive integer).
 *   No call waits longer than the store's configured timeout.
 */
import { InvalidNameError } from '../errors.ts';

/** One revision of one key, as read by `get` or delivered to a watcher. */
export interface KvEntry {
  readonly key: string;
  /** The stored bytes; empty for a `delete`. */
  readonly value: Uint8Array;
  /** Positive, increasing across the store; see the module docs for how to compare it. */
  readonly revision: number;
  /** `put` for a value, `delete` for a deletion (only watchers see those). */
  readonly operation: 'put' | 'delete';
  /** When the revision was written, in ms since the epoch of the store's clock (the server's wall clock for NATS KV). */
  readonly createdMs?: number;
}

/** Options of {@link KvStore.create}. */
export interface KvCreateOptions {
  /**
   * The key disappears `ttlMs` after its last write (a lease). Implementations may restrict the
   * values allowed: the NATS KV store needs it to equal its bucket's `ttlMs`.
   */
  ttlMs?: number;
}

/** Options of {@link KvStore.delete}. */
export interface KvDeleteOptions {
  /** Delete only if the key is at this revision; `KvConflictError` otherwise. */
  expectedRevision?: number;
}

/** Options of {@link KvStore.watch}. */
export interface KvWatchOptions {
  /**
   * Start with every retained revision of the matching keys (deletes included) instead of only
   * their current values. How much is retained is the store's `history` setting.
   * @default false
   */
  includeHistory?: boolean;
  /**
   * Told about trouble that does not end the watch: an exception thrown by `onEntry` (the watch
   * goes on with the next entry), or the watch ending because the store lost it.
   */
  onError?: (err: Error) => void;
}

/** A running watch. */
export interface KvWatch {
  /** Stop delivering. Idempotent; no entry is delivered after it returns. */
  stop(): void;
}

/**
 * A key-value store with compare-and-set and watches. Obtain one from a factory
 * (`createMemoryKvStore`, `createNatsKvStore`, `createRaftKvStore`); pattern code holds only this interface.
 * @example
 * const rev = await store.create('lock.orders', enc('node-a'), { ttlMs: 10_000 });
 * await store.update('lock.orders', enc('node-a'), rev); // renew the lease; KvConflictError if lost
 */
export interface KvStore {
  /** `'memory'`, `'nats-kv'`, or `'raft'` (troupe's own Raft: `createRaftKvStore` in `actors/raft/kv-store.ts`). */
  readonly kind: string;
  /** The current value, or undefined when the key is missing, deleted or expired. */
  get(key: string): Promise<KvEntry | undefined>;
  /** Write a key that has no live value; resolves to the new revision. `KvConflictError` if it has one. */
  create(key: string, value: Uint8Array, opts?: KvCreateOptions): Promise<number>;
  /** Compare-and-set: write only if the key is at `expectedRevision`; `KvConflictError` otherwise. */
  update(key: string, value: Uint8Array, expectedRevision: number): Promise<number>;
  /** Write unconditionally; resolves to the new revision. */
  put(key: string, value: Uint8Array): Promise<number>;
  /** Soft-delete. Idempotent; compare-and-set when `expectedRevision` is given. */
  delete(key: string, opts?: KvDeleteOptions): Promise<void>;
  /**
   * Call `onEntry` for the matching keys: first their current values (or retained history), in
   * revision order, then every change as it happens, in revision order per key. Entries arrive
   * asynchronously, never inside the call that wrote them. A `delete` is delivered only for a key
   * whose value this watch has delivered (deleting a missing key is a no-op here too).
   *
   * @param keyOrPattern an exact key, `'prefix.>'` for every key under `prefix.`, or `'>'` for all
   */
  watch(keyOrPattern: string, onEntry: (entry: KvEntry) => void, opts?: KvWatchOptions): Promise<KvWatch>;
  /** Keys with a live value matching `pattern` (same syntax as `watch`), sorted. @default '>' */
  keys(pattern?: string): Promise<string[]>;
  /** Stop every watch and release resources; later calls fail with a non-retryable `StoreUnavailableError`. Idempotent. */
  close(): Promise<void>;
}

/** Largest number of revisions per key a store may be asked to retain (NATS KV's limit). */
export const MAX_KV_HISTORY = 64;

const KEY_CHARS = /^[-/_=.a-zA-Z0-9]+$/;

/** Throws `InvalidNameError` unless `key` is a valid key (see the module docs). */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidNameError(String(key), 'a key must be a non-empty string');
  if (!KEY_CHARS.test(key)) throw new InvalidNameError(key, 'a key may only contain letters, digits and - / _ = .');
  if (key.startsWith('.') || key.endsWith('.')) throw new InvalidNameError(key, 'a key may not start or end with a dot');
  if (key.includes('..')) throw new InvalidNameError(key, 'a key may not contain an empty token (..)');
}

/** Throws `InvalidNameError` unless `pattern` is a key, `'>'`, or `'<key>.>'`. */
export function assertValidKeyPattern(pattern: string): void {
  if (pattern === '>') return;
  if (typeof pattern === 'string' && pattern.endsWith('.>')) {
    const prefix = pattern.slice(0, -2);
    try {
      assertValidKey(prefix);
    } catch {
      throw new InvalidNameError(pattern, "a key pattern is a key, '>' or '<key>.>'");
    }
    return;
  }
  try {
    assertValidKey(pattern);
  } catch (err) {
    if (typeof pattern === 'string' && /[*>]/.test(pattern)) {
      throw new InvalidNameError(pattern, "a key pattern is a key, '>' or '<key>.>' (no '*')");
    }
    throw err;
  }
}

/** True when `key` matches a pattern accepted by {@link assertValidKeyPattern}. */
export function keyMatches(pattern: string, key: string): boolean {
  if (pattern === '>') return true;
  if (pattern.endsWith('.>')) return key.startsWith(pattern.slice(0, -1));
  return key === pattern;
}

/** Throws `RangeError` naming `what` unless `revision` is a positive safe integer. */
export function assertValidRevision(what: string, revision: number): void {
  if (!Number.isSafeInteger(revision) || revision <= 0) {
    throw new RangeError(`${what} must be a positive integer revision, got ${String(revision)}`);
  }
}

/** Throws `RangeError` naming `what` unless `ms` is a positive finite number of milliseconds. */
export function assertValidTtl(what: string, ms: number): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new RangeError(`${what} must be a positive number of milliseconds, got ${String(ms)}`);
  }
}
