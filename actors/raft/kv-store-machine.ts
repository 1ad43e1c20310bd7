/**
 * The replicated state machine behind the Raft `KvStore` (`kv-store.ts`): a keyspace with the
 * `KvStore` semantics (global revisions, per-key history, soft deletes, TTL renewed by every
 * write) that changes ONLY by applying commands in log order, so every replica that applied the
 * same prefix of the log is in the same state.
 *
 * - **Revisions** are a counter incremented by every applied write (deletes included).
 * - **Compare-and-set** (`create`, `update`, `delete` with an expected revision) is decided here, at
 *   apply time, against the state the log order produced: linearizable.
 * - **Exactly once.** Every command carries (client, seq); the result of each seq is kept until the
 *   client reports (`floor`) that it has an answer for every seq below, so a retried command — after
 *   a timeout or a leader change — is applied once and answered with the first result. Sessions
 *   idle for `sessionTtlMs` of log time are forgotten (a retry after that may apply twice).
 * - **Time without clocks.** Applying never reads a clock: each command carries `nowMs`, the
 *   proposing leader's clock when it proposed, and the machine keeps **log time** = the largest
 *   stamp applied so far. A write at log time `t` to a key with TTL `ttl` expires at `t + ttl`;
 *   writes decide expiry at log time. Reads pass the time to evaluate at (the serving leader's clock,
 *   never below log time) and never change state, so they cannot make replicas diverge.
 * - **Snapshots.** `snapshot()` serialises the whole state (keyspace, revision counter, log time,
 *   sessions); `restore()` replaces the state with one — for log compaction.
 */
import { assertValidKey, keyMatches, MAX_KV_HISTORY, type KvEntry } from '../../framework/store/store.ts';

/** A write command as it travels in a log entry (JSON); values are base64. */
export type KvStoreCommand = {
  /** The issuing client (one per store instance) and its sequence number for this command. */
  readonly client: string;
  readonly seq: number;
  /** Every seq of this client below `floor` has been answered: their results may be forgotten. */
  readonly floor: number;
  /** The proposing leader's clock when it proposed (ms). */
  readonly nowMs: number;
} & (
  | { readonly op: 'create'; readonly key: string; readonly value: string; readonly ttlMs?: number }
  | { readonly op: 'update'; readonly key: string; readonly value: string; readonly expectedRevision: number }
  | { readonly op: 'put'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string; readonly expectedRevision?: number }
);

/** What applying a command did. */
export type KvStoreResult =
  | { readonly type: 'written'; readonly revision: number }
  /** A delete of a key without a live value: nothing written. */
  | { readonly type: 'unchanged' }
  /** A lost compare-and-set; `actualRevision` is the key's last revision (undefined: none). */
  | { readonly type: 'conflict'; readonly expectedRevision?: number; readonly actualRevision?: number }
  /** A command whose seq is below the client's floor: it was answered before, its result is gone. */
  | { readonly type: 'stale' }
  /** Not a command this machine understands (bad bytes in the log); nothing changed. */
  | { readonly type: 'invalid'; readonly reason: string };

/** Settings every replica of one store must share (they shape the state). */
export interface KvStoreMachineOptions {
  /** Revisions retained per key, deletes included, in [1, 64]. @default 1 */
  history?: number;
  /** TTL of keys not created with one (including keys first written by `put`). Undefined: none. */
  ttlMs?: number;
  /** A client session idle this long in log time is forgotten. @default 3_600_000 (1 h) */
  sessionTtlMs?: number;
}

export const DEFAULT_KV_STORE_SESSION_TTL_MS = 3_600_000;

