/**
 * The in-process bus: NATS core semantics without a server. It is troupe's embedded default, so
 * it behaves the way nats-server does — subject syntax, `*`/`>` matching, queue groups,
 * request/reply through a per-connection muxed inbox, no-responders, max payload, drain on close —
 * and the shared conformance suite holds it to that.
 */
import { realClock } from '../clock.ts';
import { assertValidQueue, assertValidSubject } from './subjects.ts';
import type { Clock, Rng, TimerId } from '../clock.ts';
import {
  AbortedError,
  NoRespondersError,
  PayloadTooLargeError,
  TransportClosedError,
  TransportTimeoutError,
} from '../errors.ts';
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

/** nats-server's default `max_payload`: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Deliveries the bus makes before it yields to the event loop once. Microtask delivery alone would
 * let two actors ping-ponging forever starve timers and I/O; a real NATS connection yields on every
 * socket read, so this keeps the embedded bus just as fair.
 */
const DELIVERIES_PER_TURN = 4096;

/** Distinct subjects whose match results are cached; the cache is cleared when it grows past this. */
const MATCH_CACHE_LIMIT = 8192;

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** Options of {@link createMemoryBus}. */
export interface MemoryBusOptions {
  /**
   * Largest payload accepted by `publish`/`request`, in bytes.
   * @default 1048576 (1 MiB, nats-server's default)
   */
  maxPayloadBytes?: number;
  /**
   * Time source for request timeouts.
   * @default realClock()
   */
  clock?: Clock;
  /**
   * When given, a queue group member is picked at random from this generator (like nats-server);
   * otherwise members take turns (round-robin per group name), which is deterministic.
   */
  rng?: Rng;
}

/** Options of {@link MemoryBus.connect}. */
export interface MemoryConnectOptions {
  /** A label for the connection (shown in its inbox prefix and in stats). */
  name?: string;
}

/** Counters of a bus since it was created. */
export interface MemoryBusStats {
  /** Connections not yet closed. */
  readonly connections: number;
  /** Live subscriptions, including each connection's request inbox. */
  readonly subscriptions: number;
  /** Messages accepted by `publish`/`request`/`respond`. */
  readonly published: number;
  /** Published messages that matched no subscription. */
  readonly noInterest: number;
  /** Handler invocations. */
  readonly delivered: number;
  /** Handlers that threw or rejected (each also reported as an `error` event). */
  readonly handlerErrors: number;
  /** Deliveries queued but not yet made. */
  readonly pending: number;
}

/** An in-process message bus; each `connect()` is one client connection. */
export interface MemoryBus {
  /** Open a connection. Connections of one bus see each other's messages; buses are isolated. */
  connect(options?: MemoryConnectOptions): Transport;
  stats(): MemoryBusStats;
  /**
   * Resolves once every delivery queued so far — and every delivery those handlers queue in turn —
   * has been made. For tests and simulations on a simulated clock: `bus.publish…; await bus.settle()`.
   */
  settle(): Promise<void>;
  /** Close (drain) every open connection. */
  close(): Promise<void>;
}

/**
 * Create an isolated in-process bus with NATS core semantics.
 * @example
 * const bus = createMemoryBus();
 * const a = bus.connect({ name: 'a' });
 * const b = bus.connect({ name: 'b' });
 * b.subscribe('greet.*', (m) => m.respond(m.data));
 * const reply = await a.request('greet.bob', new Uint8Array([1]), { timeoutMs: 1_000 });
 */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  return new Bus(resolveMemoryBusOptions(options));
}

interface ResolvedMemoryBusOptions {
  maxPayloadBytes: number;
  clock: Clock;
  rng: Rng | undefined;
}

function resolveMemoryBusOptions(options: MemoryBusOptions): ResolvedMemoryBusOptions {
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes <= 0) {
    throw new RangeError(`memory bus option maxPayloadBytes must be a positive integer, got ${String(options.maxPayloadBytes)}`);
  }
  return { maxPayloadBytes, clock: options.clock ?? realClock(), rng: options.rng };
}

