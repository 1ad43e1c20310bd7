/**
 * Every error troupe hands to a caller. Each has a stable `code` (safe to log and to put on the
 * wire), structured fields, and a `retryable` flag that retry policies read.
 */

/** Stable error codes; they reach logs and the wire, so they never change meaning. */
export const ErrorCode = {
  AskTimeout: 'ASK_TIMEOUT',
  NoResponders: 'NO_RESPONDERS',
  MailboxFull: 'MAILBOX_FULL',
  Decode: 'DECODE',
  UnknownMessageType: 'UNKNOWN_MESSAGE_TYPE',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  InvalidName: 'INVALID_NAME',
  NameTaken: 'NAME_TAKEN',
  Aborted: 'ABORTED',
  TransportClosed: 'TRANSPORT_CLOSED',
  TransportTimeout: 'TRANSPORT_TIMEOUT',
  Connection: 'CONNECTION',
  SystemShutdown: 'SYSTEM_SHUTDOWN',
  ActorStopped: 'ACTOR_STOPPED',
  ActorFailed: 'ACTOR_FAILED',
  Remote: 'REMOTE',
  KvConflict: 'KV_CONFLICT',
  StoreUnavailable: 'STORE_UNAVAILABLE',
  BrokenCircuit: 'BROKEN_CIRCUIT',
  BulkheadRejected: 'BULKHEAD_REJECTED',
  CallTimeout: 'CALL_TIMEOUT',
  RetryBudgetExhausted: 'RETRY_BUDGET_EXHAUSTED',
  NotLeader: 'NOT_LEADER',
  QuorumUnreachable: 'QUORUM_UNREACHABLE',
  SimulationFailed: 'SIMULATION_FAILED',
  InvalidHistory: 'INVALID_HISTORY',
  StorageCrashed: 'STORAGE_CRASHED',
  NoBackends: 'NO_BACKENDS',
  BackendLost: 'BACKEND_LOST',
  InspectorConfig: 'INSPECTOR_CONFIG',
  LockTimeout: 'LOCK_TIMEOUT',
  LockLost: 'LOCK_LOST',
  FencingTokenRejected: 'FENCING_TOKEN_REJECTED',
  NotLockOwner: 'NOT_LOCK_OWNER',
  NotPrimary: 'NOT_PRIMARY',
  StaleRead: 'STALE_READ',
  WriteUnacknowledged: 'WRITE_UNACKNOWLEDGED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every troupe error. */
export abstract class TroupeError extends Error {
  abstract readonly code: ErrorCode;
  /** True when the same call may succeed if tried again. */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
  /** Structured fields for logs and the wire (never credentials). */
  fields(): Record<string, string | number | boolean | undefined> {
    return {};
  }
}

/** An ask got no reply within `timeoutMs`. */
export class AskTimeoutError extends TroupeError {
  readonly code = ErrorCode.AskTimeout;
  readonly retryable = true;
  constructor(readonly address: string, readonly timeoutMs: number, readonly messageType?: string) {
    super(`ask to ${address}${messageType ? ` (${messageType})` : ''} got no reply within ${timeoutMs} ms`);
  }
  override fields() { return { address: this.address, timeoutMs: this.timeoutMs, messageType: this.messageType }; }
}

/** Nobody is there to receive: no such actor, or no node subscribed to the subject. */
export class NoRespondersError extends TroupeError {
  readonly code = ErrorCode.NoResponders;
  readonly retryable = true;
  constructor(readonly target: string, readonly reason = 'no responders') {
    super(`no responders for ${target}: ${reason}`);
  }
  override fields() { return { target: this.target, reason: this.reason }; }
}

/** The target's mailbox is at capacity; the message was not enqueued. */
export class MailboxFullError extends TroupeError {
  readonly code = ErrorCode.MailboxFull;
  readonly retryable = true;
  constructor(readonly address: string, readonly capacity: number) {
    super(`mailbox of ${address} is full (capacity ${capacity})`);
  }
  override fields() { return { address: this.address, capacity: this.capacity }; }
}

/** Bytes that are not a valid envelope or payload. */
export class DecodeError extends TroupeError {
  readonly code = ErrorCode.Decode;
  readonly retryable = false;
  constructor(readonly subject: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`cannot decode message on ${subject}: ${reason}`, options);
  }
  override fields() { return { subject: this.subject, reason: this.reason }; }
}