/** One replica's state machine. Create it empty, feed it every committed command in order. */
export interface KvStoreMachine {
  /** The last revision written (0 before the first write). */
  readonly revision: number;
  /** The largest `nowMs` applied so far. */
  readonly logTimeMs: number;
  /** Apply one command; `written` is the revision it wrote, for watchers. */
  apply(command: KvStoreCommand): { result: KvStoreResult; written?: KvEntry };
  /** The live value of `key` at `nowMs`, or undefined. Changes nothing. */
  get(key: string, nowMs: number): KvEntry | undefined;
  /** Keys with a live value at `nowMs` matching `pattern`, sorted. */
  keys(pattern: string, nowMs: number): string[];
  /** Live values (or every unexpired retained revision) of keys matching `pattern`, by revision. */
  entries(pattern: string, includeHistory: boolean, nowMs: number): KvEntry[];
  /** The whole state as bytes. */
  snapshot(): Uint8Array;
  /** Replace the whole state with a `snapshot()` of a machine with the same options. */
  restore(bytes: Uint8Array): void;
}

interface Revision extends KvEntry {
  readonly createdMs: number;
  readonly expiresAtMs: number | undefined;
}

interface KeyRecord {
  /** Retained revisions, oldest first; the last is the key's current state. */
  revisions: Revision[];
  /** TTL given to every write of this key until it is deleted or expires. */
  ttlMs: number | undefined;
}

interface Session {
  floor: number;
  lastMs: number;
  readonly results: Map<number, KvStoreResult>;
}

/** The snapshot format (JSON); changing it needs a new `v`. */
interface SnapshotV1 {
  v: 1;
  revision: number;
  logTimeMs: number;
  nextPurgeMs: number;
  /** [key, ttlMs, [revision, operation, createdMs, expiresAtMs, base64 value][]] */
  records: Array<[string, number | null, Array<[number, 'put' | 'delete', number, number | null, string]>]>;
  /** [client, floor, lastMs, [seq, result][]] */
  sessions: Array<[string, number, number, Array<[number, KvStoreResult]>]>;
}

const EMPTY = new Uint8Array(0);
const toBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const fromBase64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** Encode a command for `RaftNodeHandle.propose`. */
export function encodeKvStoreCommand(command: KvStoreCommand): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(command));
}

/** The value bytes of a command, as carried in it. */
export function encodeKvStoreValue(value: Uint8Array): string {
  return toBase64(value);
}

/** Decode an entry's data; `undefined` when it is not a well-formed command. */
export function decodeKvStoreCommand(data: Uint8Array): KvStoreCommand | undefined {
  let cmd: unknown;
  try {
    cmd = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  if (typeof cmd !== 'object' || cmd === null) return undefined;
  const c = cmd as Record<string, unknown>;
  const revision = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;
  const head = typeof c['client'] === 'string' && Number.isSafeInteger(c['seq']) && Number.isSafeInteger(c['floor'])
    && typeof c['nowMs'] === 'number' && Number.isFinite(c['nowMs']) && typeof c['key'] === 'string';
  if (!head) return undefined;
  switch (c['op']) {
    case 'create':
      return typeof c['value'] === 'string' && (c['ttlMs'] === undefined || typeof c['ttlMs'] === 'number') ? (cmd as KvStoreCommand) : undefined;
    case 'update':
      return typeof c['value'] === 'string' && revision(c['expectedRevision']) ? (cmd as KvStoreCommand) : undefined;
    case 'put':
      return typeof c['value'] === 'string' ? (cmd as KvStoreCommand) : undefined;
    case 'delete':
      return c['expectedRevision'] === undefined || revision(c['expectedRevision']) ? (cmd as KvStoreCommand) : undefined;
    default:
      return undefined;
  }
}

function resolveMachineOptions(options: KvStoreMachineOptions): Required<Omit<KvStoreMachineOptions, 'ttlMs'>> & { ttlMs: number | undefined } {
  const { history = 1, ttlMs, sessionTtlMs = DEFAULT_KV_STORE_SESSION_TTL_MS } = options;
  if (!Number.isInteger(history) || history < 1 || history > MAX_KV_HISTORY) {
    throw new RangeError(`raft KV store option history must be an integer in [1, ${MAX_KV_HISTORY}], got ${String(history)}`);
  }
  if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`raft KV store option ttlMs must be a positive number of milliseconds, got ${String(ttlMs)}`);
  if (!(Number.isFinite(sessionTtlMs) && sessionTtlMs > 0)) throw new RangeError(`raft KV store option sessionTtlMs must be a positive number of milliseconds, got ${String(sessionTtlMs)}`);
  return { history, ttlMs, sessionTtlMs };
}