// ---------------------------------------------------------------------------------------------
// Subscription index: a token trie with a subject → match cache
// ---------------------------------------------------------------------------------------------

interface Sub {
  readonly subject: string;
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  readonly conn: Connection;
  readonly handler: (msg: TransportMsg) => void;
  /** False once unsubscribed or its connection closed: queued deliveries are then discarded. */
  active: boolean;
  /** True while the subscription is in the index (receives new messages). */
  indexed: boolean;
}

interface QueueGroupMatch {
  readonly name: string;
  readonly members: Sub[];
}

interface MatchResult {
  readonly plain: Sub[];
  readonly groups: QueueGroupMatch[];
}

const NO_MATCH: MatchResult = Object.freeze({ plain: [], groups: [] }) as MatchResult;

class TrieNode {
  literal: Map<string, TrieNode> | undefined;
  star: TrieNode | undefined;
  /** Subscriptions ending exactly here. */
  readonly exact = new Set<Sub>();
  /** Subscriptions whose next token is `>`: they match any one-or-more remaining tokens. */
  readonly rest = new Set<Sub>();

  isEmpty(): boolean {
    return this.exact.size === 0 && this.rest.size === 0 && this.star === undefined && (this.literal === undefined || this.literal.size === 0);
  }
}

class SubscriptionIndex {
  private readonly root = new TrieNode();
  private readonly cache = new Map<string, MatchResult>();
  /** Subscriptions in the index. */
  size = 0;

