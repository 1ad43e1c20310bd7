/**
 * `createLoadBalancer(system, options)`: spread requests over the instances of a service key found
 * through the receptionist. Each backend has its own circuit breaker (ejection and half-open
 * return); backends whose node leaves or goes down, or whose actor stops, leave the pool at once,
 * and requests they held fail over or fail with a typed error — none is left hanging.
 */
import { setMaxListeners } from 'node:events';
import { createActor, type Actor } from 'xstate';
import { defineActor } from '../../framework/actor.ts';
import { createRng, entropySeed, type Clock, type Rng } from '../../framework/clock.ts';
import type { MessageObject, MessageSet } from '../../framework/codec/messages.ts';
import {
  ActorStoppedError, BackendLostError, BrokenCircuitError, MailboxFullError, NoBackendsError, NoRespondersError, RemoteError, TroupeError,
} from '../../framework/errors.ts';
import type { Receptionist } from '../../framework/membership/receptionist.ts';
import { originOf, type ActorRef } from '../../framework/ref.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { validateName } from '../../framework/transport/subjects.ts';
import { createCircuitBreaker, type CircuitBreaker, type CircuitBreakerOptions } from '../circuit-breaker/breaker.ts';
import type { BreakerStateName } from '../circuit-breaker/machine.ts';
import { forwarderMachine, poolMachine, type ForwardEffect } from './machine.ts';
import { queueGroupCaller, type QueueGroupCaller } from './queue-group.ts';
import { createPicker, LoadBalancingStrategy, PeakEwma, STRATEGIES, type Candidate, type Picker } from './strategy.ts';

export const DEFAULT_STRATEGY: LoadBalancingStrategy = LoadBalancingStrategy.P2cEwma;
export const DEFAULT_ASK_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_EWMA_DECAY_MS = 10_000;
/** Per-backend breaker unless `breaker` says otherwise. */
export const DEFAULT_BACKEND_BREAKER = { consecutiveFailures: 5, openMs: 5_000 } as const;

/** Options of {@link createLoadBalancer}. */
export interface LoadBalancerOptions {
  /**
   * Service key: the pool is every instance the receptionist finds under it (in `queue-group` mode,
   * every member serving the key with `serveQueueGroup`, and then a valid name token).
   */
  key: string;
  /** Where the pool comes from; not used in `queue-group` mode. */
  receptionist?: Receptionist;
  /** @default 'p2c-ewma' */
  strategy?: LoadBalancingStrategy;
  /** Name of the balancer (its chart in the inspector, its actor). A valid name token. @default `lb-<key>` */
  name?: string;
  /** Time for a whole request, failovers included. @default 5000 */
  askTimeoutMs?: number;
  /** Backends tried per request before giving up (failover on a request that was not delivered). @default 3 */
  maxAttempts?: number;
  /**
   * Re-send a request whose backend was lost while holding it (it may have been processed): only for
   * idempotent requests. Otherwise such a request fails with `BackendLostError`.
   * @default false
   */
  retryInFlight?: boolean;
  /** Options of each backend's circuit breaker. @default { consecutiveFailures: 5, openMs: 5000 } */
  breaker?: Omit<CircuitBreakerOptions, 'clock' | 'name' | 'restore'>;
  /** Time constant of the latency EWMA (p2c-ewma). @default 10000 */
  ewmaDecayMs?: number;
  /** Randomness of `random` and `p2c-ewma` and of tie-breaks. @default a generator seeded from entropy */
  rng?: Rng;
  /**
   * The pool's message sets: when given, a balancer actor is spawned (`balancer.ref`) that other
   * actors can tell and ask like a single backend. Required in `queue-group` mode (requests are
   * encoded by the balancer itself).
   */
  messages?: MessageSet | readonly MessageSet[];
}

/** What `backends()` reports of one backend. */
export interface BackendInfo {
  readonly address: string;
  readonly breaker: BreakerStateName;
  readonly outstanding: number;
  readonly ewmaMs: number;
  /** Requests it answered. */
  readonly served: number;
  /** Requests that failed on it (errors, timeouts, losses). */
  readonly failed: number;
}

/** Counters since the balancer started. */
export interface LoadBalancerStats {
  readonly requests: number;
  /** Attempts moved to another backend. */
  readonly failovers: number;
  /** Requests that failed with `BackendLostError`. */
  readonly lost: number;
  /** Requests that failed with `NoBackendsError`. */
  readonly noBackends: number;
}

