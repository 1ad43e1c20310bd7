/**
 * Fault injection over any `Transport`: message loss, duplication, delay (and with it reordering),
 * and partitions, driven only by an injected `Clock` and `Rng` so that a seeded run is repeatable.
 */
import { MinHeap } from '../min-heap.ts';
import type { Clock, Rng, TimerId } from '../clock.ts';
import { AbortedError, PayloadTooLargeError, TransportClosedError, TransportTimeoutError } from '../errors.ts';
import { assertValidSubject } from './subjects.ts';
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

/** What {@link withFaults} needs: the time source for delays and timeouts, and the only randomness. */
export interface FaultOptions {
  clock: Clock;
  rng: Rng;
}

/**
 * Which outbound subjects a partition cuts off: subject prefixes, matched token-wise
 * (`'troupe.c.n2'` cuts `troupe.c.n2` and `troupe.c.n2.x`, not `troupe.c.n20`), or a predicate.
 */
export type PartitionSpec = readonly string[] | ((subject: string) => boolean);

/** Options of {@link FaultyTransport.delay}. */
export interface DelayOptions {
  /**
   * Keep per-publisher order despite jitter (a message is never released before an earlier one),
   * as a slow but ordered link would. When false, jitter reorders messages.
   * @default false
   */
  preserveOrder?: boolean;
}

/** Counters of a fault wrapper since it was created. */
export interface FaultStats {
  /** Outbound messages (publishes, responds, requests) handed to the wrapper. */
  readonly outbound: number;
  /** Lost to `drop`. */
  readonly dropped: number;
  /** Lost to a partition. */
  readonly partitioned: number;
  /** Extra copies sent by `duplicate`. */
  readonly duplicated: number;
  /** Messages (copies included) held back by `delay`. */
  readonly delayed: number;
  /** Delayed messages not yet released. */
  readonly pendingDelayed: number;
}

/**
 * A `Transport` that misbehaves on demand. Faults apply to what this wrapper SENDS — `publish`,
 * `request`, and `respond` on messages it received — never to what it receives; wrap every node's
 * transport to fault both directions. For each outbound message, in this order:
 *
 * 1. **partition** — a subject cut off by any active partition is lost;
 * 2. **drop** — lost with the configured probability;
 * 3. **duplicate** — with the configured probability a second copy is sent as well;
 * 4. **delay** — each copy is held for a uniform random time in `[minMs, maxMs]` on the injected
 *    clock, then handed to the inner transport (jitter reorders unless `preserveOrder`).
 *
 * A lost request rejects with `TransportTimeoutError` once its `timeoutMs` passes on the clock, as a
 * request lost on the network would; a request delayed by `d` reaches the inner transport with
 * `timeoutMs - d` left; a duplicated request is seen twice by the responder and only the first reply
 * comes back. Synchronous errors (`PayloadTooLargeError`, `TransportClosedError`, invalid subjects)
 * are thrown as by any transport, whatever the faults. Randomness comes only from the injected
 * `Rng`, drawn only for faults that are switched on, so a seed replays the same run.
 * `close()` discards messages still held by `delay` (they were on a link that went away), then
 * closes the inner transport.
 */
export interface FaultyTransport extends Transport {
  /** Lose each outbound message with `probability` (0 switches it off). */
  drop(probability: number): void;
  /** Send each outbound message twice with `probability` (0 switches it off). */
  duplicate(probability: number): void;
  /** Hold each outbound message for `minMs`–`maxMs` (default `minMs`) on the clock; `delay(0)` switches it off. */
  delay(minMs: number, maxMs?: number, options?: DelayOptions): void;
  /** Cut off outbound subjects (adds to the partitions already in force). */
  partition(spec: PartitionSpec): void;
  /** Lift every partition. */
  heal(): void;
  /** Switch every fault off (messages already delayed are still released on time). */
  reset(): void;
  faultStats(): FaultStats;
}

/**
 * Wrap `inner` so faults can be switched on and off while it runs.
 * @example
 * const clock = simulatedClock();
 * const net = withFaults(bus.connect(), { clock, rng: createRng(7) });
 * net.drop(0.1);
 * net.delay(5, 50);
 * net.partition(['troupe.c.node-2']);
 * // ... later
 * net.heal();
 */
export function withFaults(inner: Transport, options: FaultOptions): FaultyTransport {
  if (!options || typeof options.clock?.setTimeout !== 'function' || typeof options.rng?.next !== 'function') {
    throw new TypeError('withFaults options clock and rng are required');
  }
  return new FaultInjector(inner, options.clock, options.rng);
}

interface Held {
  readonly due: number;
  readonly seq: number;
  readonly run: () => void;
  timer: TimerId | undefined;
  cancelled: boolean;
}