  add(sub: Sub): void {
    let node = this.root;
    const { tokens } = sub;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        node.rest.add(sub);
        this.size++;
        this.changed();
        return;
      }
      if (t === '*') {
        node.star ??= new TrieNode();
        node = node.star;
      } else {
        node.literal ??= new Map();
        let next = node.literal.get(t);
        if (next === undefined) {
          next = new TrieNode();
          node.literal.set(t, next);
        }
        node = next;
      }
    }
    node.exact.add(sub);
    this.size++;
    this.changed();
  }

  remove(sub: Sub): void {
    const path: Array<{ node: TrieNode; token: string }> = [];
    let node: TrieNode | undefined = this.root;
    const { tokens } = sub;
    let removed = false;
    for (let i = 0; i < tokens.length && node; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        removed = node.rest.delete(sub);
        break;
      }
      path.push({ node, token: t });
      node = t === '*' ? node.star : node.literal?.get(t);
      if (i === tokens.length - 1 && node) removed = node.exact.delete(sub);
    }
    if (!removed) return;
    this.size--;
    // Prune nodes left empty so long-lived buses with churning subjects do not grow without bound.
    for (let i = path.length - 1; i >= 0; i--) {
      const { node: parent, token } = path[i]!;
      const child = token === '*' ? parent.star : parent.literal?.get(token);
      if (!child || !child.isEmpty()) break;
      if (token === '*') parent.star = undefined;
      else parent.literal?.delete(token);
    }
    this.changed();
  }

  match(subject: string): MatchResult {
    const cached = this.cache.get(subject);
    if (cached !== undefined) return cached;
    const plain: Sub[] = [];
    const groups = new Map<string, Sub[]>();
    const collect = (subs: Set<Sub>): void => {
      for (const s of subs) {
        if (s.queue === undefined) plain.push(s);
        else {
          const members = groups.get(s.queue);
          if (members) members.push(s);
          else groups.set(s.queue, [s]);
        }
      }
    };
    const tokens = subject.split('.');
    const walk = (node: TrieNode, i: number): void => {
      if (i === tokens.length) {
        collect(node.exact);
        return;
      }
      if (node.rest.size > 0) collect(node.rest);
      const next = node.literal?.get(tokens[i]!);
      if (next) walk(next, i + 1);
      if (node.star) walk(node.star, i + 1);
    };
    walk(this.root, 0);
    const result: MatchResult =
      plain.length === 0 && groups.size === 0
        ? NO_MATCH
        : { plain, groups: Array.from(groups, ([name, members]) => ({ name, members })) };
    if (this.cache.size >= MATCH_CACHE_LIMIT) this.cache.clear();
    this.cache.set(subject, result);
    return result;
  }

  private changed(): void {
    this.cache.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Bus and connections
// ---------------------------------------------------------------------------------------------

class Bus implements MemoryBus {
  readonly index = new SubscriptionIndex();
  readonly connections = new Set<Connection>();
  private readonly queueTurns = new Map<string, number>();
  private nextConnectionId = 1;
  private spentThisTurn = 0;
  private yieldScheduled = false;
  private readonly resumeAfterYield: Array<() => void> = [];
  counters = { published: 0, noInterest: 0, delivered: 0, handlerErrors: 0 };

  constructor(readonly options: ResolvedMemoryBusOptions) {}

  connect(options: MemoryConnectOptions = {}): Transport {
    const conn = new Connection(this, this.nextConnectionId++, options.name);
    this.connections.add(conn);
    return conn;
  }

  stats(): MemoryBusStats {
    let pending = 0;
    for (const c of this.connections) pending += c.pendingCount();
    return {
      connections: this.connections.size,
      subscriptions: this.index.size,
      published: this.counters.published,
      noInterest: this.counters.noInterest,
      delivered: this.counters.delivered,
      handlerErrors: this.counters.handlerErrors,
      pending,
    };
  }

  async settle(): Promise<void> {
    for (;;) {
      const busy = Array.from(this.connections).filter((c) => c.pendingCount() > 0);
      if (busy.length === 0) return;
      await Promise.all(busy.map((c) => c.waitDispatched()));
    }
  }

  async close(): Promise<void> {
    await Promise.all(Array.from(this.connections, (c) => c.close()));
  }

  /** Route one message to every interested connection's delivery queue (never runs handlers). */
  route(subject: string, data: Uint8Array, reply: string | undefined): void {
    this.counters.published++;
    const m = this.index.match(subject);
    if (m === NO_MATCH) {
      this.counters.noInterest++;
      return;
    }
    // The publisher may reuse its buffer once publish returns, as it can with a socket write.
    const copy = new Uint8Array(data);
    for (let i = 0; i < m.plain.length; i++) {
      const s = m.plain[i]!;
      s.conn.enqueue(s, subject, copy, reply);
    }
    for (let i = 0; i < m.groups.length; i++) {
      const g = m.groups[i]!;
      const s = g.members[this.pickMember(g)]!;
      s.conn.enqueue(s, subject, copy, reply);
    }
  }

  hasInterest(subject: string): boolean {
    return this.index.match(subject) !== NO_MATCH;
  }

  private pickMember(g: QueueGroupMatch): number {
    const n = g.members.length;
    if (n === 1) return 0;
    if (this.options.rng) return this.options.rng.int(n);
    const turn = this.queueTurns.get(g.name) ?? 0;
    this.queueTurns.set(g.name, turn + 1 >= Number.MAX_SAFE_INTEGER ? 0 : turn + 1);
    return turn % n;
  }

  /** Run `fn` soon: on a microtask, or after one event-loop turn once the per-turn budget is spent. */
  defer(fn: () => void): void {
    if (this.spentThisTurn < DELIVERIES_PER_TURN) {
      queueMicrotask(fn);
      return;
    }
    this.resumeAfterYield.push(fn);
    if (this.yieldScheduled) return;
    this.yieldScheduled = true;
    // setImmediate is a yield to the event loop, not a timer: no time is involved.
    setImmediate(() => {
      this.yieldScheduled = false;
      this.spentThisTurn = 0;
      const fns = this.resumeAfterYield.splice(0);
      for (const f of fns) f();
    });
  }

  /** Count one delivery against the per-turn budget; true when the budget is now spent. */
  spend(): boolean {
    this.counters.delivered++;
    return ++this.spentThisTurn >= DELIVERIES_PER_TURN;
  }
}

interface Delivery {
  readonly sub: Sub;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly reply: string | undefined;
}

interface PendingRequest {
  settle(result: { msg: TransportMsg } | { error: Error }): void;
}

class MemoryMsg implements TransportMsg {
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

type ConnectionState = 'open' | 'draining' | 'closed';

class Connection implements Transport {
  readonly kind = 'memory';
  private state: ConnectionState = 'open';
  private readonly subs = new Set<Sub>();
  private queue: Array<Delivery | undefined> = [];
  private head = 0;
  private scheduled = false;
  /** Deliveries enqueued / taken off the queue since the connection opened. */
  private enqueued = 0;
  private dispatched = 0;
  private readonly dispatchWaiters: Array<{ target: number; resolve: () => void }> = [];
  private readonly listeners = new Set<(ev: TransportEvent) => void>();
  private readonly inboxPrefix: string;
  private inboxSub: Sub | undefined;
  private nextRequestToken = 1;
  private readonly requests = new Map<string, PendingRequest>();
  private closing: Promise<void> | undefined;
  private readonly drainFn = (): void => this.drain();

  constructor(
    private readonly bus: Bus,
    readonly id: number,
    readonly name: string | undefined,
  ) {
    this.inboxPrefix = `_INBOX.M${id}.`;
  }

  get maxPayloadBytes(): number {
    return this.bus.options.maxPayloadBytes;
  }

  status(): TransportStatus {
    return this.state === 'closed' ? 'closed' : 'connected';
  }

  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void {
    if (this.state === 'closed') throw new TransportClosedError(subject);
    assertValidSubject(subject, 'publish');
    const reply = opts?.reply;
    if (reply !== undefined) assertValidSubject(reply, 'publish');
    this.checkPayload(subject, data);
    this.bus.route(subject, data, reply);
  }

  subscribe(subject: string, handler: (msg: TransportMsg) => void, opts?: SubscribeOptions): Subscription {
    if (this.state !== 'open') throw new TransportClosedError();
    assertValidSubject(subject, 'subscribe');
    const queue = opts?.queue;
    if (queue !== undefined) assertValidQueue(queue);
    const sub = this.addSub(subject, handler, queue);
    return {
      subject,
      unsubscribe: () => this.removeSub(sub),
    };
  }

  request(subject: string, data: Uint8Array, opts: RequestOptions): Promise<TransportMsg> {
    try {
      if (this.state !== 'open') throw new TransportClosedError(subject);
      assertValidSubject(subject, 'publish');
      this.checkPayload(subject, data);
      checkTimeout(opts.timeoutMs);
      if (opts.signal?.aborted) throw new AbortedError(`request to ${subject}`, opts.signal.reason);
      if (!this.bus.hasInterest(subject)) throw new NoRespondersError(subject);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.inboxSub ??= this.addSub(`${this.inboxPrefix}*`, (m) => this.onReply(m), undefined);
    const token = String(this.nextRequestToken++);
    const { timeoutMs, signal } = opts;
    const clock = this.bus.options.clock;
    return new Promise<TransportMsg>((resolve, reject) => {
      const onAbort = (): void => {
        pending.settle({ error: new AbortedError(`request to ${subject}`, signal?.reason) });
      };
      const pending: PendingRequest = {
        settle: (result) => {
          if (!this.requests.delete(token)) return;
          clock.clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if ('msg' in result) resolve(result.msg);
          else reject(result.error);
        },
      };
      this.requests.set(token, pending);
      const timer: TimerId = clock.setTimeout(() => pending.settle({ error: new TransportTimeoutError(subject, timeoutMs) }), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.bus.route(subject, data, this.inboxPrefix + token);
    });
  }

  flush(): Promise<void> {
    // publish hands every message to the bus before it returns; there is no server to round-trip.
    if (this.state === 'closed') return Promise.reject(new TransportClosedError());
    return Promise.resolve();
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

  // --- delivery ---------------------------------------------------------------------------

  enqueue(sub: Sub, subject: string, data: Uint8Array, reply: string | undefined): void {
    this.queue.push({ sub, subject, data, reply });
    this.enqueued++;
    if (!this.scheduled) {
      this.scheduled = true;
      this.bus.defer(this.drainFn);
    }
  }

  pendingCount(): number {
    return this.enqueued - this.dispatched;
  }

  /** Resolves once every delivery queued on this connection so far has been made. */
  waitDispatched(): Promise<void> {
    if (this.dispatched >= this.enqueued) return Promise.resolve();
    return new Promise((resolve) => this.dispatchWaiters.push({ target: this.enqueued, resolve }));
  }

  private drain(): void {
    const q = this.queue;
    while (this.head < q.length) {
      const d = q[this.head]!;
      q[this.head] = undefined;
      this.head++;
      this.dispatched++;
      if (d.sub.active) {
        this.invoke(d);
        if (this.bus.spend() && this.head < q.length) {
          this.bus.defer(this.drainFn);
          this.compact();
          this.wakeDispatchWaiters();
          return;
        }
      }
    }
    this.queue = [];
    this.head = 0;
    this.scheduled = false;
    this.wakeDispatchWaiters();
  }

  private invoke(d: Delivery): void {
    try {
      const r: unknown = d.sub.handler(new MemoryMsg(d.subject, d.data, d.reply, this));
      if (r !== undefined && typeof (r as PromiseLike<unknown>).then === 'function') {
        (r as PromiseLike<unknown>).then(undefined, (err: unknown) => this.reportHandlerError(err));
      }
    } catch (err) {
      this.reportHandlerError(err);
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private wakeDispatchWaiters(): void {
    const w = this.dispatchWaiters;
    let i = 0;
    while (i < w.length && w[i]!.target <= this.dispatched) w[i++]!.resolve();
    if (i > 0) w.splice(0, i);
  }

  private reportHandlerError(err: unknown): void {
    this.bus.counters.handlerErrors++;
    this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
  }

  private emit(ev: TransportEvent): void {
    for (const l of Array.from(this.listeners)) {
      try {
        l(ev);
      } catch {
        // A broken listener must not stop the others or the delivery loop.
      }
    }
  }

  // --- subscriptions and requests ---------------------------------------------------------

  private addSub(subject: string, handler: (msg: TransportMsg) => void, queue: string | undefined): Sub {
    const sub: Sub = { subject, tokens: subject.split('.'), queue, conn: this, handler, active: true, indexed: true };
    this.subs.add(sub);
    this.bus.index.add(sub);
    return sub;
  }

  private removeSub(sub: Sub): void {
    sub.active = false;
    this.unindex(sub);
    this.subs.delete(sub);
  }

  private unindex(sub: Sub): void {
    if (!sub.indexed) return;
    sub.indexed = false;
    this.bus.index.remove(sub);
  }

  private onReply(m: TransportMsg): void {
    this.requests.get(m.subject.slice(this.inboxPrefix.length))?.settle({ msg: m });
  }

  private checkPayload(subject: string, data: Uint8Array): void {
    const max = this.bus.options.maxPayloadBytes;
    if (data.byteLength > max) throw new PayloadTooLargeError(data.byteLength, max, subject);
  }

  private async drainAndClose(): Promise<void> {
    if (this.state === 'open') this.state = 'draining';
    // Like a NATS drain: interest is withdrawn first, then what is already in flight is delivered.
    for (const s of this.subs) this.unindex(s);
    await this.waitDispatched();
    this.state = 'closed';
    for (const s of this.subs) s.active = false;
    this.subs.clear();
    this.inboxSub = undefined;
    for (const r of Array.from(this.requests.values())) r.settle({ error: new TransportClosedError() });
    this.bus.connections.delete(this);
    this.emit({ type: 'closed' });
    this.listeners.clear();
  }
}

function checkTimeout(timeoutMs: number): void {
  if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
    throw new RangeError(`request option timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
}
