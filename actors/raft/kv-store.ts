/**
 * The `KvStore` contract (`framework/store/store.ts`) over troupe's own Raft — kind `'raft'` — so
 * that breaker sharing, leader election and the distributed lock run on a Raft group exactly as
 * they do on NATS JetStream KV.
 *
 * Two parts:
 * - a **replica** per Raft node (`startRaftKvReplica`, or `createRaftKvReplica` wired to a node's
 *   `onApply`): the replicated state machine of `kv-store-machine.ts`, fed the committed log in
 *   order, plus what a client needs from it — propose a write and wait until it is applied here,
 *   read after a ReadIndex barrier, serve watches;
 * - the **store** (`createRaftKvStore`), a client over the replicas of one group: it finds the
 *   leader (the replica whose node leads with the highest term), retries across leader changes
 *   with the same (client id, seq) so a write is applied at most once, and gives up with a
 *   retryable `StoreUnavailableError` once the store's `timeoutMs` has passed. The remote form
 *   (`createRemoteRaftKvStore` in `kv-store-service.ts`) is the same client on another route.
 *
 * **Consistency.** Writes are decided by the state machine in log order (compare-and-set is
 * linearizable); `get`, `keys` and the start of a `watch` go through ReadIndex on the leader, so
 * they are linearizable too.
 *
 * **TTL.** The leader stamps every write with its clock; the state machine keeps log time (the
 * largest stamp applied) and expires at log time, so replicas agree without reading a clock. Reads
 * evaluate expiry on the serving leader at `max(its clock, log time)` — no write is needed for an
 * expiry to be seen. This assumes the clocks of successive leaders drift apart by much less than
 * the TTLs used: a new leader whose clock lags may, for the lag, still see a key its predecessor
 * already reported expired. As everywhere, expiry is not delivered to watchers.
 *
 * **Watches** are served by the replica that answered their ReadIndex: current values (or retained
 * history) first, then every write as that replica applies it, in revision order. A watch ends by
 * `stop()` or `close()`, or — told to `onError` — when its replica installs a snapshot from the
 * leader (what it skipped is unknown); if its replica's node is lost the watch goes silent.
 *
 * **Log compaction.** `startRaftKvReplica` gives the node the state machine's `snapshot()` and
 * `restore()`; a snapshot holds the whole state, client sessions and log time included.
 */
import type { Clock, Rng } from '../../framework/clock.ts';
import { createRng, entropySeed } from '../../framework/clock.ts';
import { KvConflictError, NotLeaderError, StoreUnavailableError, TroupeError } from '../../framework/errors.ts';
import type { ActorSystem } from '../../framework/index.ts';
import {
  assertValidKey,
  assertValidKeyPattern,
  assertValidRevision,
  assertValidTtl,
  keyMatches,
} from '../../framework/store/store.ts';
import type { KvCreateOptions, KvDeleteOptions, KvEntry, KvStore, KvWatch, KvWatchOptions } from '../../framework/store/store.ts';
import { createWatchDelivery, type WatchDelivery } from '../../framework/store/watch-delivery.ts';
import {
  createKvStoreMachine,
  decodeKvStoreCommand,
  encodeKvStoreCommand,
  encodeKvStoreValue,
  type KvStoreCommand,
  type KvStoreMachine,
  type KvStoreMachineOptions,
  type KvStoreResult,
} from './kv-store-machine.ts';
import { startRaftNode, type RaftNodeHandle, type RaftNodeOptions } from './node.ts';
import type { Entry } from './types.ts';

/** One try at one replica; `cancel` when giving up on it (its result is then ignored). */
export interface ReplicaAttempt<T> {
  readonly result: Promise<T>;
  cancel(): void;
}

/** A write command before the leader stamps its clock on it. */
export type UnstampedKvStoreCommand = KvStoreCommand extends infer C ? (C extends KvStoreCommand ? Omit<C, 'nowMs'> : never) : never;

/** A linearizable read, as data (it may travel over the wire): `get` answers an entry or undefined, `keys` a sorted list. */
export type KvStoreQuery = { readonly kind: 'get'; readonly key: string } | { readonly kind: 'keys'; readonly pattern: string };