/** A message type that no registered schema declares, or that the target actor does not accept. */
export class UnknownMessageTypeError extends TroupeError {
  readonly code = ErrorCode.UnknownMessageType;
  readonly retryable = false;
  constructor(readonly messageType: string, readonly target?: string) {
    super(`unknown message type '${messageType}'${target ? ` for ${target}` : ''}`);
  }
  override fields() { return { messageType: this.messageType, target: this.target }; }
}

/** A payload over the configured limit. */
export class PayloadTooLargeError extends TroupeError {
  readonly code = ErrorCode.PayloadTooLarge;
  readonly retryable = false;
  constructor(readonly sizeBytes: number, readonly maxBytes: number, readonly target?: string) {
    super(`payload of ${sizeBytes} bytes exceeds the limit of ${maxBytes} bytes${target ? ` (to ${target})` : ''}`);
  }
  override fields() { return { sizeBytes: this.sizeBytes, maxBytes: this.maxBytes, target: this.target }; }
}

/** A cluster, node or actor name that is not a valid subject token. */
export class InvalidNameError extends TroupeError {
  readonly code = ErrorCode.InvalidName;
  readonly retryable = false;
  constructor(readonly value: string, readonly reason: string) {
    super(`invalid name '${value}': ${reason}`);
  }
  override fields() { return { value: this.value, reason: this.reason }; }
}

/** An actor with this address is already alive. */
export class NameTakenError extends TroupeError {
  readonly code = ErrorCode.NameTaken;
  readonly retryable = false;
  constructor(readonly address: string) {
    super(`an actor named ${address} already exists`);
  }
  override fields() { return { address: this.address }; }
}

/** The caller's AbortSignal fired. */
export class AbortedError extends TroupeError {
  readonly code = ErrorCode.Aborted;
  readonly retryable = false;
  constructor(readonly operation: string, reason?: unknown) {
    super(`${operation} aborted`, { cause: reason });
  }
  override fields() { return { operation: this.operation }; }
}

/** The transport is closed (or draining) and cannot carry the message. */
export class TransportClosedError extends TroupeError {
  readonly code = ErrorCode.TransportClosed;
  readonly retryable = false;
  constructor(readonly subject?: string, options?: { cause?: unknown }) {
    super(`transport is closed${subject ? ` (publishing to ${subject})` : ''}`, options);
  }
  override fields() { return { subject: this.subject }; }
}

/** A transport-level request got no response within `timeoutMs`. */
export class TransportTimeoutError extends TroupeError {
  readonly code = ErrorCode.TransportTimeout;
  readonly retryable = true;
  constructor(readonly subject: string, readonly timeoutMs: number) {
    super(`request on ${subject} timed out after ${timeoutMs} ms`);
  }
  override fields() { return { subject: this.subject, timeoutMs: this.timeoutMs }; }
}

/** Could not connect to (or lost) the message server. Never carries credentials. */
export class ConnectionError extends TroupeError {
  readonly code = ErrorCode.Connection;
  readonly retryable = true;
  constructor(readonly servers: string, reason: string, options?: { cause?: unknown }) {
    super(`cannot connect to ${servers}: ${reason}`, options);
  }
  override fields() { return { servers: this.servers }; }
}

/** The system is shutting down or has shut down. */
export class SystemShutdownError extends TroupeError {
  readonly code = ErrorCode.SystemShutdown;
  readonly retryable = false;
  constructor(readonly node: string) {
    super(`actor system on node ${node} is shut down`);
  }
  override fields() { return { node: this.node }; }
}

