/**
 * An in-memory `KvStore` with the same semantics as the NATS KV one (revisions global and
 * increasing, soft deletes, bounded history, TTL renewed by every write, watches that deliver
 * current values first), for unit tests and the simulator. Time comes only from the injected
 * Clock: expiry is evaluated against `clock.now()` whenever a key is read, so a simulated clock
 * drives it exactly. Every store instance is isolated; nothing is shared between instances.
 */
import { realClock } from '../clock.ts';
import type { Clock } from '../clock.ts';
import { KvConflictError, StoreUnavailableError } from '../errors.ts';
import {
  assertValidKey,
  assertValidKeyPattern,
  assertValidRevision,
  assertValidTtl,
  keyMatches,
  MAX_KV_HISTORY,
} from './store.ts';
import type { KvCreateOptions, KvDeleteOptions, KvEntry, KvStore, KvWatch, KvWatchOptions } from './store.ts';
import { createWatchDelivery, type WatchDelivery } from './watch-delivery.ts';

/** Default name of a memory store (it only appears in error messages). */
export const DEFAULT_MEMORY_KV_NAME = 'memory';
/** Default revisions retained per key, as for a NATS KV bucket. */
export const DEFAULT_MEMORY_KV_HISTORY = 1;

/** Options of {@link createMemoryKvStore}. */
export interface MemoryKvStoreOptions {
  /**
   * Time source for TTL and `createdMs`.
   * @default realClock()
   */
  clock?: Clock;
  /**
   * Shown in errors (`memory:<name>`).
   * @default 'memory'
   */
  name?: string;
  /**
   * Revisions retained per key (deletes count), what `watch(…, { includeHistory: true })` replays.
   * @default 1
   */
  history?: number;
  /**
   * TTL of keys that were not created with one (including keys first written by `put`), like a
   * NATS KV bucket's max age. Undefined: such keys never expire.
   */
  ttlMs?: number;
}

/** A memory store, plus a switch that simulates losing the store. */
export interface MemoryKvStore extends KvStore {
  /**
   * `false`: every call (not `close`) rejects with a retryable `StoreUnavailableError` until it is
   * set back to `true` — for testing "store unreachable" paths. Watches stay registered; they see
   * nothing while no write can happen.
   */
  setAvailable(available: boolean): void;
}

interface ResolvedMemoryOptions {
  clock: Clock;
  name: string;
  history: number;
  ttlMs: number | undefined;
}

function resolveMemoryKvOptions(options: MemoryKvStoreOptions = {}): ResolvedMemoryOptions {
  const { clock = realClock(), name = DEFAULT_MEMORY_KV_NAME, history = DEFAULT_MEMORY_KV_HISTORY, ttlMs } = options;
  if (typeof name !== 'string' || name.length === 0) throw new RangeError(`memory KV store option name must be a non-empty string, got ${String(name)}`);
  if (!Number.isInteger(history) || history < 1 || history > MAX_KV_HISTORY) {
    throw new RangeError(`memory KV store option history must be an integer in [1, ${MAX_KV_HISTORY}], got ${String(history)}`);
  }
  if (ttlMs !== undefined) assertValidTtl('memory KV store option ttlMs', ttlMs);
  return { clock, name, history, ttlMs };
}

/**
 * A fresh, empty in-memory store.
 * @example
 * const clock = simulatedClock();
 * const store = createMemoryKvStore({ clock });
 * await store.create('leader', enc('a'), { ttlMs: 5_000 });
 * clock.increment(5_000); // the lease lapses: get('leader') now resolves to undefined
 */
export function createMemoryKvStore(options?: MemoryKvStoreOptions): MemoryKvStore {
  return new MemoryStore(resolveMemoryKvOptions(options));
}

interface StoredRevision {
  readonly key: string;
  readonly value: Uint8Array;
  readonly revision: number;
  readonly operation: 'put' | 'delete';
  readonly createdMs: number;
  readonly expiresAtMs: number | undefined;
}

interface KeyRecord {
  /** Retained revisions, oldest first; the last one is the key's current state. */
  revisions: StoredRevision[];
  /** TTL applied to every write of this key until it is deleted or expires. */
  ttlMs: number | undefined;
}

const EMPTY = new Uint8Array(0);

function toEntry(rev: StoredRevision): KvEntry {
  return {
    key: rev.key,
    value: new Uint8Array(rev.value),
    revision: rev.revision,
    operation: rev.operation,
    createdMs: rev.createdMs,
  };
}

class MemoryStore implements MemoryKvStore {
  readonly kind = 'memory';
  private readonly records = new Map<string, KeyRecord>();
  private readonly watchers = new Set<WatchDelivery>();
  private lastRevision = 0;
  private available = true;
  private closed = false;

  constructor(private readonly options: ResolvedMemoryOptions) {}

  private get label(): string {
    return `memory:${this.options.name}`;
  }

  setAvailable(available: boolean): void {
    this.available = available;
  }

  /** Every operation's entry check; throwing inside an async method rejects its promise. */
  private guard(): void {
    if (this.closed) throw new StoreUnavailableError(this.label, 'the store is closed', { retryable: false });
    if (!this.available) throw new StoreUnavailableError(this.label, 'unavailable (setAvailable(false))');
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.guard();
    assertValidKey(key);
    const current = this.current(key);
    return current?.operation === 'put' ? toEntry(current) : undefined;
  }

