/**
 * A `KvStore` over a NATS JetStream KV bucket (`@nats-io/kv`), on its own nats.js connection.
 * nats.js errors become troupe's typed errors — a lost compare-and-set is `KvConflictError`; no
 * responders, timeouts, a lost connection or a closed store are `StoreUnavailableError` — and no
 * call waits longer than `timeoutMs`. Credentials never appear in errors this module produces.
 *
 * TTL: nats-server 2.9 and 2.10 have no per-key TTL, only a bucket-wide max age, and they silently
 * ignore the per-message TTL that `@nats-io/kv` can request (`create(k, v, markerTTL)`, bucket
 * `markerTTL`, both nats-server ≥ 2.11). So a key's TTL here IS the bucket's `ttlMs`: every
 * revision of every key is removed `ttlMs` after it was written, and `create(…, { ttlMs })` is
 * accepted only when it equals the bucket's `ttlMs`.
 */
import { jetstream, JetStreamApiCodes, JetStreamApiError, StorageType } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude } from '@nats-io/kv';
import type { KV, KvEntry as NatsKvEntry, KvStatus, KvWatchEntry } from '@nats-io/kv';
import { connect, errors as natsErrors } from '@nats-io/transport-node';
import { drainWithin, Redactor, toNatsConnectionOptions } from '../transport/nats-connection.ts';
import type { NatsConnection, QueuedIterator } from '@nats-io/transport-node';
import { realClock } from '../clock.ts';
import type { Clock, TimerId } from '../clock.ts';
import { InvalidNameError, isTroupeError, KvConflictError, PayloadTooLargeError, StoreUnavailableError } from '../errors.ts';
import type { NatsTransportOptions } from '../transport/nats.ts';
import {
  assertValidKey,
  assertValidKeyPattern,
  assertValidRevision,
  assertValidTtl,
  MAX_KV_HISTORY,
} from './store.ts';
import type { KvCreateOptions, KvDeleteOptions, KvEntry, KvStore, KvWatch, KvWatchOptions } from './store.ts';

/** Default longest wait of one store call. */
export const DEFAULT_NATS_KV_TIMEOUT_MS = 5_000;
/** Default longest wait for the initial connection. */
export const DEFAULT_NATS_KV_CONNECT_TIMEOUT_MS = 10_000;
/** Default copies of the bucket in a cluster. */
export const DEFAULT_NATS_KV_REPLICAS = 1;
/** Default revisions retained per key. */
export const DEFAULT_NATS_KV_HISTORY = 1;
/** Default pause between reconnect attempts to the same server. */
export const DEFAULT_NATS_KV_RECONNECT_TIME_WAIT_MS = 250;
/** Default interval of the bucket-topology check that keeps watches alive across cluster failovers. */
export const DEFAULT_NATS_KV_WATCH_PROBE_INTERVAL_MS = 5_000;

/**
 * Options of {@link createNatsKvStore}: the connection fields of the NATS transport, plus the
 * bucket. Bucket settings (`replicas`, `history`, `ttlMs`, `storage`) apply when the bucket is
 * created; an existing bucket is never reconfigured, and opening it with an explicitly different
 * setting fails with `RangeError`.
 */
export interface NatsKvStoreOptions
  extends Pick<NatsTransportOptions, 'servers' | 'name' | 'user' | 'pass' | 'token' | 'nkeySeed' | 'authenticator' | 'tls' | 'reconnectTimeWaitMs'> {
  /** Bucket name: letters, digits, `-` and `_` (its stream is `KV_<bucket>`). */
  bucket: string;
  /**
   * Copies of the bucket (1, 3 or 5 in practice; at most the cluster size).
   * @default 1
   */
  replicas?: number;
  /**
   * Revisions retained per key, 1 to 64 (what `watch(…, { includeHistory: true })` replays).
   * @default 1
   */
  history?: number;
  /**
   * Bucket max age: every revision is removed this long after it was written, which makes it
   * the TTL of every key (renewed by each write). Undefined: keys never expire, and
   * `create(…, { ttlMs })` is rejected.
   */
  ttlMs?: number;
  /**
   * Where the server keeps the bucket.
   * @default 'file'
   */
  storage?: 'file' | 'memory';
  /**
   * Longest wait of one call; after it the call fails with `StoreUnavailableError`.
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * Longest wait for the initial connection.
   * @default 10000
   */
  connectTimeoutMs?: number;
  /**
   * While watches are open, how often the store asks the server who leads the bucket and which
   * replicas are offline; on a change every watch is reopened from the revision after the last one
   * it delivered. (A nats.js KV watcher is one consumer on one server: when that server dies while
   * this client stays connected elsewhere, nats.js alone may leave the watch silent for a minute
   * or more.) Reconnects reopen watches at once, whatever this says.
   * @default 5000
   */
  watchProbeIntervalMs?: number;
  /**
   * Time source for call deadlines and the watch probe.
   * @default realClock()
   */
  clock?: Clock;
}