/** The asked actor stopped before it replied. */
export class ActorStoppedError extends TroupeError {
  readonly code = ErrorCode.ActorStopped;
  readonly retryable = true;
  constructor(readonly address: string) {
    super(`actor ${address} stopped before replying`);
  }
  override fields() { return { address: this.address }; }
}

/** The asked actor failed while handling the ask (its supervisor decides what happens to it). */
export class ActorFailedError extends TroupeError {
  readonly code = ErrorCode.ActorFailed;
  readonly retryable = true;
  constructor(readonly address: string, readonly reason: string) {
    super(`actor ${address} failed while handling the ask: ${reason}`);
  }
  override fields() { return { address: this.address, reason: this.reason }; }
}

/** An error reported by a remote node that has no local class (forward compatibility). */
export class RemoteError extends TroupeError {
  readonly code = ErrorCode.Remote;
  readonly retryable: boolean;
  constructor(readonly remoteCode: string, message: string, retryable: boolean) {
    super(`remote error ${remoteCode}: ${message}`);
    this.retryable = retryable;
  }
  override fields() { return { remoteCode: this.remoteCode }; }
}

/** True for any troupe error. */
export const isTroupeError = (e: unknown): e is TroupeError => e instanceof TroupeError;
export const isAskTimeoutError = (e: unknown): e is AskTimeoutError => e instanceof AskTimeoutError;
export const isNoRespondersError = (e: unknown): e is NoRespondersError => e instanceof NoRespondersError;
export const isMailboxFullError = (e: unknown): e is MailboxFullError => e instanceof MailboxFullError;
export const isDecodeError = (e: unknown): e is DecodeError => e instanceof DecodeError;
export const isUnknownMessageTypeError = (e: unknown): e is UnknownMessageTypeError => e instanceof UnknownMessageTypeError;
export const isPayloadTooLargeError = (e: unknown): e is PayloadTooLargeError => e instanceof PayloadTooLargeError;
export const isInvalidNameError = (e: unknown): e is InvalidNameError => e instanceof InvalidNameError;
export const isAbortedError = (e: unknown): e is AbortedError => e instanceof AbortedError;
export const isTransportClosedError = (e: unknown): e is TransportClosedError => e instanceof TransportClosedError;
export const isTransportTimeoutError = (e: unknown): e is TransportTimeoutError => e instanceof TransportTimeoutError;
export const isConnectionError = (e: unknown): e is ConnectionError => e instanceof ConnectionError;
export const isSystemShutdownError = (e: unknown): e is SystemShutdownError => e instanceof SystemShutdownError;
export const isActorFailedError = (e: unknown): e is ActorFailedError => e instanceof ActorFailedError;
export const isActorStoppedError = (e: unknown): e is ActorStoppedError => e instanceof ActorStoppedError;

/** True when `e` says the call may be retried (troupe errors carry the flag; others are not). */
export const isRetryable = (e: unknown): boolean => e instanceof TroupeError && e.retryable;

/**
 * A key-value write lost a compare-and-set: `create` on a key that exists, or `update`/`delete`
 * whose `expectedRevision` is not the key's current revision. Not retryable as is: read the key
 * again and decide.
 */
export class KvConflictError extends TroupeError {
  readonly code = ErrorCode.KvConflict;
  readonly retryable = false;
  constructor(
    readonly key: string,
    /** The revision the caller expected; undefined for `create`. */
    readonly expectedRevision?: number,
    /** The key's revision the store saw, when it reports one (0 or undefined: no live value). */
    readonly actualRevision?: number,
  ) {
    super(
      expectedRevision === undefined
        ? `key '${key}' already exists${actualRevision !== undefined ? ` (revision ${actualRevision})` : ''}`
        : `key '${key}' is not at revision ${expectedRevision}${actualRevision !== undefined ? ` (it is at ${actualRevision})` : ''}`,
    );
  }
  override fields() { return { key: this.key, expectedRevision: this.expectedRevision, actualRevision: this.actualRevision }; }
}

/**
 * The key-value store could not be reached or did not answer in time; the operation may or may not
 * have been applied. Retryable, except when `reason` is that the store was closed by its owner.
 * Never carries credentials.
 */