/** What a store needs from one replica — in this process, or behind a service actor (`kv-store-service.ts`). */
export interface KvStoreEndpoint {
  /** Propose a write (on the leader); resolves with the state machine's result. Rejects with `NotLeaderError`. */
  submit(command: UnstampedKvStoreCommand): ReplicaAttempt<KvStoreResult>;
  /** ReadIndex, then answer `query`. Rejects with `NotLeaderError`. */
  read(query: KvStoreQuery): ReplicaAttempt<KvEntry | undefined | string[]>;
  /** A linearizable start: the matching entries after a ReadIndex, then every write the replica applies. */
  watch(pattern: string, includeHistory: boolean, onEntry: (e: KvEntry) => void, onError: ((err: Error) => void) | undefined): ReplicaAttempt<KvWatch>;
}

/** How a store finds the leader among its endpoints. */
export interface KvStoreRoute {
  /** The endpoint to try next, skipping those that failed during this call; undefined: none now (pause, then start over). */
  next(skip: ReadonlySet<KvStoreEndpoint>): KvStoreEndpoint | undefined;
  /** `endpoint` refused: it is not the leader (`err.leader` may name the one that is). */
  refused(endpoint: KvStoreEndpoint, err: NotLeaderError): void;
  /** `endpoint` answered. */
  answered(endpoint: KvStoreEndpoint): void;
}

/** Answer `query` from `machine` at `nowMs`. */
export function runKvStoreQuery(machine: KvStoreMachine, query: KvStoreQuery, nowMs: number): KvEntry | undefined | string[] {
  return query.kind === 'get' ? machine.get(query.key, nowMs) : machine.keys(query.pattern, nowMs);
}

/** One replica of a Raft KV store: the state machine on one Raft node, and its client surface. */
export interface RaftKvReplica extends KvStoreEndpoint {
  readonly node: RaftNodeHandle;
  /** The state machine (read it; it changes only through `apply`). */
  readonly machine: KvStoreMachine;
  /** The last log index applied. */
  readonly appliedIndex: number;
  /** Snapshots restored into this replica (its own at start, and installed by a leader). */
  readonly restored: number;
  /** Feed committed entries (wire to the node's `onApply`); entries at or below `appliedIndex` are skipped (already applied). */
  apply(entries: readonly Entry[]): void;
  /** Forget the state, to rebuild it from index 1 (e.g. after losing it). Watches stay; they skip revisions they delivered. */
  reset(): void;
  /**
   * Replace the state with a snapshot taken at log index `index` (a node's own at start, or one a
   * leader installs). Watches served here end with `onError`: what the snapshot skipped is unknown.
   */
  restoreSnapshot(bytes: Uint8Array, index: number): void;
  /** Propose a write here (the leader), stamped with this node's clock; resolves when applied here. Rejects with `NotLeaderError`. */
  submit(command: UnstampedKvStoreCommand): ReplicaAttempt<KvStoreResult>;
  /** ReadIndex, wait until applied that far, then answer `query` at `max(clock, log time)`. Rejects with `NotLeaderError`. */
  read(query: KvStoreQuery): ReplicaAttempt<KvEntry | undefined | string[]>;
}

/** Options of {@link createRaftKvReplica}: the state machine's (equal on every replica) and the node's clock. */
export interface RaftKvReplicaOptions extends KvStoreMachineOptions {
  /** The clock of the replica's node: stamps writes, evaluates expiry on reads. */
  clock: Clock;
}

/**
 * A replica for the Raft node `node()` (a getter: the node is usually started after the replica,
 * with `onApply: (e) => replica.apply(e)`). Create one per node incarnation, or `reset()` it.
 */