interface ResolvedNatsKvOptions {
  servers: string[];
  name: string | undefined;
  user: string | undefined;
  pass: string | undefined;
  token: string | undefined;
  nkeySeed: string | undefined;
  authenticator: NatsKvStoreOptions['authenticator'];
  tls: NatsKvStoreOptions['tls'];
  reconnectTimeWaitMs: number;
  bucket: string;
  replicas: number;
  history: number;
  ttlMs: number | undefined;
  storage: 'file' | 'memory';
  timeoutMs: number;
  connectTimeoutMs: number;
  watchProbeIntervalMs: number;
  clock: Clock;
  /** Bucket settings the caller gave explicitly (checked against an existing bucket). */
  explicit: { replicas: boolean; history: boolean; ttlMs: boolean };
}

const BUCKET_NAME = /^[-_a-zA-Z0-9]+$/;

function resolveNatsKvOptions(options: NatsKvStoreOptions): ResolvedNatsKvOptions {
  const bad = (property: string, why: string, value: unknown): never => {
    // Never echo credentials: only non-secret options reach this with their value.
    throw new RangeError(`NATS KV store option ${property} ${why}, got ${String(value)}`);
  };
  if (options === null || typeof options !== 'object') bad('(options)', 'must be an object', options);
  const servers = typeof options.servers === 'string' ? [options.servers] : Array.from(options.servers ?? []);
  if (servers.length === 0 || servers.some((s) => typeof s !== 'string' || s.trim() === '')) {
    throw new RangeError('NATS KV store option servers must be a non-empty URL or list of URLs');
  }
  for (const key of ['user', 'pass', 'token', 'nkeySeed', 'name'] as const) {
    const v = options[key];
    if (v !== undefined && typeof v !== 'string') throw new RangeError(`NATS KV store option ${key} must be a string`);
  }
  if (typeof options.bucket !== 'string' || !BUCKET_NAME.test(options.bucket)) {
    throw new InvalidNameError(String(options.bucket), 'a bucket name may only contain letters, digits, - and _');
  }
  const int = (property: 'replicas' | 'history', value: number | undefined, fallback: number, max: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 1 || value > max) bad(property, `must be an integer in [1, ${max}]`, value);
    return value;
  };
  const ms = (property: 'timeoutMs' | 'connectTimeoutMs' | 'reconnectTimeWaitMs' | 'watchProbeIntervalMs', value: number | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) bad(property, `must be a number >= ${min} (ms)`, value);
    return value;
  };
  if (options.ttlMs !== undefined) assertValidTtl('NATS KV store option ttlMs', options.ttlMs);
  if (options.storage !== undefined && options.storage !== 'file' && options.storage !== 'memory') {
    bad('storage', "must be 'file' or 'memory'", options.storage);
  }
  return {
    servers,
    name: options.name,
    user: options.user,
    pass: options.pass,
    token: options.token,
    nkeySeed: options.nkeySeed,
    authenticator: options.authenticator,
    tls: options.tls,
    reconnectTimeWaitMs: ms('reconnectTimeWaitMs', options.reconnectTimeWaitMs, DEFAULT_NATS_KV_RECONNECT_TIME_WAIT_MS, 0),
    bucket: options.bucket,
    replicas: int('replicas', options.replicas, DEFAULT_NATS_KV_REPLICAS, 5),
    history: int('history', options.history, DEFAULT_NATS_KV_HISTORY, MAX_KV_HISTORY),
    ttlMs: options.ttlMs,
    storage: options.storage ?? 'file',
    timeoutMs: ms('timeoutMs', options.timeoutMs, DEFAULT_NATS_KV_TIMEOUT_MS, 1),
    connectTimeoutMs: ms('connectTimeoutMs', options.connectTimeoutMs, DEFAULT_NATS_KV_CONNECT_TIMEOUT_MS, 1),
    watchProbeIntervalMs: ms('watchProbeIntervalMs', options.watchProbeIntervalMs, DEFAULT_NATS_KV_WATCH_PROBE_INTERVAL_MS, 10),
    clock: options.clock ?? realClock(),
    explicit: { replicas: options.replicas !== undefined, history: options.history !== undefined, ttlMs: options.ttlMs !== undefined },
  };
}