export class StoreUnavailableError extends TroupeError {
  readonly code = ErrorCode.StoreUnavailable;
  readonly retryable: boolean;
  constructor(
    /** Which store: its kind and bucket/name, e.g. `nats-kv:locks`. */
    readonly store: string,
    readonly reason: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(`store ${store} is unavailable: ${reason}`, options);
    this.retryable = options?.retryable ?? true;
  }
  override fields() { return { store: this.store, reason: this.reason }; }
}

export const isKvConflictError = (e: unknown): e is KvConflictError => e instanceof KvConflictError;
export const isStoreUnavailableError = (e: unknown): e is StoreUnavailableError => e instanceof StoreUnavailableError;

/**
 * A circuit breaker rejected the call without running it. `state` is the breaker's state
 * (`open`, `half-open` with every trial slot taken, or `isolated`); `retryAtMs` is when it next
 * lets a trial call through (clock time; undefined while isolated).
 */
export class BrokenCircuitError extends TroupeError {
  readonly code = ErrorCode.BrokenCircuit;
  readonly retryable = true;
  constructor(readonly breaker: string, readonly state: string, readonly retryAtMs?: number) {
    super(`circuit breaker '${breaker}' is ${state}${retryAtMs !== undefined ? `; next trial at ${retryAtMs}` : ''}`);
  }
  override fields() { return { breaker: this.breaker, state: this.state, retryAtMs: this.retryAtMs }; }
}

/** A bulkhead had every execution slot and every queue place taken. */
export class BulkheadRejectedError extends TroupeError {
  readonly code = ErrorCode.BulkheadRejected;
  readonly retryable = true;
  constructor(
    readonly bulkhead: string,
    readonly limit: number,
    readonly queueCapacity: number,
    readonly active: number,
    readonly queued: number,
    readonly reason: 'full' | 'queue-timeout' = 'full',
  ) {
    super(reason === 'full'
      ? `bulkhead '${bulkhead}' is full: ${active}/${limit} executing, ${queued}/${queueCapacity} queued`
      : `bulkhead '${bulkhead}': waited too long in the queue (${active}/${limit} executing, ${queued}/${queueCapacity} queued)`);
  }
  override fields() {
    return { bulkhead: this.bulkhead, limit: this.limit, queueCapacity: this.queueCapacity, active: this.active, queued: this.queued, reason: this.reason };
  }
}

/** A call ran longer than its timeout policy allows. */
export class CallTimeoutError extends TroupeError {
  readonly code = ErrorCode.CallTimeout;
  readonly retryable = true;
  constructor(readonly timeoutMs: number) {
    super(`call timed out after ${timeoutMs} ms`);
  }
  override fields() { return { timeoutMs: this.timeoutMs }; }
}

/** A retry was not attempted because the target's retry budget is spent (a retry storm is being held back). */
export class RetryBudgetExhaustedError extends TroupeError {
  readonly code = ErrorCode.RetryBudgetExhausted;
  readonly retryable = false;
  constructor(readonly target: string, readonly attempts: number, options?: { cause?: unknown }) {
    super(`retry budget for '${target}' is exhausted after ${attempts} attempt(s)`, options);
  }
  override fields() { return { target: this.target, attempts: this.attempts }; }
}

export const isBrokenCircuitError = (e: unknown): e is BrokenCircuitError => e instanceof BrokenCircuitError;
export const isBulkheadRejectedError = (e: unknown): e is BulkheadRejectedError => e instanceof BulkheadRejectedError;
export const isCallTimeoutError = (e: unknown): e is CallTimeoutError => e instanceof CallTimeoutError;
export const isRetryBudgetExhaustedError = (e: unknown): e is RetryBudgetExhaustedError => e instanceof RetryBudgetExhaustedError;

/** A consensus operation reached a node that is not the leader; `leader` is its hint, when it has one. */
export class NotLeaderError extends TroupeError {
  readonly code = ErrorCode.NotLeader;
  readonly retryable = true;
  constructor(readonly node: string, readonly leader: string | undefined) {
    super(`${node} is not the leader${leader ? ` (try ${leader})` : ' (no leader known)'}`);
  }
  override fields() { return { node: this.node, leader: this.leader }; }
}