/** Per-request options. */
export interface BalancedAskOptions {
  /** @default the balancer's askTimeoutMs */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface LoadBalancer extends AsyncDisposable {
  readonly name: string;
  readonly key: string;
  readonly strategy: LoadBalancingStrategy;
  /** The balancer actor, when `messages` were given. */
  readonly ref: ActorRef | undefined;
  /** The pool chart (hosted with the system's actors as `name`). */
  readonly pool: Actor<typeof poolMachine>;
  /**
   * Ask one backend. Rejects with `NoBackendsError` (none admitted or all tried), `BackendLostError`
   * (its backend died holding it and `retryInFlight` is off), `AskTimeoutError`, or what the backend
   * answered with — never hangs past the timeout.
   */
  ask<R extends MessageObject = MessageObject>(message: MessageObject, options?: BalancedAskOptions): Promise<R>;
  /** Tell one backend; false when there is none to tell. */
  tell(message: MessageObject): boolean;
  /** Every backend in the pool, sorted by address. */
  backends(): BackendInfo[];
  stats(): LoadBalancerStats;
  /** Stop following the pool, stop the breakers and the actor. In-flight requests still settle. */
  dispose(): Promise<void>;
}

class Backend implements Candidate {
  outstanding = 0;
  served = 0;
  failed = 0;
  dead = false;
  private released = false;
  readonly lost = new AbortController();
  constructor(
    readonly address: string, readonly ref: ActorRef, readonly breaker: CircuitBreaker, readonly ewma: PeakEwma, private readonly clock: Clock,
  ) {
    // every request in flight to this backend listens to `lost`: hundreds at once is normal
    setMaxListeners(Number.POSITIVE_INFINITY, this.lost.signal);
  }
  get ewmaMs(): number {
    return this.ewma.at(this.clock.now());
  }
  /** Stop the breaker once nothing runs through it any more. */
  releaseWhenIdle(): void {
    if (this.released || !this.dead || this.outstanding > 0) return;
    this.released = true;
    this.breaker.dispose();
  }
}

/** Errors that prove the backend never took the request: always safe to try another. */
function notDelivered(err: unknown): boolean {
  return err instanceof BrokenCircuitError || err instanceof NoRespondersError || err instanceof ActorStoppedError || err instanceof MailboxFullError;
}

class LoadBalancerImpl implements LoadBalancer {
  readonly name: string;
  readonly key: string;
  readonly strategy: LoadBalancingStrategy;
  readonly ref: ActorRef | undefined;
  readonly pool: Actor<typeof poolMachine>;
  private readonly pick: Picker | undefined;
  private readonly queue: QueueGroupCaller | undefined;
  private readonly backendsByAddress = new Map<string, Backend>();
  private admitted: Backend[] = [];
  private readonly askTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly retryInFlight: boolean;
  private readonly breakerOptions: LoadBalancerOptions['breaker'];
  private readonly ewmaDecayMs: number;
  private readonly offListing: (() => void) | undefined;
  private readonly unhost: () => void;
  private counters = { requests: 0, failovers: 0, lost: 0, noBackends: 0 };
  private disposed = false;

