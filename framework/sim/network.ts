/**
 * The simulated network: NATS core semantics — the same ones the MemoryBus implements (subject
 * syntax, `*`/`>` matching, queue groups, request/reply through a per-connection inbox,
 * no-responders, max payload) — where every message from node A to node B is an event on the
 * simulation's scheduler, delivered after a seeded latency and subject to the link's faults.
 *
 * Model:
 * - Nodes talk over direct one-way links (A→B and B→A are separate; a node also has a link to
 *   itself, which only has latency). Interest is global, as on a NATS server: who is subscribed is
 *   decided when a message is published, whatever the partitions — so a request to a subject that
 *   nobody subscribes to fails fast with `NoRespondersError`, while a request to a partitioned
 *   responder times out on the requester's clock.
 * - For each (message, matching subscription) — one member per queue group, picked with the
 *   seeded Rng — at publish time, in this order:
 *   1. **partition** — a cut link loses it (it is also lost when the link is cut while it is in
 *      flight: the cut is checked again on arrival);
 *   2. **drop** — lost with probability `drop`;
 *   3. **duplicate** — with probability `duplicate` a second copy travels too;
 *   4. **latency** — each copy arrives after an integer latency uniform in `[minMs, maxMs]`, plus
 *      the extra `delayMs`. Unless `reorder` is on, a link is FIFO (a copy never overtakes an
 *      earlier one: NATS's per-publisher order); with `reorder`, every copy's latency is independent.
 * - Randomness comes only from the injected Rng, drawn only for faults that are on, so the same
 *   seed replays the same run.
 * - Handlers run inside scheduler events, never inside `publish`. A subscription removed before a
 *   message arrives does not see it. `close()` takes effect at once: interest is withdrawn and
 *   messages still on the wire to the connection are lost (there is no server-side buffer to drain).
 * - `crash(node)` is a process dying: its connections stop at once with no goodbye — their
 *   subscriptions vanish, their pending requests fail with `TransportClosedError`, and whatever the
 *   dead process still tries to publish goes nowhere.
 */
import type { Clock, Rng, TimerId } from '../clock.ts';
import {
  AbortedError,
  NoRespondersError,
  PayloadTooLargeError,
  TransportClosedError,
  TransportTimeoutError,
} from '../errors.ts';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../transport/memory.ts';
import { assertValidQueue, assertValidSubject, validateName } from '../transport/subjects.ts';
import type {
  PublishOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
  Transport,
  TransportEvent,
  TransportMsg,
  TransportStatus,
} from '../transport/transport.ts';
import type { SimScheduler } from './scheduler.ts';

/** Default one-way latency range of a simulated link, in ms. */
export const DEFAULT_LATENCY_MS: readonly [number, number] = [1, 10];

/** Options of {@link createSimNetwork}. */
export interface SimNetworkOptions {
  /** The scheduler deliveries are events on. */
  scheduler: SimScheduler;
  /** The only randomness of the network (latencies, faults, queue-group picks). */
  rng: Rng;
  /**
   * One-way latency of a link, `[minMs, maxMs]`, integers, uniform.
   * @default [1, 10]
   */
  latencyMs?: readonly [number, number];
  /** @default 1048576 (1 MiB) */
  maxPayloadBytes?: number;
}

/** Options of {@link SimNetwork.connect}. */
export interface SimConnectOptions {
  /** The node's clock: request timeouts run on it (and so freeze while the node is paused). */
  clock: Clock;
}

/** Message-level faults in force on every link between two different nodes. */
export interface NetworkFaults {
  /** Probability a message is lost. */
  readonly drop: number;
  /** Probability a message is delivered twice. */
  readonly duplicate: number;
  /** Extra latency added to every message, in ms. */
  readonly delayMs: number;
  /** Independent latencies (messages on a link may overtake each other). */
  readonly reorder: boolean;
}