/**
 * Connect to NATS, create the bucket if it does not exist (or open it), and return a `KvStore`
 * over it. Rejects with `StoreUnavailableError` when the servers cannot be reached or JetStream is
 * not enabled, and with `RangeError` for bad options or an existing bucket that contradicts them.
 * @example
 * const store = await createNatsKvStore({ servers: 'nats://127.0.0.1:4222', bucket: 'locks', ttlMs: 10_000 });
 * const rev = await store.create('lock.orders', new TextEncoder().encode('node-a'), { ttlMs: 10_000 });
 * await store.close();
 */
export async function createNatsKvStore(options: NatsKvStoreOptions): Promise<KvStore> {
  const o = resolveNatsKvOptions(options);
  const redactor = new Redactor(o);
  const label = `nats-kv:${o.bucket}`;
  let nc: NatsConnection;
  try {
    nc = await connect(toNatsConnectionOptions({
      ...o,
      authenticators: o.authenticator === undefined ? [] : Array.isArray(o.authenticator) ? o.authenticator : [o.authenticator],
      reconnect: true,
      maxReconnectAttempts: -1,
      timeoutMs: o.connectTimeoutMs,
    }));
  } catch (err) {
    const auth = err instanceof natsErrors.AuthorizationError || err instanceof natsErrors.UserAuthenticationExpiredError;
    const reason = auth
      ? `cannot connect to ${redactor.serversLabel}: authorization violation (check the credentials)`
      : err instanceof natsErrors.TimeoutError
        ? `cannot connect to ${redactor.serversLabel}: timed out after ${o.connectTimeoutMs} ms`
        : `cannot connect to ${redactor.serversLabel}: ${redactor.text(err instanceof Error ? err.message : String(err)) || 'connection failed'}`;
    // Wrong credentials or a malformed URL (a TypeError from URL parsing) will not fix themselves.
    throw new StoreUnavailableError(label, reason, { cause: redactor.error(err), retryable: !auth && !(err instanceof TypeError) });
  }
  let kv: KV;
  let status: KvStatus;
  try {
    const kvm = new Kvm(jetstream(nc, { timeout: o.timeoutMs }));
    kv = await kvm.create(o.bucket, {
      replicas: o.replicas,
      history: o.history,
      storage: o.storage === 'memory' ? StorageType.Memory : StorageType.File,
      // Direct gets may be answered by a lagging replica; reads through the stream leader are not.
      allow_direct: false,
      timeout: o.timeoutMs,
      ...(o.ttlMs !== undefined ? { ttl: o.ttlMs } : {}),
    });
    status = await kv.status();
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw mapNatsError(err, { label, redactor, op: `open bucket '${o.bucket}'`, timeoutMs: o.timeoutMs });
  }
  // Kvm.create opens an existing bucket as it is, silently ignoring the settings it was given.
  const mismatch = (
    [
      ['replicas', o.explicit.replicas, o.replicas, status.replicas],
      ['history', o.explicit.history, o.history, status.history],
      ['ttlMs', o.explicit.ttlMs, o.ttlMs ?? 0, status.ttl],
    ] as const
  ).find(([, explicit, wanted, actual]) => explicit && wanted !== actual);
  if (mismatch) {
    await nc.close().catch(() => undefined);
    const [property, , wanted, actual] = mismatch;
    throw new RangeError(
      `NATS KV store option ${property} is ${wanted} but bucket '${o.bucket}' already exists with ${property} ${actual}; existing buckets are not reconfigured`,
    );
  }
  return new NatsKvStore(nc, kv, o, redactor, status.ttl > 0 ? status.ttl : undefined, topologyOf(status));
}

const JS_CLUSTER_NO_PEERS = 10005;
const JS_CLUSTER_NOT_AVAILABLE = 10008;

interface MapContext {
  label: string;
  redactor: Redactor;
  op: string;
  timeoutMs: number;
  key?: string;
  expectedRevision?: number;
}