export function createRaftKvReplica(node: () => RaftNodeHandle, options: RaftKvReplicaOptions): RaftKvReplica {
  const { clock, ...machineOptions } = options;
  let machine = createKvStoreMachine(machineOptions);
  let appliedIndex = 0;
  let restored = 0;
  const waiting = new Map<string, (r: KvStoreResult) => void>();
  let appliedWaiters: Array<{ index: number; run(): void }> = [];
  const watchers = new Set<WatchDelivery>();
  const readTime = (): number => Math.max(clock.now(), machine.logTimeMs);
  /** Run the reads that waited for the state machine to reach their index. */
  const wakeReaders = (): void => {
    if (!appliedWaiters.some((w) => w.index <= appliedIndex)) return;
    const due = appliedWaiters.filter((w) => w.index <= appliedIndex);
    appliedWaiters = appliedWaiters.filter((w) => w.index > appliedIndex);
    for (const w of due) w.run();
  };

  const notLeader = <T>(n: RaftNodeHandle): ReplicaAttempt<T> => ({ result: Promise.reject(new NotLeaderError(n.id, n.leader())), cancel: () => undefined });
  const afterReadIndex = <T>(query: () => T): ReplicaAttempt<T> => {
    const n = node();
    if (n.role() !== 'leader') return notLeader(n);
    let cancelled = false;
    const result = n.readIndex().then((index) => new Promise<T>((resolve, reject) => {
      const run = (): void => {
        if (cancelled) return;
        try {
          resolve(query());
        } catch (err) {
          reject(err);
        }
      };
      if (appliedIndex >= index) run();
      else appliedWaiters.push({ index, run });
    }));
    return { result, cancel: () => { cancelled = true; } };
  };

  return {
    get node() {
      return node();
    },
    get machine() {
      return machine;
    },
    get appliedIndex() {
      return appliedIndex;
    },
    get restored() {
      return restored;
    },

    apply(entries) {
      for (const e of entries) {
        // a node actor restarted by its supervisor applies its log again from index 1
        if (e.index <= appliedIndex) continue;
        appliedIndex = e.index;
        if (e.data.length === 0) continue; // a leader's no-op
        const cmd = decodeKvStoreCommand(e.data);
        if (!cmd) continue; // not ours: deterministic on every replica, so skipping is safe
        const { result, written } = machine.apply(cmd);
        if (written) for (const w of Array.from(watchers)) if (keyMatches(w.pattern, written.key)) w.offer(written);
        const id = `${cmd.client}#${cmd.seq}`;
        waiting.get(id)?.(result);
        waiting.delete(id);
      }
      wakeReaders();
    },

    reset() {
      machine = createKvStoreMachine(machineOptions);
      appliedIndex = 0;
    },

    restoreSnapshot(bytes, index) {
      machine.restore(bytes);
      appliedIndex = index;
      restored++;
      // a watch cannot be told what the snapshot skipped (deletes included): it ends
      for (const w of Array.from(watchers)) {
        w.lose(new StoreUnavailableError('raft', `the watch of '${w.pattern}' was lost: its replica installed a snapshot at index ${index}`));
      }
      wakeReaders();
    },

    submit(command) {
      const n = node();
      if (n.role() !== 'leader') return notLeader(n);
      const id = `${command.client}#${command.seq}`;
      let done: ((r: KvStoreResult) => void) | undefined;
      const result = new Promise<KvStoreResult>((resolve) => {
        done = resolve;
        waiting.set(id, resolve);
      });
      n.propose(encodeKvStoreCommand({ ...command, nowMs: clock.now() } as KvStoreCommand));
      return { result, cancel: () => { if (waiting.get(id) === done) waiting.delete(id); } };
    },

    read: (query) => afterReadIndex(() => runKvStoreQuery(machine, query, readTime())),

    watch(pattern, includeHistory, onEntry, onError) {
      // the initial entries are taken and the watcher registered in one synchronous step, so no
      // applied write can fall between "current values" and "changes"
      return afterReadIndex(() => {
        const w = createWatchDelivery(pattern, machine.entries(pattern, includeHistory, readTime()), onEntry, onError, (x) => watchers.delete(x));
        watchers.add(w);
        return w;
      });
    },
  };
}

/** Options of {@link startRaftKvReplica}: a Raft node's (its `onApply` and `snapshots` are the replica's) and the state machine's. */
export type StartRaftKvReplicaOptions = Omit<RaftNodeOptions, 'onApply' | 'snapshots'> & KvStoreMachineOptions & {
  /** Compact the log every this many applied entries (the node's `snapshots.everyEntries`). @default 10_000 */
  snapshotEveryEntries?: number;
};

/**
 * Start a Raft node on `system` with a KV store replica as its state machine: applied entries,
 * log compaction and snapshot restores are wired.
 * @example
 * const replicas = names.map((n, i) => startRaftKvReplica(systems[i], { name: 'kv', voters, rng: createRng(i), storage: memoryRaftStorage() }));
 * const store = createRaftKvStore({ replicas, clock });
 */