/** `a` is released no later than `b`. */
const heldBefore = (a: Held, b: Held): boolean => a.due < b.due || (a.due === b.due && a.seq <= b.seq);


interface Fate {
  /** Why the message is lost, if it is. */
  readonly lost: 'dropped' | 'partitioned' | undefined;
  /** One delay (ms, 0 = now) per copy to send. */
  readonly delays: readonly number[];
}

const checkProbability = (name: string, p: number): void => {
  if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new RangeError(`${name} probability must be in [0, 1], got ${String(p)}`);
};

class FaultInjector implements FaultyTransport {
  readonly kind = 'faults';
  private dropP = 0;
  private duplicateP = 0;
  private delayRange: { minMs: number; maxMs: number; preserveOrder: boolean } | undefined;
  private partitions: Array<(subject: string) => boolean> = [];
  /** Held messages, earliest (due, seq) first. */
  private readonly held = new MinHeap<Held>((a, b) => !heldBefore(b, a));
  private nextSeq = 0;
  private lastDue = -Infinity;
  private closed = false;
  private readonly listeners = new Set<(ev: TransportEvent) => void>();
  private readonly counters = { outbound: 0, dropped: 0, partitioned: 0, duplicated: 0, delayed: 0 };
  private discardSeq = 0;

  constructor(
    private readonly inner: Transport,
    private readonly clock: Clock,
    private readonly rng: Rng,
  ) {}

  // --- controls ---------------------------------------------------------------------------

  drop(probability: number): void {
    checkProbability('drop', probability);
    this.dropP = probability;
  }

  duplicate(probability: number): void {
    checkProbability('duplicate', probability);
    this.duplicateP = probability;
  }

  delay(minMs: number, maxMs: number = minMs, options: DelayOptions = {}): void {
    if (!(Number.isFinite(minMs) && Number.isFinite(maxMs) && minMs >= 0 && maxMs >= minMs)) {
      throw new RangeError(`delay needs 0 <= minMs <= maxMs, got ${String(minMs)}..${String(maxMs)}`);
    }
    this.delayRange = maxMs === 0 ? undefined : { minMs, maxMs, preserveOrder: options.preserveOrder ?? false };
  }

  partition(spec: PartitionSpec): void {
    if (typeof spec === 'function') {
      this.partitions.push(spec);
      return;
    }
    const prefixes = Array.from(spec);
    this.partitions.push((subject) =>
      prefixes.some((p) => (p.endsWith('.') ? subject.startsWith(p) : subject === p || subject.startsWith(`${p}.`))),
    );
  }

  heal(): void {
    this.partitions = [];
  }

  reset(): void {
    this.dropP = 0;
    this.duplicateP = 0;
    this.delayRange = undefined;
    this.partitions = [];
  }

  faultStats(): FaultStats {
    return { ...this.counters, pendingDelayed: this.held.size };
  }

  // --- Transport --------------------------------------------------------------------------

  get maxPayloadBytes(): number {
    return this.inner.maxPayloadBytes;
  }

  status(): TransportStatus {
    return this.closed ? 'closed' : this.inner.status();
  }

  publish(subject: string, data: Uint8Array, opts?: PublishOptions): void {
    this.checkOutbound(subject, data);
    const reply = opts?.reply;
    if (reply !== undefined) assertValidSubject(reply, 'publish');
    const fate = this.decide(subject);
    if (fate.lost) return;
    const pubOpts = reply !== undefined ? { reply } : undefined;
    // Held copies must not see the publisher reuse its buffer.
    const held = fate.delays.some((d) => d > 0) ? new Uint8Array(data) : data;
    for (const d of fate.delays) {
      if (d === 0) this.inner.publish(subject, data, pubOpts);
      else this.hold(d, () => this.innerPublishLater(subject, held, pubOpts));
    }
  }

  subscribe(subject: string, handler: (msg: TransportMsg) => void, opts?: SubscribeOptions): Subscription {
    if (this.closed) throw new TransportClosedError();
    return this.inner.subscribe(subject, (m) => handler(this.wrapReceived(m)), opts);
  }