export const isNotLeaderError = (e: unknown): e is NotLeaderError => e instanceof NotLeaderError;

/**
 * A quorum operation could not gather its quorum: `acks` of the `needed` replicas (out of
 * `replicas`) answered in `phase` — `write` (W acks), `read` (R replies) or `repair` (the N − R + 1
 * replicas a read's value must be on before it is returned). Never a partial success: a failed
 * write may still have reached some replicas, and a later read may return it.
 */
export class QuorumUnreachableError extends TroupeError {
  readonly code = ErrorCode.QuorumUnreachable;
  readonly retryable = true;
  constructor(
    readonly key: string,
    readonly phase: 'write' | 'read' | 'repair',
    readonly acks: number,
    readonly needed: number,
    readonly replicas: number,
    readonly failures: readonly string[] = [],
  ) {
    super(`quorum ${phase} of '${key}' unreachable: ${acks} of ${needed} needed replica(s) answered (${replicas} replicas)${failures.length ? ` — ${failures.slice(0, 3).join('; ')}${failures.length > 3 ? '; …' : ''}` : ''}`);
  }
  override fields() { return { key: this.key, phase: this.phase, acks: this.acks, needed: this.needed, replicas: this.replicas }; }
}

export const isQuorumUnreachableError = (e: unknown): e is QuorumUnreachableError => e instanceof QuorumUnreachableError;
/** A load balancer had no backend to send a request to (none registered, or every one ejected or tried). */
export class NoBackendsError extends TroupeError {
  readonly code = ErrorCode.NoBackends;
  readonly retryable = true;
  constructor(readonly key: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`no backend for '${key}': ${reason}`, options);
  }
  override fields() { return { key: this.key, reason: this.reason }; }
}

/**
 * A backend stopped, or its node went down or left, while it held the request: the request may or
 * may not have been processed.
 */
export class BackendLostError extends TroupeError {
  readonly code = ErrorCode.BackendLost;
  readonly retryable = true;
  constructor(readonly backend: string, readonly reason: string) {
    super(`backend ${backend} was lost while handling the request (${reason})`);
  }
  override fields() { return { backend: this.backend, reason: this.reason }; }
}

export const isNoBackendsError = (e: unknown): e is NoBackendsError => e instanceof NoBackendsError;
export const isBackendLostError = (e: unknown): e is BackendLostError => e instanceof BackendLostError;

/** The inspector server refuses to start as configured (e.g. another host than loopback without a token). */
export class InspectorConfigError extends TroupeError {
  readonly code = ErrorCode.InspectorConfig;
  readonly retryable = false;
  constructor(readonly option: string, reason: string) {
    super(`inspector option ${option}: ${reason}`);
  }
  override fields() { return { option: this.option }; }
}

export const isInspectorConfigError = (e: unknown): e is InspectorConfigError => e instanceof InspectorConfigError;
/** `acquire` of a distributed lock gave up: `waitMs` passed before the lock was granted. */
export class LockTimeoutError extends TroupeError {
  readonly code = ErrorCode.LockTimeout;
  readonly retryable = true;
  constructor(readonly lock: string, readonly waitMs: number, options?: { cause?: unknown }) {
    super(`lock '${lock}' was not granted within ${waitMs} ms`, options);
  }
  override fields() { return { lock: this.lock, waitMs: this.waitMs }; }
}

/**
 * A held lock's lease could not be renewed (another owner has it, it expired, or the store could
 * not confirm it before it would have expired): work done since `token` was granted is no longer
 * protected by the lock. Only a fencing token check at the resource makes such work safe.
 */
export class LockLostError extends TroupeError {
  readonly code = ErrorCode.LockLost;
  readonly retryable = false;
  constructor(readonly lock: string, readonly token: number, readonly reason: string, options?: { cause?: unknown }) {
    super(`lock '${lock}' (token ${token}) was lost: ${reason}`, options);
  }
  override fields() { return { lock: this.lock, token: this.token, reason: this.reason }; }
}

