/**
 * The NATS transport: one `@nats-io/transport-node` connection behind the troupe `Transport`
 * contract, with nats.js errors mapped to troupe's typed errors and credentials kept out of every
 * message, log field and error this module produces.
 */
import { connect, errors as natsErrors } from '@nats-io/transport-node';
import { drainWithin, Redactor, toNatsConnectionOptions } from './nats-connection.ts';
import type { Authenticator, Msg, NatsConnection, NodeConnectionOptions, Status } from '@nats-io/transport-node';
import { realClock } from '../clock.ts';
import type { Clock } from '../clock.ts';
import {
  AbortedError,
  ConnectionError,
  InvalidNameError,
  NoRespondersError,
  PayloadTooLargeError,
  TransportClosedError,
  TransportTimeoutError,
} from '../errors.ts';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './memory.ts';
import { assertValidQueue, assertValidSubject } from './subjects.ts';
import type {
  PublishOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportEvent,
  TransportMsg,
  TransportStatus,
} from './transport.ts';

/** Default connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Default pause between reconnect attempts to the same server. */
export const DEFAULT_RECONNECT_TIME_WAIT_MS = 250;
/** Default longest wait for `close()` to drain before the connection is closed outright. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** TLS settings passed through to nats.js (`@nats-io/transport-node`). */
export type NatsTlsOptions = NonNullable<NodeConnectionOptions['tls']>;

/** Options of {@link connectNats}. Credentials are handed to nats.js and never logged or echoed. */
export interface NatsTransportOptions {
  /** One URL or a list (`nats://host:4222`); credentials embedded in a URL are never echoed either. */
  servers: string | readonly string[];
  /** Connection name shown by the server's monitoring endpoints. */
  name?: string;
  /** User for user/password authentication. */
  user?: string;
  /** Password for user/password authentication. */
  pass?: string;
  /** Token authentication. */
  token?: string;
  /** NKey seed (`SU…`); signs the server's nonce through nats.js's `nkeyAuthenticator`. */
  nkeySeed?: string;
  /** Any nats.js authenticator(s), e.g. `credsAuthenticator`; combined with `nkeySeed` when both are given. */
  authenticator?: Authenticator | Authenticator[];
  /** TLS settings, passed through to nats.js. */
  tls?: NatsTlsOptions;
  /**
   * Reconnect after losing the server.
   * @default true
   */
  reconnect?: boolean;
  /**
   * Reconnect attempts per server before giving up; -1 is forever.
   * @default -1
   */
  maxReconnectAttempts?: number;
  /**
   * Pause between reconnect attempts to the same server, in ms.
   * @default 250
   */
  reconnectTimeWaitMs?: number;
  /**
   * How long the initial connect may take, in ms.
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * Longest wait for `close()` to drain; after it the connection is closed without draining.
   * @default 10000
   */
  drainTimeoutMs?: number;
  /**
   * Time source for the drain deadline.
   * @default realClock()
   */
  clock?: Clock;
}

interface ResolvedNatsOptions {
  servers: string[];
  name: string | undefined;
  user: string | undefined;
  pass: string | undefined;
  token: string | undefined;
  nkeySeed: string | undefined;
  authenticators: Authenticator[];
  tls: NatsTlsOptions | undefined;
  reconnect: boolean;
  maxReconnectAttempts: number;
  reconnectTimeWaitMs: number;
  timeoutMs: number;
  drainTimeoutMs: number;
  clock: Clock;
}