export function startRaftKvReplica(system: ActorSystem, options: StartRaftKvReplicaOptions): RaftKvReplica {
  const { history, ttlMs, sessionTtlMs, snapshotEveryEntries, ...nodeOptions } = options;
  const started: { node?: RaftNodeHandle } = {};
  const replica = createRaftKvReplica(() => {
    if (!started.node) throw new Error('the Raft node of this KV replica has not started');
    return started.node;
  }, { clock: system.clock, history, ttlMs, sessionTtlMs });
  started.node = startRaftNode(system, {
    ...nodeOptions,
    onApply: (entries) => replica.apply(entries),
    snapshots: { everyEntries: snapshotEveryEntries, take: () => replica.machine.snapshot(), restore: (data, index) => replica.restoreSnapshot(data, index) },
  });
  return replica;
}

/** Default of {@link RaftKvStoreOptions.timeoutMs}. */
export const DEFAULT_RAFT_KV_TIMEOUT_MS = 5_000;
/** Default of {@link RaftKvStoreOptions.attemptTimeoutMs}. */
export const DEFAULT_RAFT_KV_ATTEMPT_TIMEOUT_MS = 1_000;
/** Default of {@link RaftKvStoreOptions.backoffMs}. */
export const DEFAULT_RAFT_KV_BACKOFF_MS = 20;

/** Options of {@link createRaftKvStore}. */
export interface RaftKvStoreOptions {
  /**
   * The replicas of one Raft group. Read on every call: after a node restarts, the caller may put
   * its new replica in the same slot.
   */
  replicas: readonly RaftKvReplica[];
  /** The client's clock: bounds every call. */
  clock: Clock;
  /** Shown in errors (`raft:<name>`). @default 'raft' */
  name?: string;
  /** No call waits longer than this. @default 5_000 */
  timeoutMs?: number;
  /** One try at one replica before trying another. @default 1_000 */
  attemptTimeoutMs?: number;
  /** Pause before looking again when no replica leads (an election is on). @default 20 */
  backoffMs?: number;
  /** This client's session id in the state machine: unique per store instance. @default 16 hex digits of `rng` */
  clientId?: string;
  /** @default createRng(entropySeed()) */
  rng?: Rng;
}

/** The client settings both forms of the store share (in-process and remote). */
export type RaftKvClientOptions = Pick<RaftKvStoreOptions, 'name' | 'timeoutMs' | 'attemptTimeoutMs' | 'backoffMs' | 'clientId' | 'rng'>;

/** Resolved client settings. */
export interface ResolvedRaftKvClientOptions {
  clock: Clock;
  name: string;
  timeoutMs: number;
  attemptTimeoutMs: number;
  backoffMs: number;
  clientId: string;
}

/** Validate and default the client settings; names the bad option. */
export function resolveRaftKvClientOptions(clock: Clock, options: RaftKvClientOptions): ResolvedRaftKvClientOptions {
  const {
    name = 'raft', timeoutMs = DEFAULT_RAFT_KV_TIMEOUT_MS, attemptTimeoutMs = DEFAULT_RAFT_KV_ATTEMPT_TIMEOUT_MS,
    backoffMs = DEFAULT_RAFT_KV_BACKOFF_MS,
  } = options;
  if (!clock) throw new RangeError('raft KV store option clock is required');
  if (typeof name !== 'string' || name.length === 0) throw new RangeError(`raft KV store option name must be a non-empty string, got ${String(name)}`);
  assertValidTtl('raft KV store option timeoutMs', timeoutMs);
  assertValidTtl('raft KV store option attemptTimeoutMs', attemptTimeoutMs);
  assertValidTtl('raft KV store option backoffMs', backoffMs);
  const clientId = options.clientId ?? (options.rng ?? createRng(entropySeed())).hex(16);
  if (typeof clientId !== 'string' || clientId.length === 0) throw new RangeError('raft KV store option clientId must be a non-empty string');
  return { clock, name, timeoutMs, attemptTimeoutMs, backoffMs, clientId };
}

/** Routes to the replica whose node leads with the highest term (the in-process form sees every node's role). */
function leaderByRole(replicas: readonly RaftKvReplica[]): KvStoreRoute {
  return {
    next(skip) {
      let best: RaftKvReplica | undefined;
      for (const r of replicas) {
        if (skip.has(r) || r.node.role() !== 'leader') continue;
        if (!best || r.node.term() > best.node.term()) best = r;
      }
      return best;
    },
    refused: () => undefined,
    answered: () => undefined,
  };
}