/** Counters of a simulated network since it was created. */
export interface SimNetworkStats {
  /** Messages accepted by `publish`/`request`/`respond`. */
  readonly published: number;
  /** Published messages that matched no subscription. */
  readonly noInterest: number;
  /** Handler invocations. */
  readonly delivered: number;
  /** Copies lost to `drop`. */
  readonly dropped: number;
  /** Copies lost to a cut link (at send or on arrival). */
  readonly partitioned: number;
  /** Extra copies sent by `duplicate`. */
  readonly duplicated: number;
  /** Handlers that threw or rejected (each also reported as an `error` event). */
  readonly handlerErrors: number;
}

/** The simulated network of one simulation. */
export interface SimNetwork {
  /** The latency range in force, `[minMs, maxMs]`. */
  readonly latencyMs: readonly [number, number];
  /** Open a connection for `node` (a valid node name). A node may hold several; a restarted node opens a new one. */
  connect(node: string, options: SimConnectOptions): Transport;
  /** Cut the one-way link `from → to`. */
  cut(from: string, to: string): void;
  /** True when `from → to` is cut. */
  isCut(from: string, to: string): boolean;
  /** Every cut link, as `[from, to]`, sorted. */
  cuts(): Array<[string, string]>;
  /** Restore every link. Message faults (`drop`, …) stay as they are. */
  heal(): void;
  /** Set the drop probability (0 switches it off). */
  setDrop(probability: number): void;
  /** Set the duplicate probability (0 switches it off). */
  setDuplicate(probability: number): void;
  /** Set the extra latency in ms (0 switches it off). */
  setDelay(extraMs: number): void;
  /** Let messages on a link overtake each other (or not). */
  setReorder(on: boolean): void;
  faults(): NetworkFaults;
  /** The node's process died: its connections stop at once, with no goodbye (see the module docs). */
  crash(node: string): void;
  stats(): SimNetworkStats;
}

/**
 * A simulated network on `scheduler`.
 * @example
 * const scheduler = createScheduler();
 * const net = createSimNetwork({ scheduler, rng: createRng(1) });
 * const a = net.connect('a', { clock: createNodeClock(scheduler, 'a') });
 * const b = net.connect('b', { clock: createNodeClock(scheduler, 'b') });
 * b.subscribe('greet.*', (m) => m.respond(m.data));
 * const reply = a.request('greet.x', new Uint8Array([1]), { timeoutMs: 100 });
 * while (scheduler.runNext()); // the reply arrives after two seeded latencies
 */
export function createSimNetwork(options: SimNetworkOptions): SimNetwork {
  const latencyMs = options.latencyMs ?? DEFAULT_LATENCY_MS;
  const [min, max] = latencyMs;
  if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 0 && max >= min)) {
    throw new RangeError(`network option latencyMs must be [minMs, maxMs] integers with 0 <= minMs <= maxMs, got ${JSON.stringify(latencyMs)}`);
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes <= 0) {
    throw new RangeError(`network option maxPayloadBytes must be a positive integer, got ${String(options.maxPayloadBytes)}`);
  }
  if (typeof options.scheduler?.at !== 'function' || typeof options.rng?.next !== 'function') {
    throw new TypeError('network options scheduler and rng are required');
  }
  return new Network(options.scheduler, options.rng, [min, max], maxPayloadBytes);
}

// ---------------------------------------------------------------------------------------------

interface Sub {
  readonly subject: string;
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  readonly conn: Connection;
  readonly handler: (msg: TransportMsg) => void;
  /** False once unsubscribed or its connection closed or crashed. */
  active: boolean;
}