  constructor(private readonly system: ActorSystem, o: LoadBalancerOptions) {
    if (typeof o.key !== 'string' || o.key.length === 0) throw new RangeError(`load balancer option key must be a non-empty string, got ${JSON.stringify(o.key)}`);
    this.key = o.key;
    this.strategy = o.strategy ?? DEFAULT_STRATEGY;
    if (!STRATEGIES.includes(this.strategy)) throw new RangeError(`load balancer option strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(o.strategy)}`);
    const queueMode = this.strategy === 'queue-group';
    if (!queueMode && !o.receptionist) throw new RangeError('load balancer option receptionist is required (except in queue-group mode)');
    if (queueMode && !o.messages) throw new RangeError('load balancer option messages is required in queue-group mode');
    if (queueMode) {
      try {
        validateName(o.key, 'key');
      } catch (err) {
        throw new RangeError(`load balancer option key: in queue-group mode ${(err as Error).message}`);
      }
    }
    this.name = o.name ?? `lb-${o.key}`;
    try {
      validateName(this.name, 'load balancer name');
    } catch (err) {
      throw new RangeError(`load balancer option name: ${(err as Error).message}${o.name === undefined ? ' (the default is lb-<key>; pass a name)' : ''}`);
    }
    const positive = (name: string, v: number | undefined, dflt: number, integer: boolean): number => {
      const x = v ?? dflt;
      if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) {
        throw new RangeError(`load balancer option ${name} must be ${integer ? 'an integer' : 'a number'} > 0, got ${String(v)}`);
      }
      return x;
    };
    this.askTimeoutMs = positive('askTimeoutMs', o.askTimeoutMs, DEFAULT_ASK_TIMEOUT_MS, false);
    this.maxAttempts = positive('maxAttempts', o.maxAttempts, DEFAULT_MAX_ATTEMPTS, true);
    this.ewmaDecayMs = positive('ewmaDecayMs', o.ewmaDecayMs, DEFAULT_EWMA_DECAY_MS, false);
    this.retryInFlight = o.retryInFlight ?? false;
    this.breakerOptions = o.breaker ?? DEFAULT_BACKEND_BREAKER;
    createCircuitBreaker({ ...this.breakerOptions, clock: system.clock }).dispose(); // validate now, not at the first backend
    this.pick = queueMode ? undefined : createPicker(this.strategy as Exclude<LoadBalancingStrategy, 'queue-group'>, o.rng ?? createRng(entropySeed()));
    this.queue = queueMode ? queueGroupCaller(system, this.key, o.messages!) : undefined;

    this.pool = createActor(poolMachine, { clock: system.clock });
    this.pool.start();
    this.unhost = system.host(this.name, this.pool, { type: 'load-balancer-pool' });
    if (o.messages) {
      const def = defineActor({ type: 'load-balancer', machine: forwarderMachine, messages: o.messages as MessageSet | MessageSet[] });
      this.ref = system.spawn(def, { name: `${this.name}-actor`, onEffect: (effect, self) => this.onForward(effect as ForwardEffect, self) });
    }
    this.offListing = o.receptionist && !queueMode ? o.receptionist.subscribe(this.key, ({ instances }) => this.replace(instances)) : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  async ask<R extends MessageObject = MessageObject>(message: MessageObject, options: BalancedAskOptions = {}): Promise<R> {
    this.counters.requests++;
    if (this.queue) return this.askQueue<R>(message, options);
    const clock = this.system.clock;
    const deadline = clock.now() + (options.timeoutMs ?? this.askTimeoutMs);
    let tried: Set<Backend> | undefined;
    let lastError: unknown;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const b = this.choose(tried);
      if (!b) break;
      if (attempt > 0) this.counters.failovers++;
      (tried ??= new Set()).add(b);
      const remaining = Math.max(1, deadline - clock.now());
      const signal = options.signal ? AbortSignal.any([b.lost.signal, options.signal]) : b.lost.signal;
      const started = clock.now();
      b.outstanding++;
      try {
        const reply = await b.breaker.execute(() => this.system.ask<R>(b.ref, message, { timeoutMs: remaining, signal }), signal);
        b.ewma.observe(clock.now() - started, clock.now());
        b.served++;
        return reply;
      } catch (err) {
        if (options.signal?.aborted) throw err;
        if (b.lost.signal.aborted && !notDelivered(err)) {
          b.failed++;
          const lost = new BackendLostError(b.address, String(b.lost.signal.reason ?? 'lost'));
          if (!this.retryInFlight) {
            this.counters.lost++;
            throw lost;
          }
          lastError = lost;
          continue;
        }
        if (!(err instanceof BrokenCircuitError)) {
          b.failed++;
          b.ewma.observe(clock.now() - started, clock.now()); // a failure is slow news: it counts as latency
        }
        if (!notDelivered(err)) throw err;
        lastError = err;
      } finally {
        b.outstanding--;
        if (b.dead) b.releaseWhenIdle();
      }
    }
    this.counters.noBackends++;
    throw new NoBackendsError(this.key, tried ? `${tried.size} backend(s) tried` : 'none admitted', lastError === undefined ? undefined : { cause: lastError });
  }

  private async askQueue<R extends MessageObject>(message: MessageObject, options: BalancedAskOptions): Promise<R> {
    try {
      return await this.queue!.ask<R>(message, options.timeoutMs ?? this.askTimeoutMs, options.signal);
    } catch (err) {
      if (err instanceof NoBackendsError) this.counters.noBackends++;
      throw err;
    }
  }

