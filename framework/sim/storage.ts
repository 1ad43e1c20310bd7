/**
 * Simulated durable storage for one node: what a process writes survives a crash only once it has
 * been synced — the fsync discipline a Raft log and term/vote record depend on.
 *
 * Model: a key → bytes store with a page cache. `write`/`delete` change what `read` sees at once
 * but are only durable after `sync()`. On `crash()`:
 * - `'lose'` (the default): every unsynced write is lost;
 * - `'random-prefix'`: a seeded random prefix of the unsynced writes survives (k of n, k uniform in
 *   [0, n], drawn from the given `Rng`) — writes reach the disk in the order they were made, so a
 *   later write never survives without every earlier one, as with an ordered journal. Nothing is
 *   torn inside one write.
 *
 * A crash fences the handle it was called on (writes, deletes and syncs made through it later are
 * ignored — the process that held it is gone, and a write still queued in one of its microtasks
 * must not reach the disk) and returns a new handle for the restarted process.
 */
import { ErrorCode, TroupeError } from '../errors.ts';
import type { Rng } from '../clock.ts';

/** What happens to unsynced writes when the node crashes (see the module docs). */
export type UnsyncedOnCrash = 'lose' | 'random-prefix';

/** Options of {@link SimStorage.crash}. */
export interface StorageCrashOptions {
  /** @default 'lose' */
  unsynced?: UnsyncedOnCrash;
  /** Required for `'random-prefix'`: where the surviving prefix length comes from. */
  rng?: Rng;
}

/** What a crash did to the unsynced writes. */
export interface StorageCrashReport {
  /** Unsynced writes (and deletes) that were lost. */
  readonly lost: number;
  /** Unsynced writes (and deletes) that reached the disk anyway. */
  readonly survived: number;
  /** The handle the restarted process uses: the durable contents, nothing unsynced. */
  readonly storage: SimStorage;
}

/** One process's view of a node's disk. */
export interface SimStorage {
  /** The current value (unsynced writes included), or undefined. Returns a copy. */
  read(key: string): Uint8Array | undefined;
  /** Write `bytes` under `key` (copied); durable only after {@link sync}. */
  write(key: string, bytes: Uint8Array): void;
  /** Remove `key`; durable only after {@link sync}. */
  delete(key: string): void;
  /** Make every earlier write and delete durable. */
  sync(): void;
  /** Keys with a value (unsynced included), sorted; only those starting with `prefix` when given. */
  keys(prefix?: string): string[];
  /** Writes and deletes not yet synced. */
  readonly unsyncedCount: number;
  /** True once the process holding this handle crashed: the handle no longer changes the disk. */
  readonly crashed: boolean;
  /** Operations ignored because they came after the crash (a dead process's late writes). */
  readonly fencedCount: number;
  /** Simulate the process crashing: unsynced writes are lost (see the module docs); returns the next handle. */
  crash(options?: StorageCrashOptions): StorageCrashReport;
}

/** `crash()` called on a handle whose process already crashed (use the handle that crash returned). */
export class StorageCrashedError extends TroupeError {
  readonly code = ErrorCode.StorageCrashed;
  readonly retryable = false;
  constructor() {
    super('this storage handle already crashed; use the handle its crash() returned');
  }
}

type Op = { readonly key: string; readonly value: Uint8Array | undefined };

/**
 * An empty simulated disk and the handle of its first process.
 * @example
 * const disk = createSimStorage();
 * disk.write('term', enc('3')); disk.sync();
 * disk.write('vote', enc('n2'));                 // not synced
 * const { storage } = disk.crash();
 * storage.read('term'); // '3'  —  storage.read('vote'): undefined
 */
export function createSimStorage(): SimStorage {
  return new StorageHandle(new Map());
}

class StorageHandle implements SimStorage {
  private readonly cache: Map<string, Uint8Array>;
  private unsynced: Op[] = [];
  private dead = false;
  private fenced = 0;

  constructor(private readonly durable: Map<string, Uint8Array>) {
    this.cache = new Map(durable);
  }

  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  get crashed(): boolean {
    return this.dead;
  }

  get fencedCount(): number {
    return this.fenced;
  }

  read(key: string): Uint8Array | undefined {
    const v = this.dead ? this.durable.get(key) : this.cache.get(key);
    return v === undefined ? undefined : new Uint8Array(v);
  }

  write(key: string, bytes: Uint8Array): void {
    checkKey(key);
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`storage write of '${key}' needs a Uint8Array`);
    if (this.dead) {
      this.fenced++;
      return;
    }
    const copy = new Uint8Array(bytes);
    this.cache.set(key, copy);
    this.unsynced.push({ key, value: copy });
  }

  delete(key: string): void {
    checkKey(key);
    if (this.dead) {
      this.fenced++;
      return;
    }
    this.cache.delete(key);
    this.unsynced.push({ key, value: undefined });
  }

  sync(): void {
    if (this.dead) {
      this.fenced++;
      return;
    }
    apply(this.durable, this.unsynced);
    this.unsynced = [];
  }

  keys(prefix = ''): string[] {
    const source = this.dead ? this.durable : this.cache;
    return [...source.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  crash(options: StorageCrashOptions = {}): StorageCrashReport {
    if (this.dead) throw new StorageCrashedError();
    const mode = options.unsynced ?? 'lose';
    const n = this.unsynced.length;
    let survived = 0;
    if (mode === 'random-prefix') {
      if (options.rng === undefined) throw new TypeError("storage crash option rng is required for unsynced: 'random-prefix'");
      survived = options.rng.int(n + 1);
    } else if (mode !== 'lose') {
      throw new RangeError(`storage crash option unsynced must be 'lose' or 'random-prefix', got ${String(mode)}`);
    }
    apply(this.durable, this.unsynced.slice(0, survived));
    this.unsynced = [];
    this.dead = true;
    return { lost: n - survived, survived, storage: new StorageHandle(this.durable) };
  }
}

function apply(durable: Map<string, Uint8Array>, ops: readonly Op[]): void {
  for (const op of ops) {
    if (op.value === undefined) durable.delete(op.key);
    else durable.set(op.key, op.value);
  }
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('a storage key must be a non-empty string');
}