/**
 * nats.js / @nats-io/kv errors → troupe errors. A failed compare-and-set is a JetStream API error
 * 10071 "wrong last sequence: N" (N is the key's last revision, 0 when it has none); no responders
 * reach us as `JetStreamNotEnabled` (also when a clustered bucket has no leader for a moment, or
 * a malformed subject matches no stream); timeouts as nats-core `TimeoutError`.
 */
function mapNatsError(err: unknown, c: MapContext): Error {
  if (isTroupeError(err) || err instanceof RangeError) return err;
  const unavailable = (reason: string, retryable = true): StoreUnavailableError =>
    new StoreUnavailableError(c.label, `${c.op}: ${reason}`, { cause: c.redactor.error(err), retryable });
  if (err instanceof JetStreamApiError) {
    if (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown) {
      const m = /wrong last sequence: (\d+)/.exec(err.message);
      const actual = m ? Number(m[1]) : undefined;
      return new KvConflictError(c.key ?? '', c.expectedRevision, actual === 0 ? undefined : actual);
    }
    if (err.code === JetStreamApiCodes.StreamNotFound) return unavailable(`the bucket's stream does not exist (was the bucket deleted?)`);
    // 10005: too few servers up to place the replicas (a forming cluster, or replicas > servers up);
    // 10008: JetStream temporarily unavailable. Neither is in JetStreamApiCodes.
    if (err.code === JS_CLUSTER_NO_PEERS) return unavailable(`${c.redactor.text(err.message)} (fewer servers up than replicas?)`);
    if (err.code === JS_CLUSTER_NOT_AVAILABLE || err.status >= 500) return unavailable(c.redactor.text(err.message));
    return c.redactor.error(err);
  }
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') {
    return unavailable('no JetStream responder (JetStream disabled, or the bucket has no leader right now)');
  }
  if (err instanceof natsErrors.TimeoutError) return unavailable(`no answer within ${c.timeoutMs} ms`);
  if (err instanceof natsErrors.ClosedConnectionError) return unavailable('the connection is closed', false);
  if (err instanceof natsErrors.DrainingConnectionError) return unavailable('the connection is draining', false);
  if (err instanceof natsErrors.RequestError) {
    return unavailable(err.isNoResponders() ? 'no responders' : c.redactor.text(err.message));
  }
  if (err instanceof natsErrors.ConnectionError || err instanceof natsErrors.ProtocolError) return unavailable(c.redactor.text(err.message));
  return c.redactor.error(err);
}

/** The bucket's stream leader and offline replicas, as one comparable string ('' on a single server). */
function topologyOf(status: KvStatus): string {
  const cluster = status.streamInfo.cluster;
  const offline = (cluster?.replicas ?? []).filter((r) => r.offline).map((r) => r.name).sort();
  return `${cluster?.leader ?? ''}|${offline.join(',')}`;
}

function toEntry(e: NatsKvEntry): KvEntry {
  return {
    key: e.key,
    value: e.operation === 'PUT' ? e.value : new Uint8Array(0),
    revision: e.revision,
    operation: e.operation === 'PUT' ? 'put' : 'delete',
    createdMs: e.created.getTime(),
  };
}

type ConnState = 'connected' | 'reconnecting' | 'closed';