/** NATS subject matching: `*` matches one token, a final `>` one or more. */
function subjectMatches(pattern: readonly string[], subject: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

const linkKey = (from: string, to: string): string => `${from}>${to}`;

const checkProbability = (name: string, p: number): void => {
  if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new RangeError(`${name} probability must be in [0, 1], got ${String(p)}`);
};

class Network implements SimNetwork {
  /** Subscriptions in the order they were made (deliveries are scheduled in this order). */
  private subs: Sub[] = [];
  private readonly connections = new Set<Connection>();
  private readonly cutLinks = new Set<string>();
  /** Latest arrival scheduled per link, for FIFO links. */
  private readonly lastArrival = new Map<string, number>();
  private nextConnectionId = 1;
  private fault: NetworkFaults = { drop: 0, duplicate: 0, delayMs: 0, reorder: false };
  readonly counters = { published: 0, noInterest: 0, delivered: 0, dropped: 0, partitioned: 0, duplicated: 0, handlerErrors: 0 };

  constructor(
    readonly scheduler: SimScheduler,
    private readonly rng: Rng,
    readonly latencyMs: readonly [number, number],
    readonly maxPayloadBytes: number,
  ) {}

  connect(node: string, options: SimConnectOptions): Transport {
    validateName(node, 'node name');
    if (typeof options?.clock?.setTimeout !== 'function') throw new TypeError('connect option clock is required');
    const conn = new Connection(this, this.nextConnectionId++, node, options.clock);
    this.connections.add(conn);
    return conn;
  }

  // --- faults -------------------------------------------------------------------------------

  cut(from: string, to: string): void {
    if (from !== to) this.cutLinks.add(linkKey(from, to));
  }

  isCut(from: string, to: string): boolean {
    return this.cutLinks.has(linkKey(from, to));
  }

  cuts(): Array<[string, string]> {
    return [...this.cutLinks].sort().map((k) => k.split('>') as [string, string]);
  }

  heal(): void {
    this.cutLinks.clear();
  }

  setDrop(probability: number): void {
    checkProbability('drop', probability);
    this.fault = { ...this.fault, drop: probability };
  }

  setDuplicate(probability: number): void {
    checkProbability('duplicate', probability);
    this.fault = { ...this.fault, duplicate: probability };
  }

  setDelay(extraMs: number): void {
    if (!(Number.isFinite(extraMs) && extraMs >= 0)) throw new RangeError(`delay must be a finite number of ms ≥ 0, got ${String(extraMs)}`);
    this.fault = { ...this.fault, delayMs: extraMs };
  }

  setReorder(on: boolean): void {
    this.fault = { ...this.fault, reorder: Boolean(on) };
  }

  faults(): NetworkFaults {
    return this.fault;
  }

  crash(node: string): void {
    for (const c of Array.from(this.connections)) if (c.node === node) c.crash();
  }

  stats(): SimNetworkStats {
    return { ...this.counters };
  }

  // --- routing ------------------------------------------------------------------------------

  addSub(sub: Sub): void {
    this.subs.push(sub);
  }

  removeSub(sub: Sub): void {
    sub.active = false;
    const i = this.subs.indexOf(sub);
    if (i >= 0) this.subs.splice(i, 1);
  }

  removeConnection(conn: Connection): void {
    this.connections.delete(conn);
    this.subs = this.subs.filter((s) => {
      if (s.conn !== conn) return true;
      s.active = false;
      return false;
    });
  }

  hasInterest(subject: string): boolean {
    const tokens = subject.split('.');
    return this.subs.some((s) => subjectMatches(s.tokens, tokens));
  }

  /** Route one message published by `from` to every interested subscription (never runs handlers). */
  route(from: string, subject: string, data: Uint8Array, reply: string | undefined): void {
    this.counters.published++;
    const tokens = subject.split('.');
    const targets: Sub[] = [];
    const groups = new Map<string, Sub[]>();
    for (const s of this.subs) {
      if (!subjectMatches(s.tokens, tokens)) continue;
      if (s.queue === undefined) targets.push(s);
      else {
        const members = groups.get(s.queue);
        if (members) members.push(s);
        else groups.set(s.queue, [s]);
      }
    }
    for (const members of groups.values()) targets.push(members.length === 1 ? members[0]! : members[this.rng.int(members.length)]!);
    if (targets.length === 0) {
      this.counters.noInterest++;
      return;
    }
    // The publisher may reuse its buffer once publish returns, as it can with a socket write.
    const copy = new Uint8Array(data);
    for (const s of targets) this.send(from, s, subject, copy, reply);
  }

  private send(from: string, sub: Sub, subject: string, data: Uint8Array, reply: string | undefined): void {
    const to = sub.conn.node;
    const detail = `${from}>${to} ${subject}`;
    let copies = 1;
    if (from !== to) {
      if (this.isCut(from, to)) {
        this.counters.partitioned++;
        this.scheduler.note('lost', to, `${detail} (partition)`);
        return;
      }
      const f = this.fault;
      if (f.drop > 0 && this.rng.next() < f.drop) {
        this.counters.dropped++;
        this.scheduler.note('lost', to, `${detail} (drop)`);
        return;
      }
      if (f.duplicate > 0 && this.rng.next() < f.duplicate) {
        copies = 2;
        this.counters.duplicated++;
      }
    }
    const key = linkKey(from, to);
    for (let i = 0; i < copies; i++) {
      let atMs = this.scheduler.now() + this.latency() + (from === to ? 0 : this.fault.delayMs);
      if (!this.fault.reorder) atMs = Math.max(atMs, this.lastArrival.get(key) ?? 0);
      if (atMs > (this.lastArrival.get(key) ?? -1)) this.lastArrival.set(key, atMs);
      this.scheduler.at(atMs, 'deliver', to, detail, () => this.arrive(from, sub, subject, data, reply, detail));
    }
  }

  private latency(): number {
    const [min, max] = this.latencyMs;
    return max === min ? min : min + this.rng.int(max - min + 1);
  }

  private arrive(from: string, sub: Sub, subject: string, data: Uint8Array, reply: string | undefined, detail: string): void {
    if (!sub.active) return;
    if (this.isCut(from, sub.conn.node)) {
      this.counters.partitioned++;
      this.scheduler.note('lost', sub.conn.node, `${detail} (partition, in flight)`);
      return;
    }
    this.counters.delivered++;
    sub.conn.invoke(sub, new SimMsg(subject, data, reply, sub.conn));
  }
}

class SimMsg implements TransportMsg {
  constructor(
    readonly subject: string,
    readonly data: Uint8Array,
    readonly reply: string | undefined,
    private readonly conn: Connection,
  ) {}

  respond(data: Uint8Array): boolean {
    if (this.reply === undefined) return false;
    this.conn.publish(this.reply, data);
    return true;
  }
}

interface PendingRequest {
  settle(result: { msg: TransportMsg } | { error: Error }): void;
}

type ConnectionState = 'open' | 'closed' | 'crashed';

class Connection implements Transport {
  readonly kind = 'sim';
  private state: ConnectionState = 'open';
  private readonly subs = new Set<Sub>();
  private readonly listeners = new Set<(ev: TransportEvent) => void>();
  private readonly inboxPrefix: string;
  private inboxSub: Sub | undefined;
  private nextRequestToken = 1;
  private readonly requests = new Map<string, PendingRequest>();

  constructor(
    private readonly net: Network,
    readonly id: number,
    readonly node: string,
    private readonly clock: Clock,
  ) {
    this.inboxPrefix = `_INBOX.${node}-${id}.`;
  }

  get maxPayloadBytes(): number {
    return this.net.maxPayloadBytes;
  }

  status(): TransportStatus {
    return this.state === 'open' ? 'connected' : 'closed';
  }

  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void {
    if (this.state === 'crashed') return; // a dead process sends nothing
    if (this.state === 'closed') throw new TransportClosedError(subject);
    assertValidSubject(subject, 'publish');
    const reply = opts?.reply;
    if (reply !== undefined) assertValidSubject(reply, 'publish');
    this.checkPayload(subject, data);
    this.net.route(this.node, subject, data, reply);
  }

  subscribe(subject: string, handler: (msg: TransportMsg) => void, opts?: SubscribeOptions): Subscription {
    if (this.state === 'crashed') return { subject, unsubscribe: () => undefined };
    if (this.state === 'closed') throw new TransportClosedError();
    assertValidSubject(subject, 'subscribe');
    const queue = opts?.queue;
    if (queue !== undefined) assertValidQueue(queue);
    const sub = this.addSub(subject, handler, queue);
    return {
      subject,
      unsubscribe: () => {
        this.subs.delete(sub);
        this.net.removeSub(sub);
      },
    };
  }

  request(subject: string, data: Uint8Array, opts: RequestOptions): Promise<TransportMsg> {
    try {
      if (this.state !== 'open') throw new TransportClosedError(subject);
      assertValidSubject(subject, 'publish');
      this.checkPayload(subject, data);
      const t = opts?.timeoutMs;
      if (!(typeof t === 'number' && t > 0 && Number.isFinite(t))) {
        throw new RangeError(`request option timeoutMs must be a positive number of milliseconds, got ${String(t)}`);
      }
      if (opts.signal?.aborted) throw new AbortedError(`request to ${subject}`, opts.signal.reason);
      if (!this.net.hasInterest(subject)) throw new NoRespondersError(subject);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.inboxSub ??= this.addSub(`${this.inboxPrefix}*`, (m) => this.onReply(m), undefined);
    const token = String(this.nextRequestToken++);
    const { timeoutMs, signal } = opts;
    return new Promise<TransportMsg>((resolve, reject) => {
      const onAbort = (): void => pending.settle({ error: new AbortedError(`request to ${subject}`, signal?.reason) });
      const pending: PendingRequest = {
        settle: (result) => {
          if (!this.requests.delete(token)) return;
          this.clock.clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if ('msg' in result) resolve(result.msg);
          else reject(result.error);
        },
      };
      this.requests.set(token, pending);
      const timer: TimerId = this.clock.setTimeout(() => pending.settle({ error: new TransportTimeoutError(subject, timeoutMs) }), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.net.route(this.node, subject, data, this.inboxPrefix + token);
    });
  }

  flush(): Promise<void> {
    // publish hands every message to the network before it returns; there is no server round trip.
    if (this.state === 'closed') return Promise.reject(new TransportClosedError());
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.state === 'open') {
      this.state = 'closed';
      this.stop();
      this.emit({ type: 'closed' });
      this.listeners.clear();
    }
    return Promise.resolve();
  }

  onEvent(listener: (ev: TransportEvent) => void): () => void {
    if (this.state === 'open') this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // --- network side -------------------------------------------------------------------------

  /** The process died: no goodbye, no events; everything it does from now on goes nowhere. */
  crash(): void {
    if (this.state !== 'open') return;
    this.state = 'crashed';
    this.listeners.clear();
    this.stop();
  }

  invoke(sub: Sub, msg: TransportMsg): void {
    try {
      const r: unknown = sub.handler(msg);
      if (r !== undefined && r !== null && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as PromiseLike<unknown>).then(undefined, (err: unknown) => this.reportHandlerError(err));
      }
    } catch (err) {
      this.reportHandlerError(err);
    }
  }

  // --- internals ----------------------------------------------------------------------------

  private stop(): void {
    this.net.removeConnection(this);
    this.subs.clear();
    this.inboxSub = undefined;
    for (const r of Array.from(this.requests.values())) r.settle({ error: new TransportClosedError() });
  }

  private addSub(subject: string, handler: (msg: TransportMsg) => void, queue: string | undefined): Sub {
    const sub: Sub = { subject, tokens: subject.split('.'), queue, conn: this, handler, active: true };
    this.subs.add(sub);
    this.net.addSub(sub);
    return sub;
  }

  private onReply(m: TransportMsg): void {
    this.requests.get(m.subject.slice(this.inboxPrefix.length))?.settle({ msg: m });
  }

  private checkPayload(subject: string, data: Uint8Array): void {
    const max = this.net.maxPayloadBytes;
    if (data.byteLength > max) throw new PayloadTooLargeError(data.byteLength, max, subject);
  }

  private reportHandlerError(err: unknown): void {
    this.net.counters.handlerErrors++;
    this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
  }

  private emit(ev: TransportEvent): void {
    for (const l of Array.from(this.listeners)) {
      try {
        l(ev);
      } catch {
        // A broken listener must not stop the others or the delivery.
      }
    }
  }
}