  async create(key: string, value: Uint8Array, opts?: KvCreateOptions): Promise<number> {
    this.guard();
    assertValidKey(key);
    if (opts?.ttlMs !== undefined) assertValidTtl('create option ttlMs', opts.ttlMs);
    const current = this.current(key);
    if (current?.operation === 'put') throw new KvConflictError(key, undefined, current.revision);
    return this.write(key, 'put', value, { ttlMs: opts?.ttlMs ?? this.options.ttlMs });
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<number> {
    this.guard();
    assertValidKey(key);
    assertValidRevision('update expectedRevision', expectedRevision);
    // Like NATS KV, the comparison is with the key's last revision, a delete marker included.
    const current = this.current(key);
    if (current?.revision !== expectedRevision) throw new KvConflictError(key, expectedRevision, current?.revision);
    return this.write(key, 'put', value);
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.guard();
    assertValidKey(key);
    return this.write(key, 'put', value);
  }

  async delete(key: string, opts?: KvDeleteOptions): Promise<void> {
    this.guard();
    assertValidKey(key);
    const expected = opts?.expectedRevision;
    if (expected !== undefined) assertValidRevision('delete option expectedRevision', expected);
    const current = this.current(key);
    if (expected !== undefined && current?.revision !== expected) throw new KvConflictError(key, expected, current?.revision);
    if (current?.operation !== 'put') return;
    this.write(key, 'delete', EMPTY);
  }

  async watch(keyOrPattern: string, onEntry: (entry: KvEntry) => void, opts?: KvWatchOptions): Promise<KvWatch> {
    this.guard();
    assertValidKeyPattern(keyOrPattern);
    if (typeof onEntry !== 'function') throw new TypeError('watch needs an onEntry function');
    // The snapshot is taken and the watcher registered in one synchronous step, so no write can
    // fall between "current values" and "changes".
    const initial: StoredRevision[] = [];
    for (const key of Array.from(this.records.keys())) {
      if (!keyMatches(keyOrPattern, key)) continue;
      const record = this.prune(key);
      if (!record) continue;
      if (opts?.includeHistory) {
        initial.push(...record.revisions);
      } else {
        const last = record.revisions[record.revisions.length - 1]!;
        if (last.operation === 'put') initial.push(last);
      }
    }
    initial.sort((a, b) => a.revision - b.revision);
    const watcher = createWatchDelivery(keyOrPattern, initial.map(toEntry), onEntry, opts?.onError, (w) => this.watchers.delete(w));
    this.watchers.add(watcher);
    return watcher;
  }

  async keys(pattern = '>'): Promise<string[]> {
    this.guard();
    assertValidKeyPattern(pattern);
    const out: string[] = [];
    for (const key of Array.from(this.records.keys())) {
      if (keyMatches(pattern, key) && this.current(key)?.operation === 'put') out.push(key);
    }
    return out.sort();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of Array.from(this.watchers)) w.stop();
  }

  // --- internals --------------------------------------------------------------------------

  /** Drops revisions whose TTL has passed; returns the record, or undefined when nothing is left. */
  private prune(key: string): KeyRecord | undefined {
    const record = this.records.get(key);
    if (!record) return undefined;
    const now = this.options.clock.now();
    const kept = record.revisions.filter((r) => r.expiresAtMs === undefined || r.expiresAtMs > now);
    if (kept.length === 0) {
      this.records.delete(key);
      return undefined;
    }
    if (kept.length !== record.revisions.length) record.revisions = kept;
    return record;
  }

  private current(key: string): StoredRevision | undefined {
    const record = this.prune(key);
    return record?.revisions[record.revisions.length - 1];
  }

  /** Appends a revision; `init.ttlMs` (re)sets the key's TTL, otherwise the key keeps its own. */
  private write(key: string, operation: 'put' | 'delete', value: Uint8Array, init?: { ttlMs: number | undefined }): number {
    if (!(value instanceof Uint8Array)) throw new TypeError(`the value of '${key}' must be a Uint8Array`);
    let record = this.prune(key);
    if (!record) {
      record = { revisions: [], ttlMs: this.options.ttlMs };
      this.records.set(key, record);
    }
    if (init) record.ttlMs = init.ttlMs;
    // A key written again after its deletion starts afresh, with the store's default TTL.
    else if (record.revisions[record.revisions.length - 1]?.operation === 'delete') record.ttlMs = this.options.ttlMs;
    const now = this.options.clock.now();
    const rev: StoredRevision = {
      key,
      value: operation === 'put' ? new Uint8Array(value) : EMPTY, // a copy: the caller may reuse its buffer
      revision: ++this.lastRevision,
      operation,
      createdMs: now,
      expiresAtMs: record.ttlMs === undefined ? undefined : now + record.ttlMs,
    };
    record.revisions.push(rev);
    if (record.revisions.length > this.options.history) record.revisions.splice(0, record.revisions.length - this.options.history);
    for (const w of Array.from(this.watchers)) {
      if (keyMatches(w.pattern, key)) w.offer(toEntry(rev));
    }
    return rev.revision;
  }
}