class NatsKvStore implements KvStore {
  readonly kind = 'nats-kv';
  private readonly label: string;
  private state: ConnState = 'connected';
  private closeRequested = false;
  private closing: Promise<void> | undefined;
  /** Rejecters of calls in flight, failed early when the connection drops or the store closes. */
  private readonly inflight = new Set<(err: Error) => void>();
  private readonly watches = new Set<NatsWatch>();
  private probeTimer: TimerId | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    readonly options: ResolvedNatsKvOptions,
    private readonly redactor: Redactor,
    private readonly bucketTtlMs: number | undefined,
    /** Bucket leader and offline replicas when last looked at (see {@link topologyOf}). */
    private topology: string,
  ) {
    this.label = `nats-kv:${options.bucket}`;
    void this.watchStatus();
    nc.closed().then(
      () => this.markClosed(),
      () => this.markClosed(),
    );
  }

  get(key: string): Promise<KvEntry | undefined> {
    return this.run('get', { key }, async () => {
      const e = await this.kv.get(key);
      return e && e.operation === 'PUT' ? toEntry(e) : undefined;
    });
  }

  create(key: string, value: Uint8Array, opts?: KvCreateOptions): Promise<number> {
    return this.run('create', { key, value }, () => {
      if (opts?.ttlMs !== undefined) this.checkTtl(opts.ttlMs);
      // Deliberately no markerTTL argument: nats-server < 2.11 ignores it and the key would never expire.
      return this.kv.create(key, value);
    });
  }

  update(key: string, value: Uint8Array, expectedRevision: number): Promise<number> {
    return this.run('update', { key, value, expectedRevision }, () => {
      assertValidRevision('update expectedRevision', expectedRevision); // kv.update throws synchronously for <= 0
      return this.kv.update(key, value, expectedRevision);
    });
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.run('put', { key, value }, () => this.kv.put(key, value));
  }

  delete(key: string, opts?: KvDeleteOptions): Promise<void> {
    const expectedRevision = opts?.expectedRevision;
    return this.run('delete', { key, expectedRevision }, () => {
      if (expectedRevision === undefined) return this.kv.delete(key);
      assertValidRevision('delete option expectedRevision', expectedRevision);
      return this.kv.delete(key, { previousSeq: expectedRevision });
    });
  }

  async watch(keyOrPattern: string, onEntry: (entry: KvEntry) => void, opts?: KvWatchOptions): Promise<KvWatch> {
    this.checkUsable('watch');
    assertValidKeyPattern(keyOrPattern);
    if (typeof onEntry !== 'function') throw new TypeError('watch needs an onEntry function');
    const w = new NatsWatch(this, keyOrPattern, onEntry, opts?.includeHistory === true, opts?.onError);
    this.watches.add(w);
    this.scheduleProbe();
    try {
      await w.start();
    } catch (err) {
      w.stop();
      throw err;
    }
    return w;
  }

  keys(pattern = '>'): Promise<string[]> {
    let abandoned = false;
    return this.run(
      'keys',
      { pattern },
      async () => {
        const iter = await this.kv.keys(pattern);
        const out = new Set<string>();
        for await (const k of iter) {
          if (abandoned) {
            iter.stop();
            break;
          }
          out.add(k);
        }
        return Array.from(out).sort();
      },
      () => {
        abandoned = true;
      },
    );
  }

  close(): Promise<void> {
    this.closing ??= this.drainAndClose();
    return this.closing;
  }

  // --- used by NatsWatch ------------------------------------------------------------------

  /** Opens a nats.js watcher with the same deadline and error mapping as every other call. */
  openWatcher(pattern: string, include: KvWatchInclude, resumeFromRevision?: number): Promise<QueuedIterator<KvWatchEntry>> {
    let abandoned = false;
    let opened: QueuedIterator<KvWatchEntry> | undefined;
    return this.run(
      'watch',
      { pattern },
      async () => {
        opened = await this.kv.watch({
          key: pattern,
          include,
          ...(resumeFromRevision !== undefined ? { resumeFromRevision } : {}),
        });
        if (abandoned) opened.stop();
        return opened;
      },
      () => {
        abandoned = true;
        opened?.stop();
      },
    );
  }

  forgetWatch(w: NatsWatch): void {
    this.watches.delete(w);
  }

  unavailable(reason: string, retryable = true): StoreUnavailableError {
    return new StoreUnavailableError(this.label, reason, { retryable });
  }

  get isClosing(): boolean {
    return this.closeRequested || this.state === 'closed';
  }

  get retryDelayMs(): number {
    return Math.max(this.options.reconnectTimeWaitMs, 100);
  }

  // --- internals --------------------------------------------------------------------------

  private scheduleProbe(): void {
    if (this.probeTimer !== undefined || this.isClosing || this.watches.size === 0) return;
    this.probeTimer = this.options.clock.setTimeout(() => {
      void this.probe().finally(() => {
        this.probeTimer = undefined;
        this.scheduleProbe();
      });
    }, this.options.watchProbeIntervalMs);
  }

  /** Reopens every watch when the bucket's leader or set of offline replicas has changed. */
  private async probe(): Promise<void> {
    if (this.state !== 'connected') return; // the reconnect reopens the watches
    let topology: string;
    try {
      topology = topologyOf(await this.run('watch probe', {}, () => this.kv.status()));
    } catch {
      return; // unavailable (e.g. mid-election): look again next time
    }
    if (topology === this.topology) return;
    // Possibly a spurious reopen (the change predates a watch): harmless, it resumes where it was.
    this.topology = topology;
    for (const w of Array.from(this.watches)) w.resume();
  }

  private checkTtl(ttlMs: number): void {
    assertValidTtl('create option ttlMs', ttlMs);
    if (this.bucketTtlMs === undefined) {
      throw new RangeError(
        `create option ttlMs: bucket '${this.options.bucket}' has no TTL, and a NATS KV key's TTL is its bucket's max age ` +
          '(per-key TTL needs nats-server 2.11); open the store with ttlMs',
      );
    }
    if (ttlMs !== this.bucketTtlMs) {
      throw new RangeError(
        `create option ttlMs must equal the TTL of bucket '${this.options.bucket}' (${this.bucketTtlMs} ms), got ${ttlMs}; ` +
          'a NATS KV key\'s TTL is its bucket\'s max age (per-key TTL needs nats-server 2.11)',
      );
    }
  }

  private checkUsable(op: string): void {
    if (this.isClosing) throw this.unavailable('the store is closed', false);
    if (this.state === 'reconnecting') throw this.unavailable(`${op}: disconnected from ${this.redactor.serversLabel}, reconnecting`);
  }

  /**
   * Runs one call: validates its arguments, fails fast while disconnected, bounds it by
   * `timeoutMs` on the injected clock, fails it early when the connection drops, and maps errors.
   */
  private run<T>(
    op: string,
    args: { key?: string; value?: Uint8Array; expectedRevision?: number; pattern?: string },
    fn: () => Promise<T>,
    onAbandon?: () => void,
  ): Promise<T> {
    const ctx: MapContext = { label: this.label, redactor: this.redactor, op, timeoutMs: this.options.timeoutMs };
    if (args.key !== undefined) ctx.key = args.key;
    if (args.expectedRevision !== undefined) ctx.expectedRevision = args.expectedRevision;
    try {
      this.checkUsable(op);
      if (args.key !== undefined) assertValidKey(args.key);
      if (args.pattern !== undefined) assertValidKeyPattern(args.pattern);
      if (args.value !== undefined) {
        if (!(args.value instanceof Uint8Array)) throw new TypeError(`the value of '${args.key}' must be a Uint8Array`);
        const max = this.nc.info?.max_payload;
        if (typeof max === 'number' && max > 0 && args.value.byteLength > max) throw new PayloadTooLargeError(args.value.byteLength, max, args.key);
      }
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const clock = this.options.clock;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        clock.clearTimeout(timer);
        this.inflight.delete(fail);
        return true;
      };
      const fail = (err: Error): void => {
        if (!finish()) return;
        onAbandon?.();
        reject(err);
      };
      const timer: TimerId = clock.setTimeout(
        () => fail(new StoreUnavailableError(this.label, `${op}: no answer within ${this.options.timeoutMs} ms`)),
        this.options.timeoutMs,
      );
      this.inflight.add(fail);
      let pending: Promise<T>;
      try {
        pending = fn();
      } catch (err) {
        fail(mapNatsError(err, ctx));
        return;
      }
      pending.then(
        (v) => {
          if (finish()) resolve(v);
        },
        (err: unknown) => fail(mapNatsError(err, ctx)),
      );
    });
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        switch (s.type) {
          case 'disconnect': {
            if (this.state === 'closed') break;
            this.state = 'reconnecting';
            // The server may have taken the call or its answer down with it: fail fast, retryably,
            // rather than make every caller wait out its full timeout.
            const err = this.unavailable(`connection to ${this.redactor.serversLabel} lost while the call was in flight`);
            for (const fail of Array.from(this.inflight)) fail(err);
            break;
          }
          case 'reconnect':
            if (this.state === 'closed') break;
            this.state = 'connected';
            for (const w of Array.from(this.watches)) w.resume();
            break;
          case 'close':
            this.markClosed();
            break;
          default:
            break;
        }
      }
    } catch {
      // The status iterator ends with the connection; nothing to report.
    }
  }

  private async drainAndClose(): Promise<void> {
    this.closeRequested = true;
    this.options.clock.clearTimeout(this.probeTimer);
    for (const w of Array.from(this.watches)) w.stop();
    const err = this.unavailable('the store is closed', false);
    for (const fail of Array.from(this.inflight)) fail(err);
    if (!this.nc.isClosed()) {
      await drainWithin(this.nc, { clock: this.options.clock, timeoutMs: this.options.timeoutMs, reconnecting: this.state === 'reconnecting' });
    }
    this.markClosed();
  }

  private markClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.options.clock.clearTimeout(this.probeTimer);
    const err = this.unavailable('the store is closed', false);
    for (const fail of Array.from(this.inflight)) fail(err);
    for (const w of Array.from(this.watches)) w.lost(err);
  }
}