function resolveNatsOptions(options: NatsTransportOptions): ResolvedNatsOptions {
  const bad = (property: string, why: string): never => {
    throw new TypeError(`NATS transport option ${property} ${why}`);
  };
  if (options === null || typeof options !== 'object') bad('(options)', 'must be an object');
  const servers = typeof options.servers === 'string' ? [options.servers] : Array.from(options.servers ?? []);
  if (servers.length === 0 || servers.some((s) => typeof s !== 'string' || s.trim() === '')) {
    bad('servers', 'must be a non-empty URL or list of URLs');
  }
  const durationMs = (property: keyof NatsTransportOptions, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) bad(property, `must be a number >= ${min} (ms)`);
    return value as number;
  };
  const maxReconnectAttempts = options.maxReconnectAttempts ?? -1;
  if (!Number.isInteger(maxReconnectAttempts) || maxReconnectAttempts < -1) bad('maxReconnectAttempts', 'must be an integer >= -1');
  for (const key of ['user', 'pass', 'token', 'nkeySeed', 'name'] as const) {
    const v = options[key];
    if (v !== undefined && typeof v !== 'string') bad(key, 'must be a string');
  }
  const authenticators = options.authenticator === undefined ? [] : Array.isArray(options.authenticator) ? [...options.authenticator] : [options.authenticator];
  return {
    servers,
    name: options.name,
    user: options.user,
    pass: options.pass,
    token: options.token,
    nkeySeed: options.nkeySeed,
    authenticators,
    tls: options.tls,
    reconnect: options.reconnect ?? true,
    maxReconnectAttempts,
    reconnectTimeWaitMs: durationMs('reconnectTimeWaitMs', options.reconnectTimeWaitMs, DEFAULT_RECONNECT_TIME_WAIT_MS, 0),
    timeoutMs: durationMs('timeoutMs', options.timeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 1),
    drainTimeoutMs: durationMs('drainTimeoutMs', options.drainTimeoutMs, DEFAULT_DRAIN_TIMEOUT_MS, 1),
    clock: options.clock ?? realClock(),
  };
}

/**
 * Connect to NATS and return a `Transport` over that one connection.
 * Rejects with `ConnectionError` (naming the servers, never the credentials) when it cannot connect.
 * @example
 * const transport = await connectNats({ servers: 'nats://127.0.0.1:4222', name: 'node-a' });
 * const sub = transport.subscribe('troupe.demo.>', (msg) => msg.respond(msg.data));
 * await transport.close();
 */
export async function connectNats(options: NatsTransportOptions): Promise<Transport> {
  const resolved = resolveNatsOptions(options);
  const redactor = new Redactor(resolved);
  let nc: NatsConnection;
  try {
    nc = await connect(toNatsConnectionOptions(resolved));
  } catch (err) {
    throw new ConnectionError(redactor.serversLabel, describeConnectFailure(err, resolved, redactor), { cause: redactor.error(err) });
  }
  return new NatsTransport(nc, resolved, redactor);
}

function describeConnectFailure(err: unknown, o: ResolvedNatsOptions, redactor: Redactor): string {
  if (err instanceof natsErrors.AuthorizationError) return 'authorization violation (check the credentials)';
  if (err instanceof natsErrors.UserAuthenticationExpiredError) return 'user authentication expired';
  if (err instanceof natsErrors.TimeoutError) return `timed out after ${o.timeoutMs} ms`;
  return redactor.text(err instanceof Error ? err.message : String(err)) || 'connection failed';
}

class NatsMsg implements TransportMsg {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly reply: string | undefined;

  constructor(msg: Msg, private readonly transport: NatsTransport) {
    this.subject = msg.subject;
    this.data = msg.data;
    this.reply = msg.reply ? msg.reply : undefined;
  }

  respond(data: Uint8Array): boolean {
    if (this.reply === undefined) return false;
    this.transport.publish(this.reply, data);
    return true;
  }
}