/**
 * A `KvStore` over the replicas of one Raft group (kind `'raft'`).
 * @example
 * const store = createRaftKvStore({ replicas, clock: system.clock, timeoutMs: 2_000 });
 * const rev = await store.create('lock.orders', enc('node-a'), { ttlMs: 10_000 });
 * await store.update('lock.orders', enc('node-a'), rev); // renew the lease; KvConflictError if lost
 */
export function createRaftKvStore(options: RaftKvStoreOptions): KvStore {
  const { replicas } = options;
  if (!Array.isArray(replicas) || replicas.length === 0) throw new RangeError('raft KV store option replicas must be a non-empty array');
  return createRoutedKvStore(resolveRaftKvClientOptions(options.clock, options), leaderByRole(replicas));
}

/** A Raft `KvStore` client that reaches the replicas through `route` (the remote form's entry point). */
export function createRoutedKvStore(options: ResolvedRaftKvClientOptions, route: KvStoreRoute, onClose?: () => void): KvStore {
  return new RaftKvStore(options, route, onClose);
}

type Outcome<T> = { readonly kind: 'value'; readonly value: T } | { readonly kind: 'error'; readonly error: unknown } | { readonly kind: 'timeout' } | { readonly kind: 'closed' };

class RaftKvStore implements KvStore {
  readonly kind = 'raft';
  private seq = 0;
  private readonly inFlight = new Set<number>();
  private readonly watches = new Set<KvWatch>();
  private closed = false;
  /** Calls waiting on something, told when the store closes. */
  private readonly onClose = new Set<() => void>();

  constructor(
    private readonly options: ResolvedRaftKvClientOptions,
    private readonly route: KvStoreRoute,
    private readonly onClosed?: () => void,
  ) {}

  private get label(): string {
    return `raft:${this.options.name}`;
  }

  private closedError(): StoreUnavailableError {
    return new StoreUnavailableError(this.label, 'the store is closed', { retryable: false });
  }

  private guard(): void {
    if (this.closed) throw this.closedError();
  }

  /** `p`, or `timeout` after `ms`, or `closed` — whichever comes first. */
  private within<T>(p: Promise<T>, ms: number): Promise<Outcome<T>> {
    const { clock } = this.options;
    return new Promise<Outcome<T>>((resolve) => {
      const settle = (o: Outcome<T>): void => {
        clock.clearTimeout(timer);
        this.onClose.delete(closed);
        resolve(o);
      };
      const closed = (): void => settle({ kind: 'closed' });
      const timer = clock.setTimeout(() => settle({ kind: 'timeout' }), ms);
      this.onClose.add(closed);
      p.then((value) => settle({ kind: 'value', value }), (error: unknown) => settle({ kind: 'error', error }));
    });
  }

  /**
   * Run `attempt` on the leader until it answers, following leader changes, for at most
   * `timeoutMs`. Rejects with a retryable `StoreUnavailableError` when no leader answered in time
   * (a write may or may not have been applied), a non-retryable one once the store is closed.
   */
  private async withLeader<T>(what: string, attempt: (endpoint: KvStoreEndpoint) => ReplicaAttempt<T>): Promise<T> {
    const { clock, timeoutMs, attemptTimeoutMs, backoffMs } = this.options;
    const deadline = clock.now() + timeoutMs;
    const silent = new Set<KvStoreEndpoint>();
    let lastError: unknown;
    for (;;) {
      this.guard();
      const remainingMs = deadline - clock.now();
      if (remainingMs <= 0) {
        throw new StoreUnavailableError(this.label, `no leader answered ${what} within ${timeoutMs} ms`, { cause: lastError });
      }
      const replica = this.route.next(silent);
      if (!replica) {
        silent.clear();
        if ((await this.within(new Promise<never>(() => undefined), Math.min(backoffMs, remainingMs))).kind === 'closed') throw this.closedError();
        continue;
      }
      const a = attempt(replica);
      const outcome = await this.within(a.result, Math.min(attemptTimeoutMs, remainingMs));
      switch (outcome.kind) {
        case 'value':
          this.route.answered(replica);
          return outcome.value;
        case 'closed':
          a.cancel();
          throw this.closedError();
        case 'timeout':
          a.cancel();
          silent.add(replica);
          continue;
        case 'error':
          lastError = outcome.error;
          silent.add(replica);
          if (outcome.error instanceof NotLeaderError) this.route.refused(replica, outcome.error);
          else if (!isAttemptFailure(outcome.error)) throw outcome.error;
      }
    }
  }