  tell(message: MessageObject): boolean {
    if (this.queue) {
      this.queue.tell(message);
      return true;
    }
    const b = this.choose(undefined);
    if (!b) return false;
    this.system.deliver(b.ref, message);
    return true;
  }

  private choose(tried: Set<Backend> | undefined): Backend | undefined {
    let cs = this.admitted;
    if (tried) cs = cs.filter((b) => !tried.has(b));
    if (cs.length === 0) return undefined;
    return this.pick!(cs) as Backend;
  }

  private onForward(effect: ForwardEffect, self: ActorRef): void {
    if (effect.type !== 'lb.forward' || effect.message.type === 'Terminated') return;
    const origin = originOf(effect.message);
    const { origin: _origin, ...message } = effect.message as MessageObject & { origin?: unknown };
    if (!origin?.correlationId) {
      if (!this.tell(message as MessageObject)) {
        this.system.logger.warn({ key: this.key, messageType: message.type }, `load balancer ${this.name}: no backend for a tell`);
      }
      return;
    }
    this.ask(message as MessageObject).then(
      (reply) => this.system.reply(origin, reply, self),
      (err: unknown) => this.system.reply(origin, err instanceof TroupeError ? err : new RemoteError('REMOTE', String(err), false), self),
    );
  }

  // -------------------------------------------------------------------------------------------
  // The pool

  private replace(instances: readonly ActorRef[]): void {
    if (this.disposed) return;
    const seen = new Set<string>();
    for (const ref of instances) {
      seen.add(ref.address);
      const existing = this.backendsByAddress.get(ref.address);
      if (existing && !existing.dead) continue;
      existing?.releaseWhenIdle();
      this.add(ref);
    }
    for (const [address, b] of this.backendsByAddress) {
      if (!seen.has(address)) this.remove(b, 'left the pool (its node left or is down, or it was deregistered)');
    }
    this.refresh();
  }

  private add(ref: ActorRef): void {
    const breaker = createCircuitBreaker({ ...this.breakerOptions, clock: this.system.clock, name: `${this.name}:${ref.address}` });
    const b = new Backend(ref.address, ref, breaker, new PeakEwma(this.ewmaDecayMs), this.system.clock);
    this.backendsByAddress.set(ref.address, b);
    breaker.on('stateChange', () => this.refresh());
    // the actor may stop (or its node become unreachable) before the receptionist says so
    void this.system.watch(ref).then((t) => {
      if (this.backendsByAddress.get(b.address) !== b || b.dead) return;
      b.dead = true;
      b.lost.abort(`backend terminated: ${t.reason}`);
      this.refresh();
    });
  }

  private remove(b: Backend, reason: string): void {
    this.backendsByAddress.delete(b.address);
    b.dead = true;
    b.lost.abort(reason);
    b.releaseWhenIdle();
  }

  /** Recompute the admitted list and tell the pool chart. */
  private refresh(): void {
    const live = [...this.backendsByAddress.values()].filter((b) => !b.dead).sort((a, b) => (a.address < b.address ? -1 : 1));
    this.admitted = live.filter((b) => b.breaker.state !== 'open' && b.breaker.state !== 'isolated');
    if (!this.disposed) this.pool.send({ type: 'pool.changed', total: live.length, admitted: this.admitted.length });
  }

  backends(): BackendInfo[] {
    return [...this.backendsByAddress.values()]
      .sort((a, b) => (a.address < b.address ? -1 : 1))
      .map((b) => ({ address: b.address, breaker: b.breaker.state, outstanding: b.outstanding, ewmaMs: b.ewmaMs, served: b.served, failed: b.failed }));
  }

  stats(): LoadBalancerStats {
    return { ...this.counters };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.offListing?.();
    for (const b of this.backendsByAddress.values()) {
      b.dead = true;
      b.releaseWhenIdle();
    }
    this.admitted = [];
    if (this.ref) this.system.stop(this.ref);
    this.unhost();
    this.pool.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}

/**
 * A load balancer over the instances of `options.key`.
 * @example
 * const lb = createLoadBalancer(system, { key: 'workers', receptionist, strategy: 'p2c-ewma' });
 * const reply = await lb.ask({ type: 'Work', n: 1 }, { timeoutMs: 1_000 });
 */
export function createLoadBalancer(system: ActorSystem, options: LoadBalancerOptions): LoadBalancer {
  return new LoadBalancerImpl(system, options);
}