class NatsTransport implements Transport {
  readonly kind = 'nats';
  private state: TransportStatus = 'connected';
  private closeRequested = false;
  private closing: Promise<void> | undefined;
  private readonly listeners = new Set<(ev: TransportEvent) => void>();
  /** Rejecters of requests in flight, failed early when the connection drops. */
  private readonly inflight = new Set<(err: Error) => void>();
  private lastMaxPayload: number;
  private reconnectingReported = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly options: ResolvedNatsOptions,
    private readonly redactor: Redactor,
  ) {
    this.lastMaxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD_BYTES;
    void this.watchStatus();
    nc.closed().then(
      () => this.markClosed(),
      () => this.markClosed(),
    );
  }

  get maxPayloadBytes(): number {
    const max = this.nc.info?.max_payload;
    if (typeof max === 'number' && max > 0) this.lastMaxPayload = max;
    return this.lastMaxPayload;
  }

  status(): TransportStatus {
    return this.state;
  }

  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void {
    if (this.nc.isClosed()) throw new TransportClosedError(subject);
    assertValidSubject(subject, 'publish');
    const reply = opts?.reply;
    if (reply !== undefined) assertValidSubject(reply, 'publish');
    this.checkPayload(subject, data);
    try {
      this.nc.publish(subject, data, reply !== undefined ? { reply } : undefined);
    } catch (err) {
      throw this.mapError(err, subject);
    }
  }

  subscribe(subject: string, handler: (msg: TransportMsg) => void, opts?: SubscribeOptions): Subscription {
    if (this.closeRequested || this.nc.isClosed()) throw new TransportClosedError();
    assertValidSubject(subject, 'subscribe');
    const queue = opts?.queue;
    if (queue !== undefined) assertValidQueue(queue);
    let sub;
    try {
      sub = this.nc.subscribe(subject, {
        ...(queue !== undefined ? { queue } : {}),
        callback: (err, msg) => {
          if (err) {
            this.emit({ type: 'error', error: this.redactor.error(err) });
            return;
          }
          this.invoke(handler, msg);
        },
      });
    } catch (err) {
      throw this.mapError(err, subject);
    }
    const natsSub = sub;
    return {
      subject,
      unsubscribe: () => {
        if (natsSub.isClosed() || this.nc.isClosed()) return;
        try {
          natsSub.unsubscribe();
        } catch {
          // Already gone with its connection: nothing left to stop.
        }
      },
    };
  }

  request(subject: string, data: Uint8Array, opts: RequestOptions): Promise<TransportMsg> {
    const { timeoutMs, signal } = opts;
    try {
      if (this.closeRequested || this.nc.isClosed()) throw new TransportClosedError(subject);
      assertValidSubject(subject, 'publish');
      this.checkPayload(subject, data);
      if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
        throw new RangeError(`request option timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
      }
      if (signal?.aborted) throw new AbortedError(`request to ${subject}`, signal.reason);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    let pending: Promise<Msg>;
    try {
      // nats.js wants an integer timeout of at least 1 ms.
      pending = this.nc.request(subject, data, { timeout: Math.max(1, Math.ceil(timeoutMs)) });
    } catch (err) {
      return Promise.reject(this.mapError(err, subject, timeoutMs));
    }
    return new Promise<TransportMsg>((resolve, reject) => {
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        this.inflight.delete(fail);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const fail = (err: Error): void => {
        if (finish()) reject(err);
      };
      const onAbort = (): void => fail(new AbortedError(`request to ${subject}`, signal?.reason));
      this.inflight.add(fail);
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (msg) => {
          if (finish()) resolve(new NatsMsg(msg, this));
        },
        (err: unknown) => fail(this.mapError(err, subject, timeoutMs)),
      );
    });
  }

  async flush(): Promise<void> {
    if (this.nc.isClosed()) throw new TransportClosedError();
    try {
      await this.nc.flush();
    } catch (err) {
      throw this.mapError(err);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.drainAndClose();
    return this.closing;
  }

  onEvent(listener: (ev: TransportEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // --- internals --------------------------------------------------------------------------

  private invoke(handler: (msg: TransportMsg) => void, msg: Msg): void {
    // nats.js runs callbacks inside its socket reader: an exception here would break the connection.
    try {
      const r: unknown = handler(new NatsMsg(msg, this));
      if (r !== undefined && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as PromiseLike<unknown>).then(undefined, (err: unknown) => this.emitHandlerError(err));
      }
    } catch (err) {
      this.emitHandlerError(err);
    }
  }

  private emitHandlerError(err: unknown): void {
    this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
  }

  private checkPayload(subject: string, data: Uint8Array): void {
    const max = this.maxPayloadBytes;
    if (data.byteLength > max) throw new PayloadTooLargeError(data.byteLength, max, subject);
  }

  /**
   * nats.js v3 errors → troupe errors. Requests surface no-responders as a `RequestError` whose
   * cause is `NoRespondersError` (the server's 503 status), timeouts as a bare `TimeoutError`, and
   * a connection closed under a pending request as `RequestError('connection closed')`.
   */
  private mapError(err: unknown, subject?: string, timeoutMs?: number): Error {
    if (err instanceof natsErrors.TimeoutError && subject !== undefined && timeoutMs !== undefined) {
      return new TransportTimeoutError(subject, timeoutMs);
    }
    if (err instanceof natsErrors.NoRespondersError) return new NoRespondersError(subject ?? err.subject);
    if (err instanceof natsErrors.RequestError) {
      if (err.isNoResponders()) return new NoRespondersError(subject ?? '(unknown subject)');
      if (this.nc.isClosed() || /closed|draining/i.test(err.message)) return new TransportClosedError(subject, { cause: err });
      if (/disconnect/i.test(err.message)) {
        return new ConnectionError(this.redactor.serversLabel, 'connection lost while the request was in flight', { cause: err });
      }
    }
    if (err instanceof natsErrors.ClosedConnectionError || err instanceof natsErrors.DrainingConnectionError) {
      return new TransportClosedError(subject, { cause: err });
    }
    if (err instanceof natsErrors.InvalidSubjectError) return new InvalidNameError(subject ?? '', 'not a valid NATS subject');
    if (err instanceof natsErrors.InvalidArgumentError && /max_payload/.test(err.message)) {
      return new PayloadTooLargeError(this.maxPayloadBytes + 1, this.maxPayloadBytes, subject);
    }
    return this.redactor.error(err);
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) this.onStatus(s);
    } catch (err) {
      this.emit({ type: 'error', error: this.redactor.error(err) });
    }
  }

  private onStatus(s: Status): void {
    switch (s.type) {
      case 'disconnect': {
        if (this.state === 'closed') return;
        this.state = 'reconnecting';
        this.emit({ type: 'disconnected' });
        // The server may have taken the request or its reply down with it: fail fast, retryably,
        // rather than make every caller wait out its full timeout.
        const err = new ConnectionError(this.redactor.serversLabel, 'connection lost while the request was in flight');
        for (const fail of Array.from(this.inflight)) fail(err);
        return;
      }
      case 'reconnecting':
        // nats.js reports every dial attempt; one event per outage is enough for logs.
        if (this.state === 'closed' || this.reconnectingReported) return;
        this.reconnectingReported = true;
        this.state = 'reconnecting';
        this.emit({ type: 'reconnecting' });
        return;
      case 'reconnect':
        if (this.state === 'closed') return;
        this.state = 'connected';
        this.reconnectingReported = false;
        this.emit({ type: 'reconnected' });
        return;
      case 'error':
        this.emit({ type: 'error', error: this.redactor.error(s.error) });
        return;
      case 'close':
        this.markClosed();
        return;
      default:
        return;
    }
  }

  private async drainAndClose(): Promise<void> {
    this.closeRequested = true;
    if (this.nc.isClosed()) {
      this.markClosed();
      return;
    }
    await drainWithin(this.nc, { clock: this.options.clock, timeoutMs: this.options.drainTimeoutMs, reconnecting: this.state === 'reconnecting' });
    this.markClosed();
  }

  private markClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const err = new TransportClosedError();
    for (const fail of Array.from(this.inflight)) fail(err);
    this.emit({ type: 'closed' });
  }

  private emit(ev: TransportEvent): void {
    for (const l of Array.from(this.listeners)) {
      try {
        l(ev);
      } catch {
        // A broken listener must not stop the others.
      }
    }
  }
}