/** A fenced resource refused a write whose fencing token is lower than the highest it accepted. */
export class FencingTokenRejectedError extends TroupeError {
  readonly code = ErrorCode.FencingTokenRejected;
  readonly retryable = false;
  constructor(readonly resource: string, readonly token: number, readonly highest: number) {
    super(`resource ${resource} rejected fencing token ${token}: it has accepted ${highest}`);
  }
  override fields() { return { resource: this.resource, token: this.token, highest: this.highest }; }
}

/** A lock release by someone who does not hold it (another owner, or another token of the lock). */
export class NotLockOwnerError extends TroupeError {
  readonly code = ErrorCode.NotLockOwner;
  readonly retryable = false;
  constructor(readonly lock: string, readonly owner: string, readonly token: number, readonly holder: string | undefined) {
    super(`'${owner}' cannot release lock '${lock}' with token ${token}: ${holder === undefined ? 'it holds no such lease' : `it is held by '${holder}'`}`);
  }
  override fields() { return { lock: this.lock, owner: this.owner, token: this.token, holder: this.holder }; }
}

export const isLockTimeoutError = (e: unknown): e is LockTimeoutError => e instanceof LockTimeoutError;
export const isLockLostError = (e: unknown): e is LockLostError => e instanceof LockLostError;
export const isFencingTokenRejectedError = (e: unknown): e is FencingTokenRejectedError => e instanceof FencingTokenRejectedError;
export const isNotLockOwnerError = (e: unknown): e is NotLockOwnerError => e instanceof NotLockOwnerError;

/** A write reached a replica that is not the serving primary of `group`; `primary` is the latest hint. */
export class NotPrimaryError extends TroupeError {
  readonly code = ErrorCode.NotPrimary;
  readonly retryable = true;
  constructor(readonly group: string, readonly node: string, readonly primary: string | undefined, reason = 'not the primary') {
    super(`${node} cannot write to '${group}': ${reason}${primary ? ` (try ${primary})` : ' (no primary known)'}`);
  }
  override fields() { return { group: this.group, node: this.node, primary: this.primary }; }
}

/** A backup read was refused: the replica is `stalenessMs` behind the primary, over the `maxStalenessMs` bound. */
export class StaleReadError extends TroupeError {
  readonly code = ErrorCode.StaleRead;
  readonly retryable = true;
  constructor(readonly group: string, readonly node: string, readonly stalenessMs: number, readonly maxStalenessMs: number) {
    super(`read of '${group}' on ${node} refused: ${Number.isFinite(stalenessMs) ? `${stalenessMs} ms` : 'never'} caught up, bound ${maxStalenessMs} ms`);
  }
  override fields() { return { group: this.group, node: this.node, stalenessMs: this.stalenessMs, maxStalenessMs: this.maxStalenessMs }; }
}

/**
 * A synchronous write was not acknowledged by `needed` backups (timeout, or the primary was deposed
 * first). Its outcome is unknown: it is in the primary's log and may survive a failover.
 */
export class WriteUnacknowledgedError extends TroupeError {
  readonly code = ErrorCode.WriteUnacknowledged;
  readonly retryable = false;
  constructor(readonly group: string, readonly seq: number, readonly acks: number, readonly needed: number, readonly reason: string) {
    super(`write #${seq} to '${group}' not acknowledged (${acks} of ${needed} backup(s)): ${reason}; its outcome is unknown`);
  }
  override fields() { return { group: this.group, seq: this.seq, acks: this.acks, needed: this.needed, reason: this.reason }; }
}

export const isNotPrimaryError = (e: unknown): e is NotPrimaryError => e instanceof NotPrimaryError;
export const isStaleReadError = (e: unknown): e is StaleReadError => e instanceof StaleReadError;
export const isWriteUnacknowledgedError = (e: unknown): e is WriteUnacknowledgedError => e instanceof WriteUnacknowledgedError;