const live = (r: Revision, nowMs: number): boolean => r.expiresAtMs === undefined || r.expiresAtMs > nowMs;

const publicEntry = (r: Revision): KvEntry => ({ key: r.key, value: r.value, revision: r.revision, operation: r.operation, createdMs: r.createdMs });

/**
 * An empty state machine.
 * @example
 * const machine = createKvStoreMachine({ history: 5 });
 * node = startRaftNode(system, { ..., onApply: (entries) => replica.apply(entries) }); // see kv-store.ts
 */
export function createKvStoreMachine(options: KvStoreMachineOptions = {}): KvStoreMachine {
  const config = resolveMachineOptions(options);
  let records = new Map<string, KeyRecord>();
  let sessions = new Map<string, Session>();
  let revision = 0;
  let logTimeMs = 0;
  let nextPurgeMs = 0;

  const unexpired = (key: string, nowMs: number): Revision[] => records.get(key)?.revisions.filter((r) => live(r, nowMs)) ?? [];
  const last = (key: string, nowMs: number): Revision | undefined => unexpired(key, nowMs).at(-1);

  /** Apply-time expiry (at log time, so the same on every replica): drop what has lapsed. */
  const prune = (key: string): KeyRecord | undefined => {
    const record = records.get(key);
    if (!record) return undefined;
    record.revisions = record.revisions.filter((r) => live(r, logTimeMs));
    if (record.revisions.length > 0) return record;
    records.delete(key);
    return undefined;
  };

  const write = (key: string, operation: 'put' | 'delete', value: Uint8Array, ttl?: { ttlMs: number | undefined }): Revision => {
    let record = prune(key);
    if (!record) {
      record = { revisions: [], ttlMs: config.ttlMs };
      records.set(key, record);
    }
    if (ttl) record.ttlMs = ttl.ttlMs;
    // a key written again after its deletion starts afresh, with the store's default TTL
    else if (record.revisions.at(-1)?.operation === 'delete') record.ttlMs = config.ttlMs;
    const rev: Revision = {
      key, value, revision: ++revision, operation, createdMs: logTimeMs,
      expiresAtMs: record.ttlMs === undefined ? undefined : logTimeMs + record.ttlMs,
    };
    record.revisions.push(rev);
    if (record.revisions.length > config.history) record.revisions.splice(0, record.revisions.length - config.history);
    return rev;
  };

  const execute = (cmd: KvStoreCommand): { result: KvStoreResult; written?: Revision } => {
    try {
      assertValidKey(cmd.key);
    } catch (err) {
      return { result: { type: 'invalid', reason: (err as Error).message } };
    }
    prune(cmd.key);
    const current = last(cmd.key, logTimeMs);
    const written = (rev: Revision): { result: KvStoreResult; written: Revision } => ({ result: { type: 'written', revision: rev.revision }, written: rev });
    switch (cmd.op) {
      case 'create': {
        if (current?.operation === 'put') return { result: { type: 'conflict', actualRevision: current.revision } };
        if (cmd.ttlMs !== undefined && !(Number.isFinite(cmd.ttlMs) && cmd.ttlMs > 0)) return { result: { type: 'invalid', reason: `bad ttlMs ${String(cmd.ttlMs)}` } };
        return written(write(cmd.key, 'put', fromBase64(cmd.value), { ttlMs: cmd.ttlMs ?? config.ttlMs }));
      }
      case 'update':
        // as on NATS KV, the comparison is with the key's last revision, a delete marker included
        if (current?.revision !== cmd.expectedRevision) {
          return { result: { type: 'conflict', expectedRevision: cmd.expectedRevision, actualRevision: current?.revision } };
        }
        return written(write(cmd.key, 'put', fromBase64(cmd.value)));
      case 'put':
        return written(write(cmd.key, 'put', fromBase64(cmd.value)));
      case 'delete':
        if (cmd.expectedRevision !== undefined && current?.revision !== cmd.expectedRevision) {
          return { result: { type: 'conflict', expectedRevision: cmd.expectedRevision, actualRevision: current?.revision } };
        }
        if (current?.operation !== 'put') return { result: { type: 'unchanged' } };
        return written(write(cmd.key, 'delete', EMPTY));
    }
  };

  /** Now and then (in log time): forget idle sessions and keys that expired without being written again. */
  const sweep = (): void => {
    if (logTimeMs < nextPurgeMs) return;
    for (const [client, s] of sessions) if (s.lastMs + config.sessionTtlMs <= logTimeMs) sessions.delete(client);
    for (const key of Array.from(records.keys())) prune(key);
    nextPurgeMs = logTimeMs + config.sessionTtlMs / 4;
  };

  return {
    get revision() {
      return revision;
    },
    get logTimeMs() {
      return logTimeMs;
    },

    apply(cmd) {
      logTimeMs = Math.max(logTimeMs, cmd.nowMs);
      let session = sessions.get(cmd.client);
      if (!session) {
        session = { floor: 0, lastMs: logTimeMs, results: new Map() };
        sessions.set(cmd.client, session);
      }
      session.lastMs = logTimeMs;
      let outcome: { result: KvStoreResult; written?: Revision };
      const cached = session.results.get(cmd.seq);
      if (cmd.seq < session.floor) outcome = { result: { type: 'stale' } };
      else if (cached) outcome = { result: cached }; // a retry of an applied command: applied once, same answer
      else {
        outcome = execute(cmd);
        session.results.set(cmd.seq, outcome.result);
      }
      if (cmd.floor > session.floor) {
        session.floor = cmd.floor;
        for (const seq of session.results.keys()) if (seq < session.floor) session.results.delete(seq);
      }
      sweep();
      return outcome.written ? { result: outcome.result, written: publicEntry(outcome.written) } : { result: outcome.result };
    },

    get(key, nowMs) {
      const current = last(key, nowMs);
      return current?.operation === 'put' ? publicEntry(current) : undefined;
    },

    keys(pattern, nowMs) {
      const out: string[] = [];
      for (const key of records.keys()) if (keyMatches(pattern, key) && last(key, nowMs)?.operation === 'put') out.push(key);
      return out.sort();
    },

    entries(pattern, includeHistory, nowMs) {
      const out: Revision[] = [];
      for (const key of records.keys()) {
        if (!keyMatches(pattern, key)) continue;
        const revs = unexpired(key, nowMs);
        if (includeHistory) out.push(...revs);
        else if (revs.at(-1)?.operation === 'put') out.push(revs.at(-1)!);
      }
      return out.sort((a, b) => a.revision - b.revision).map(publicEntry);
    },

    snapshot() {
      const snap: SnapshotV1 = {
        v: 1, revision, logTimeMs, nextPurgeMs,
        records: Array.from(records, ([key, r]) => [key, r.ttlMs ?? null,
          r.revisions.map((x) => [x.revision, x.operation, x.createdMs, x.expiresAtMs ?? null, toBase64(x.value)])]),
        sessions: Array.from(sessions, ([client, s]) => [client, s.floor, s.lastMs, Array.from(s.results)]),
      };
      return new TextEncoder().encode(JSON.stringify(snap));
    },

    restore(bytes) {
      const snap = JSON.parse(new TextDecoder().decode(bytes)) as SnapshotV1;
      if (snap.v !== 1) throw new RangeError(`unknown raft KV store snapshot version ${String(snap.v)}`);
      revision = snap.revision;
      logTimeMs = snap.logTimeMs;
      nextPurgeMs = snap.nextPurgeMs;
      records = new Map(snap.records.map(([key, ttlMs, revs]) => [key, {
        ttlMs: ttlMs ?? undefined,
        revisions: revs.map(([rev, operation, createdMs, expiresAtMs, value]) => ({
          key, value: fromBase64(value), revision: rev, operation, createdMs, expiresAtMs: expiresAtMs ?? undefined,
        })),
      }]));
      sessions = new Map(snap.sessions.map(([client, floor, lastMs, results]) => [client, { floor, lastMs, results: new Map(results) }]));
    },
  };
}