  /** Propose a write with a fresh seq (retried with the same seq); resolves to the state machine's result. */
  private async write(command: UnstampedKvStoreCommand extends infer C ? (C extends UnstampedKvStoreCommand ? Omit<C, 'client' | 'seq' | 'floor'> : never) : never): Promise<KvStoreResult> {
    const seq = ++this.seq;
    this.inFlight.add(seq);
    try {
      return await this.withLeader(command.op, (replica) => replica.submit({
        ...command, client: this.options.clientId, seq, floor: Math.min(...this.inFlight),
      } as UnstampedKvStoreCommand));
    } finally {
      this.inFlight.delete(seq);
    }
  }

  private revisionOf(key: string, result: KvStoreResult): number | undefined {
    switch (result.type) {
      case 'written':
        return result.revision;
      case 'unchanged':
        return undefined;
      case 'conflict':
        throw new KvConflictError(key, result.expectedRevision, result.actualRevision);
      case 'stale':
        // cannot happen: a command is in flight until answered, so its seq is never below the floor
        throw new StoreUnavailableError(this.label, `the answer to ${key}'s write was lost`);
      case 'invalid':
        throw new RangeError(`the raft KV store refused the write of '${key}': ${result.reason}`);
    }
  }

  private written(key: string, result: KvStoreResult): number {
    const revision = this.revisionOf(key, result);
    if (revision === undefined) throw new Error(`the raft KV store wrote nothing for '${key}'`);
    return revision;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.guard();
    assertValidKey(key);
    return this.withLeader('get', (r) => r.read({ kind: 'get', key })) as Promise<KvEntry | undefined>;
  }

  async create(key: string, value: Uint8Array, opts?: KvCreateOptions): Promise<number> {
    this.guard();
    assertValidKey(key);
    if (opts?.ttlMs !== undefined) assertValidTtl('create option ttlMs', opts.ttlMs);
    const ttl = opts?.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {};
    return this.written(key, await this.write({ op: 'create', key, value: valueOf(key, value), ...ttl }));
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<number> {
    this.guard();
    assertValidKey(key);
    assertValidRevision('update expectedRevision', expectedRevision);
    return this.written(key, await this.write({ op: 'update', key, value: valueOf(key, value), expectedRevision }));
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.guard();
    assertValidKey(key);
    return this.written(key, await this.write({ op: 'put', key, value: valueOf(key, value) }));
  }

  async delete(key: string, opts?: KvDeleteOptions): Promise<void> {
    this.guard();
    assertValidKey(key);
    const expectedRevision = opts?.expectedRevision;
    if (expectedRevision !== undefined) assertValidRevision('delete option expectedRevision', expectedRevision);
    this.revisionOf(key, await this.write({ op: 'delete', key, ...(expectedRevision !== undefined ? { expectedRevision } : {}) }));
  }

  async watch(keyOrPattern: string, onEntry: (entry: KvEntry) => void, opts?: KvWatchOptions): Promise<KvWatch> {
    this.guard();
    assertValidKeyPattern(keyOrPattern);
    if (typeof onEntry !== 'function') throw new TypeError('watch needs an onEntry function');
    const inner = await this.withLeader('watch', (r) => r.watch(keyOrPattern, opts?.includeHistory ?? false, onEntry, opts?.onError));
    const watch: KvWatch = {
      stop: () => {
        inner.stop();
        this.watches.delete(watch);
      },
    };
    if (this.closed) watch.stop();
    else this.watches.add(watch);
    return watch;
  }

  async keys(pattern = '>'): Promise<string[]> {
    this.guard();
    assertValidKeyPattern(pattern);
    return this.withLeader('keys', (r) => r.read({ kind: 'keys', pattern })) as Promise<string[]>;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of Array.from(this.onClose)) f();
    this.onClosed?.();
    for (const w of Array.from(this.watches)) w.stop();
  }
}

/** An attempt that failed without an answer (an ask timed out, the node is unreachable): try another replica. */
function isAttemptFailure(err: unknown): boolean {
  return err instanceof TroupeError && err.retryable && !(err instanceof StoreUnavailableError);
}

function valueOf(key: string, value: Uint8Array): string {
  if (!(value instanceof Uint8Array)) throw new TypeError(`the value of '${key}' must be a Uint8Array`);
  return encodeKvStoreValue(value);
}