  request(subject: string, data: Uint8Array, opts: RequestOptions): Promise<TransportMsg> {
    const { timeoutMs, signal } = opts;
    try {
      this.checkOutbound(subject, data);
      if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
        throw new RangeError(`request option timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
      }
      if (signal?.aborted) throw new AbortedError(`request to ${subject}`, signal.reason);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const fate = this.decide(subject);
    if (fate.lost) return this.lostRequest(subject, timeoutMs, signal);
    const [first = 0, ...copies] = fate.delays;
    const copy = new Uint8Array(data);
    // A duplicated request reaches the responder again; its reply goes nowhere, like a second
    // reply to an inbox that already has its answer.
    for (const d of copies) {
      const send = (): void => this.innerPublishLater(subject, copy, { reply: this.discardInbox() });
      if (d === 0) send();
      else this.hold(d, send);
    }
    if (first === 0) return this.inner.request(subject, data, opts);
    if (first >= timeoutMs) {
      this.hold(first, () => this.innerPublishLater(subject, copy, { reply: this.discardInbox() }));
      return this.lostRequest(subject, timeoutMs, signal);
    }
    return new Promise<TransportMsg>((resolve, reject) => {
      const onAbort = (): void => {
        entry.cancelled = true;
        reject(new AbortedError(`request to ${subject}`, signal?.reason));
      };
      const entry = this.hold(first, () => {
        signal?.removeEventListener('abort', onAbort);
        const rest: RequestOptions = { timeoutMs: timeoutMs - first };
        if (signal) rest.signal = signal;
        this.inner.request(subject, copy, rest).then(resolve, (err: unknown) =>
          reject(err instanceof TransportTimeoutError ? new TransportTimeoutError(subject, timeoutMs) : err),
        );
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new TransportClosedError());
    return this.inner.flush();
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      for (const h of this.held.clear()) {
        h.cancelled = true;
        this.clock.clearTimeout(h.timer);
      }
    }
    await this.inner.close();
  }

  onEvent(listener: (ev: TransportEvent) => void): () => void {
    this.listeners.add(listener);
    const off = this.inner.onEvent(listener);
    return () => {
      this.listeners.delete(listener);
      off();
    };
  }

  // --- internals --------------------------------------------------------------------------

  private checkOutbound(subject: string, data: Uint8Array): void {
    if (this.closed) throw new TransportClosedError(subject);
    assertValidSubject(subject, 'publish');
    const max = this.inner.maxPayloadBytes;
    if (data.byteLength > max) throw new PayloadTooLargeError(data.byteLength, max, subject);
  }

  private decide(subject: string): Fate {
    this.counters.outbound++;
    for (const cut of this.partitions) {
      if (cut(subject)) {
        this.counters.partitioned++;
        return { lost: 'partitioned', delays: [] };
      }
    }
    if (this.dropP > 0 && this.rng.next() < this.dropP) {
      this.counters.dropped++;
      return { lost: 'dropped', delays: [] };
    }
    let copies = 1;
    if (this.duplicateP > 0 && this.rng.next() < this.duplicateP) {
      copies = 2;
      this.counters.duplicated++;
    }
    const delays: number[] = [];
    for (let i = 0; i < copies; i++) delays.push(this.sampleDelay());
    return { lost: undefined, delays };
  }

  private sampleDelay(): number {
    const r = this.delayRange;
    if (r === undefined) return 0;
    const d = r.maxMs === r.minMs ? r.minMs : r.minMs + this.rng.next() * (r.maxMs - r.minMs);
    this.counters.delayed++;
    return d;
  }

  /** Hold `run` for `delayMs`; released in (due, arrival) order whatever order the clock fires timers in. */
  private hold(delayMs: number, run: () => void): Held {
    let due = this.clock.now() + delayMs;
    if (this.delayRange?.preserveOrder) due = Math.max(due, this.lastDue);
    this.lastDue = Math.max(this.lastDue, due);
    const h: Held = { due, seq: this.nextSeq++, run, timer: undefined, cancelled: false };
    this.held.push(h);
    h.timer = this.clock.setTimeout(() => this.releaseThrough(h), Math.max(0, due - this.clock.now()));
    return h;
  }

  private releaseThrough(last: Held): void {
    for (let h = this.held.peek(); h !== undefined && heldBefore(h, last); h = this.held.peek()) {
      this.held.pop();
      this.clock.clearTimeout(h.timer);
      if (!h.cancelled) h.run();
    }
  }

  /** A send the caller no longer waits on: failures become `error` events instead of exceptions. */
  private innerPublishLater(subject: string, data: Uint8Array, opts: PublishOptions | undefined): void {
    if (this.closed) return;
    try {
      this.inner.publish(subject, data, opts);
    } catch (err) {
      this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  private lostRequest(subject: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<TransportMsg> {
    return new Promise<TransportMsg>((_resolve, reject) => {
      const onAbort = (): void => {
        this.clock.clearTimeout(timer);
        reject(new AbortedError(`request to ${subject}`, signal?.reason));
      };
      const timer = this.clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        reject(new TransportTimeoutError(subject, timeoutMs));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private discardInbox(): string {
    return `_INBOX.faults-discard.${this.discardSeq++}`;
  }

  private wrapReceived(m: TransportMsg): TransportMsg {
    const reply = m.reply;
    return {
      subject: m.subject,
      data: m.data,
      ...(reply !== undefined ? { reply } : {}),
      respond: (data: Uint8Array): boolean => {
        if (reply === undefined) return false;
        this.publish(reply, data);
        return true;
      },
    };
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