/**
 * One watch over a nats.js KV watcher (an ordered push consumer). After a reconnect it reopens
 * the watcher from the revision after the last one it saw, so a restarted server (which forgets
 * ephemeral consumers) does not leave it silent until nats.js notices missing heartbeats.
 */
class NatsWatch implements KvWatch {
  private iter: QueuedIterator<KvWatchEntry> | undefined;
  private lastRevision = 0;
  private readonly seen = new Set<string>();
  private stopped = false;
  private resuming = false;
  private started = false;
  private retryTimer: TimerId | undefined;

  constructor(
    private readonly store: NatsKvStore,
    private readonly pattern: string,
    private readonly onEntry: (entry: KvEntry) => void,
    private readonly includeHistory: boolean,
    private readonly onError: ((err: Error) => void) | undefined,
  ) {}

  async start(): Promise<void> {
    const include = this.includeHistory ? KvWatchInclude.AllHistory : KvWatchInclude.LastValue;
    this.consume(await this.store.openWatcher(this.pattern, include));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.store.options.clock.clearTimeout(this.retryTimer);
    this.iter?.stop();
    this.iter = undefined;
    this.store.forgetWatch(this);
  }

  /** The store closed underneath: report it once and stop. */
  lost(err: Error): void {
    if (this.stopped) return;
    this.stop();
    this.report(err);
  }

