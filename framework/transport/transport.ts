/**
 * The Transport contract: what troupe needs from a message bus. Two real implementations (NATS
 * and the in-process MemoryBus) behave the same way, checked by one conformance suite; a fault
 * wrapper can sit on top of either.
 *
 * Semantics (NATS core): subjects are dot-separated tokens; subscriptions may use `*` (one token)
 * and `>` (one or more trailing tokens); subscribers sharing a queue group name receive each message
 * once per group; messages from one publisher to one subscriber arrive in publish order; delivery is
 * at-most-once; `request` with nobody subscribed fails fast with `NoRespondersError`.
 */

/** A received message. */
export interface TransportMsg {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Where a response should go, when the sender asked for one. */
  readonly reply?: string;
  /** Publish `data` to `reply`. Returns false when the message had no reply subject. */
  respond(data: Uint8Array): boolean;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
}

export interface Subscription {
  readonly subject: string;
  /** Stop receiving. Idempotent. */
  unsubscribe(): void;
}

export interface PublishOptions {
  /** Reply subject carried with the message. */
  reply?: string;
}

export interface RequestOptions {
  /** Reject with `TransportTimeoutError` after this long. */
  timeoutMs: number;
  /** Reject with `AbortedError` when this fires. */
  signal?: AbortSignal;
}

/** Connection state; `closed` is final. */
export type TransportStatus = 'connected' | 'reconnecting' | 'closed';

/** Connection events, for logs and for the system to fail in-flight work early. */
export type TransportEvent =
  | { type: 'disconnected' }
  | { type: 'reconnecting' }
  | { type: 'reconnected' }
  | { type: 'error'; error: Error }
  | { type: 'closed' };

/**
 * A connection to a bus. Handlers are invoked asynchronously, never inside `publish`.
 * A handler that throws does not break the subscription (the error is reported as an `error` event).
 */
export interface Transport {
  /** 'nats', 'memory', or a wrapper's name. */
  readonly kind: string;
  /** Largest payload the bus accepts, in bytes. */
  readonly maxPayloadBytes: number;
  /**
   * Fire and forget. Throws `PayloadTooLargeError` for an oversize payload and
   * `TransportClosedError` after close; never throws for "nobody listening".
   */
  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void;
  subscribe(subject: string, handler: (msg: TransportMsg) => void, opts?: SubscribeOptions): Subscription;
  /** Request/reply. Rejects with `NoRespondersError`, `TransportTimeoutError` or `AbortedError`. */
  request(subject: string, data: Uint8Array, opts: RequestOptions): Promise<TransportMsg>;
  /** Resolves when everything published so far has been handed to the bus (a server round trip on NATS). */
  flush(): Promise<void>;
  /** Drain: stop new subscriptions, deliver what is in flight, then close. Idempotent. */
  close(): Promise<void>;
  status(): TransportStatus;
  /** Listen to connection events; returns an unsubscribe function. */
  onEvent(listener: (ev: TransportEvent) => void): () => void;
}