  /** Reopen after a reconnect, from the revision after the last one seen. */
  resume(): void {
    // Before the first open completes there is nothing to resume: a disconnect fails that open.
    if (this.stopped || this.resuming || !this.started) return;
    this.resuming = true;
    const old = this.iter;
    this.iter = undefined;
    old?.stop();
    // With a revision to resume from, nats.js delivers every later revision whatever `include` says.
    const include = this.includeHistory ? KvWatchInclude.AllHistory : KvWatchInclude.LastValue;
    const from = this.lastRevision > 0 ? this.lastRevision + 1 : undefined;
    this.store.openWatcher(this.pattern, include, from).then(
      (iter) => {
        this.resuming = false;
        if (this.stopped) iter.stop();
        else this.consume(iter);
      },
      (err: unknown) => {
        this.resuming = false;
        if (this.stopped || this.store.isClosing) return;
        this.report(err instanceof Error ? err : new Error(String(err)));
        this.retryTimer = this.store.options.clock.setTimeout(() => this.resume(), this.store.retryDelayMs);
      },
    );
  }

  private consume(iter: QueuedIterator<KvWatchEntry>): void {
    if (this.stopped) {
      iter.stop();
      return;
    }
    this.iter = iter;
    this.started = true;
    void this.loop(iter);
  }

  private async loop(iter: QueuedIterator<KvWatchEntry>): Promise<void> {
    let failure: unknown;
    try {
      for await (const e of iter) {
        if (this.stopped || iter !== this.iter) break;
        this.deliver(e);
      }
    } catch (err) {
      failure = err;
    }
    if (this.stopped || iter !== this.iter || this.store.isClosing) return;
    // nats.js gave up on the consumer: say so, and try to reopen it.
    this.report(this.store.unavailable(`watch of '${this.pattern}' ended${failure instanceof Error ? `: ${failure.message}` : ''}`));
    this.iter = undefined;
    this.resume();
  }

  private deliver(e: KvWatchEntry): void {
    if (e.revision <= this.lastRevision) return; // replayed after a reopen
    this.lastRevision = e.revision;
    if (e.operation === 'PUT') {
      this.seen.add(e.key);
    } else if (!this.seen.delete(e.key)) {
      return; // this watch never showed the key: its deletion is not news here
    }
    try {
      this.onEntry(toEntry(e));
    } catch (err) {
      this.report(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private report(err: Error): void {
    try {
      this.onError?.(err);
    } catch {
      // A failing error handler must not stop the watch.
    }
  }
}
