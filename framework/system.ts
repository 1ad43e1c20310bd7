/**
 * The actor system: registry, clock, codec, transport, and `deliver()` — the one choke point every
 * message passes (local → mailbox, remote → envelope → transport).
 */
import { fromPromise, type AnyActorRef, type AnyStateMachine } from 'xstate';
import {
  ActorCell, type AnyDefinition, type AskInput, type CellHost, type Effect, type MessagesOfDefinition, type TerminatedEvent, type UserItem,
} from './actor.ts';
import { createCodec, EnvelopeKind, type WireEnvelope } from './codec/codec.ts';
import type { MessageObject, MessageSet } from './codec/messages.ts';
import type { Clock } from './clock.ts';
import { createDeadLetterOffice, DeadLetterReason, type DeadLetters } from './dead-letters.ts';
import {
  AbortedError, ActorFailedError, ActorStoppedError, AskTimeoutError, DecodeError, ErrorCode, InvalidNameError, MailboxFullError, NameTakenError, NoRespondersError, NotLeaderError,
  PayloadTooLargeError, RemoteError, SystemShutdownError, TransportClosedError, TransportTimeoutError, TroupeError,
  UnknownMessageTypeError,
} from './errors.ts';
import type { InspectionEvent, InspectionPayload } from './inspector/events.ts';
import type { Logger } from './log.ts';
import { resolveOptions, type ResolvedOptions, type SystemOptions } from './options.ts';
import { addressOf, type ActorRef, type Address, type Origin, type RefLike } from './ref.ts';
import { resolvePolicy, type SupervisionOptions } from './supervision.ts';
import { supervisorMachine, type DirectiveEffect } from './supervisor.ts';
import { createMemoryBus } from './transport/memory.ts';
import { actorSubject, nodeSubject, parseAddress, SYSTEM_PATH, systemSubject, validateName } from './transport/subjects.ts';
import type { Subscription, Transport, TransportMsg } from './transport/transport.ts';

/** Options of `spawn`. */
export interface SpawnOptions {
  /** Actor name, unique on this node; must be a valid subject token. */
  name: string;
  /** Machine input. */
  input?: unknown;
  /** How the system supervises this top-level actor. @default the system's `supervision` option */
  supervision?: SupervisionOptions;
  /**
   * Carries out the machine's own emitted effects (any `type` not starting with `troupe.`), in
   * emission order, synchronously — e.g. a Raft node's `raft.persist` before its `raft.send`.
   */
  onEffect?: (effect: { type: string }, self: ActorRef) => void;
}

/** Options of `ask`. */
export interface AskOptions {
  /** @default the system's askTimeoutMs (5 000) */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Sender address carried with the ask (set by the framework for asks from actors). */
  sender?: RefLike;
  /**
   * Run the ask under a resilience policy (a circuit breaker, retry, bulkhead, timeout — or
   * `wrap(…)` of them, from actors/). Each attempt is one ask with `timeoutMs`.
   * @default the system's `policyFor(target)`, if any
   */
  policy?: AskPolicy;
}

/**
 * What `ask` needs of a resilience policy: the shape of every policy in actors/ (`Policy`).
 * The runtime does not depend on the pattern catalogue; any object of this shape works.
 */
export interface AskPolicy {
  execute<T>(fn: (ctx: { readonly signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>;
}

/** A running actor system: one node of a cluster. */
export interface ActorSystem extends AsyncDisposable {
  readonly cluster: string;
  readonly node: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly deadLetters: DeadLetters;
  /**
   * The bus this node is connected to. For framework services that talk to the whole cluster
   * (membership, the receptionist); actors reach each other through `deliver`/`ask`, not this.
   */
  readonly transport: Transport;
  /**
   * Start an actor (or a supervisor and its children).
   * @example const ponger = system.spawn(Ponger, { name: 'ponger' });
   */
  spawn<D extends AnyDefinition>(def: D, options: SpawnOptions): ActorRef<MessagesOfDefinition<D>>;
  /** A ref to the actor at `address` (`node/name…`) on any node; throws `InvalidNameError` for a bad address. */
  ref<M extends MessageObject = MessageObject>(address: string): ActorRef<M>;
  /**
   * Request/reply. Rejects with `AskTimeoutError`, `NoRespondersError`, `MailboxFullError`,
   * `UnknownMessageTypeError`, `AbortedError` or `SystemShutdownError` — never hangs past the timeout.
   * @example const pong = await system.ask(ponger, { type: 'Ping', n: 1 }, { timeoutMs: 1_000 });
   */
  ask<R extends MessageObject = MessageObject>(to: RefLike, message: MessageObject, options?: AskOptions): Promise<R>;
  /** Stop an actor (and its children); its watchers get `Terminated`. Stopping a stopped actor is a no-op. */
  stop(ref: RefLike): void;
  /**
   * Death watch. Resolves when `target` stops (or its node becomes unreachable). When `watcher` is
   * given, that actor also receives a `Terminated` event.
   */
  watch(target: RefLike, watcher?: RefLike): Promise<TerminatedEvent>;
  /** Deliver a message from `sender` (or from outside any actor). The one delivery path; `ref.send` uses it. */
  deliver(to: RefLike, message: MessageObject, sender?: Address): void;
  /** Resolves when this node's subscription is registered with the bus (call before remote peers send). */
  ready(): Promise<void>;
  /** Current machine snapshot of a local actor, or undefined (tests, tooling). */
  snapshotOf(ref: RefLike): { value: unknown; context: unknown; status: string } | undefined;
  /** Addresses of live local actors. */
  actors(): Address[];
  /**
   * Show an XState actor that something else runs — a policy's state chart (a circuit breaker's,
   * a bulkhead's) — with the system's actors: it gets the address `node/name`, appears in `actors()`,
   * `snapshotOf()` and the inspection stream. It receives no messages (its owner drives it); the
   * returned function (or `stop(ref)`) removes it.
   * @example system.host('breaker-payments', breaker.actor, { type: 'circuit-breaker' });
   */
  host(name: string, actor: AnyActorRef, options?: { type?: string }): () => void;
  /**
   * Answer an ask later, from outside the machine (e.g. once an asynchronous effect finished): `origin`
   * is the event's `originOf(event)`. A `TroupeError` answer fails the ask with that error.
   */
  reply(origin: Origin, answer: MessageObject | TroupeError, sender: RefLike): void;
  /** Stop every actor, fail pending asks, notify remote watchers, close the transport. Idempotent. */
  shutdown(): Promise<void>;
}

/** Cell turns the dispatcher runs before it yields to timers and I/O. */
const DISPATCH_BATCH = 64;

interface PendingAsk {
  resolve(reply: MessageObject): void;
  reject(error: Error): void;
  timer: unknown;
  cleanup?: () => void;
}

interface RemoteNodeWatch {
  /** `watcher|target` pairs. */
  pairs: Set<string>;
  missed: number;
  timer: unknown;
}

class RefImpl implements ActorRef {
  cell: ActorCell | undefined;
  constructor(readonly address: Address, private readonly system: SystemImpl, readonly local: boolean) {}
  send(message: MessageObject): void {
    this.system.tellFromRef(this, message);
  }
  toString(): string {
    return `ActorRef(${this.address})`;
  }
  toJSON(): string {
    return this.address;
  }
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

class SystemImpl implements ActorSystem, CellHost {
  readonly cluster: string;
  readonly node: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly inspect: ResolvedOptions['inspect'];
  private readonly throughput: number;
  readonly deadLetters: ReturnType<typeof createDeadLetterOffice>;
  private readonly opts: ResolvedOptions;
  readonly transport: Transport;
  private readonly codec;
  private readonly registry = new Map<string, ActorCell>();
  private readonly root: ActorCell;
  private readonly machines = new Map<AnyStateMachine, AnyStateMachine>();
  private readonly pending = new Map<string, PendingAsk>();
  private readonly externalWatchers = new Map<string, (t: TerminatedEvent) => void>();
  private readonly remoteWatches = new Map<string, RemoteNodeWatch>();
  private readonly subjects = new Map<string, string>();
  private readonly subscription: Subscription;
  private readonly systemAddress: string;
  private readonly offTransportEvents: () => void;
  private seq = 0;
  private shutdownPromise: Promise<void> | undefined;
  /** The dispatcher's run queue: cells with mail, served round-robin, `throughput` messages a turn. */
  private readonly runQueue: ActorCell[] = [];
  private readyHead = 0;
  private dispatching = false;
  private readonly dispatch = (): void => this.runReady();
  private readonly registeredSets = new WeakSet<object>();
  /** Actors run by others (policies), shown with ours: address → actor and what to undo. */
  private readonly hosted = new Map<string, { actor: AnyActorRef; release: () => void }>();

  constructor(options: SystemOptions) {
    this.opts = resolveOptions(options);
    const o = this.opts;
    this.cluster = o.cluster;
    this.node = o.node;
    this.clock = o.clock;
    this.logger = o.logger;
    this.inspect = o.inspect;
    this.throughput = o.throughput;
    this.transport = o.transport ?? createMemoryBus({ clock: o.clock }).connect({ name: o.node });
    this.codec = createCodec({ maxPayloadBytes: o.maxPayloadBytes });
    this.deadLetters = createDeadLetterOffice({ clock: o.clock, logger: o.logger, logWindowMs: o.deadLetterLogWindowMs, logMax: o.deadLetterLogMax });
    this.systemAddress = `${o.node}/${SYSTEM_PATH}`;
    if (o.inspect) {
      this.deadLetters.subscribe((dl) => this.emit({ kind: 'message.dead', to: dl.target, reason: dl.reason, messageType: dl.messageType, from: dl.sender }));
    }
    for (const set of o.messages) this.registerMessages(set);
    // The root guardian: supervises top-level actors, one-for-one, each with its own policy.
    this.root = new ActorCell(this, this.systemAddress as Address, SYSTEM_PATH, {
      kind: 'supervisor', type: 'root', strategy: 'one-for-one', children: [],
      machine: supervisorMachine, messages: [], accepts: new Set(),
    }, undefined, { strategy: 'one-for-one', root: true }, o.supervision, 1);
    this.root.start();
    this.subscription = this.transport.subscribe(nodeSubject(o.cluster, o.node), (msg) => this.onInbound(msg));
    this.offTransportEvents = this.transport.onEvent((ev) => {
      if (ev.type === 'error') this.logger.warn({ err: ev.error }, 'transport error');
      else if (ev.type === 'disconnected' || ev.type === 'reconnecting') this.logger.warn(`transport ${ev.type}`);
      else this.logger.info(`transport ${ev.type}`);
    });
    this.logger.debug({ node: o.node, cluster: o.cluster, transport: this.transport.kind }, 'actor system started');
  }

  // -------------------------------------------------------------------------------------------
  // CellHost

  machineFor(def: AnyDefinition): AnyStateMachine {
    const machine = def.machine as AnyStateMachine;
    let provided = this.machines.get(machine);
    if (!provided) {
      const askActor = fromPromise<MessageObject, AskInput>(({ input, self, signal }) => {
        const parent = (self as { _parent?: { id?: string } })._parent;
        return this.ask(input.to, input.message, { timeoutMs: input.timeoutMs, signal, sender: parent?.id });
      });
      provided = machine.provide({ actors: { 'troupe.ask': askActor } } as never) as AnyStateMachine;
      this.machines.set(machine, provided);
    }
    return provided;
  }

  onEffect(cell: ActorCell, effect: Effect): void {
    switch (effect.type) {
      case 'troupe.tell':
        this.deliver(effect.to, effect.message, cell.address);
        return;
      case 'troupe.reply':
        this.replyToOrigin(effect.origin, effect.message, cell.address);
        return;
      case 'troupe.watch':
        this.addWatch(addressOf(effect.target), cell.address);
        (cell.watching ??= new Set()).add(addressOf(effect.target));
        return;
      case 'troupe.unwatch':
        this.unwatch(effect.target, cell.address);
        cell.watching?.delete(addressOf(effect.target));
        return;
      case 'troupe.directive':
        this.applyDirective(cell, effect);
        return;
    }
  }

  onFailure(cell: ActorCell, error: unknown, event?: unknown): void {
    cell.logger.error({ err: error }, `actor ${cell.address} failed: ${describe(error)}`);
    const origin = (event as { origin?: Origin } | undefined)?.origin;
    if (origin?.correlationId) this.failAsk(origin, new ActorFailedError(cell.address, describe(error)), cell.address);
    this.emit({ kind: 'actor.failed', actor: cell.address, error: describe(error) });
    const parent = cell.parent ?? this.root;
    const strategy = parent.def.kind === 'supervisor' ? parent.def.strategy : 'one-for-one';
    const siblings = strategy === 'one-for-one' || !parent.children ? [] : [...parent.children.keys()];
    parent.enqueueSystem({ kind: 'event', event: { type: 'ChildFailed', child: cell.name, error, nowMs: this.clock.now(), policy: cell.policy, siblings } });
  }

  onDone(cell: ActorCell): void {
    this.stopCell(cell, 'done');
  }

  onUserMessageDropped(cell: ActorCell, message: UserItem, reason: string): void {
    this.deadLetters.record({ reason: DeadLetterReason.ActorStopped, target: cell.address, messageType: message.type, error: reason });
  }

  schedule(cell: ActorCell): void {
    cell.scheduled = true;
    this.runQueue.push(cell);
    if (!this.dispatching) {
      this.dispatching = true;
      queueMicrotask(this.dispatch);
    }
  }

  /**
   * The dispatcher: serve cells with mail round-robin, `throughput` messages per turn, on
   * microtasks; after a batch of work, yield one macrotask so timers and I/O are not starved.
   */
  private runReady(): void {
    let budget = DISPATCH_BATCH;
    while (this.readyHead < this.runQueue.length) {
      const cell = this.runQueue[this.readyHead++]!;
      cell.scheduled = false;
      if (cell.runTurn(this.throughput)) {
        cell.scheduled = true;
        this.runQueue.push(cell);
      }
      if (--budget === 0 && this.readyHead < this.runQueue.length) {
        this.compactReady();
        setImmediate(this.dispatch);
        return;
      }
    }
    this.runQueue.length = 0;
    this.readyHead = 0;
    this.dispatching = false;
  }

  private compactReady(): void {
    if (this.readyHead > 1024) {
      this.runQueue.splice(0, this.readyHead);
      this.readyHead = 0;
    }
  }

  private registerMessages(set: MessageSet): void {
    if (this.registeredSets.has(set)) return;
    this.codec.register(set);
    this.registeredSets.add(set);
  }

  // -------------------------------------------------------------------------------------------
  // Spawning and stopping

  spawn<D extends AnyDefinition>(def: D, options: SpawnOptions): ActorRef<MessagesOfDefinition<D>> {
    if (this.shutdownPromise) throw new SystemShutdownError(this.node);
    validateName(options.name, 'actor name');
    const policy = options.supervision ? resolvePolicy(options.supervision) : this.opts.supervision;
    const cell = this.startCell(def, options.name, undefined, options.input, policy, options.onEffect);
    return this.refFor(cell.address, cell) as unknown as ActorRef<MessagesOfDefinition<D>>;
  }

  private startCell(
    def: AnyDefinition, name: string, parent: ActorCell | undefined, input: unknown, policy: ReturnType<typeof resolvePolicy>,
    onEffect?: (effect: { type: string }, self: ActorRef) => void,
  ): ActorCell {
    const address = (parent ? `${parent.address}/${name}` : `${this.node}/${name}`) as Address;
    if (this.registry.has(address)) throw new NameTakenError(address);
    for (const set of def.messages) this.registerMessages(set);
    const supervisorInput = def.kind === 'supervisor' ? { strategy: def.strategy } : input;
    const cell = new ActorCell(this, address, name, def, parent, supervisorInput, policy, this.opts.mailboxCapacity);
    if (onEffect) {
      const self = this.refFor(address, cell);
      cell.onCustomEffect = (effect) => onEffect(effect, self);
    }
    this.registry.set(address, cell);
    ((parent ?? this.root).children ??= new Map()).set(name, cell);
    if (this.inspect) {
      this.emit({ kind: 'actor.spawned', actor: address, actorType: def.type, parent: parent?.address, machine: this.machineFor(def) });
    }
    cell.start();
    if (def.kind === 'supervisor') this.startChildren(cell);
    return cell;
  }

  private startChildren(cell: ActorCell): void {
    if (cell.def.kind !== 'supervisor') return;
    for (const spec of cell.def.children) {
      this.startCell(spec.def, spec.name, cell, spec.input, resolvePolicy(spec.supervision));
    }
  }

  stop(ref: RefLike): void {
    const address = addressOf(ref);
    const cell = this.registry.get(address);
    if (cell) this.stopCell(cell, 'stopped');
    else this.hosted.get(address)?.release();
  }

  host(name: string, actor: AnyActorRef, options: { type?: string } = {}): () => void {
    validateName(name, 'hosted actor name');
    const address = `${this.node}/${name}`;
    if (this.registry.has(address) || this.hosted.has(address)) throw new NameTakenError(address);
    let sub: { unsubscribe(): void } | undefined;
    if (this.inspect) {
      this.emit({ kind: 'actor.spawned', actor: address, actorType: options.type ?? 'hosted', machine: (actor as { logic?: unknown }).logic });
      const report = (s: { value?: unknown; context?: unknown; status?: string }): void =>
        this.emit({ kind: 'actor.snapshot', actor: address, value: s.value, context: s.context, status: s.status ?? 'active' });
      report(actor.getSnapshot() as { value?: unknown });
      sub = actor.subscribe({ next: report, error: () => undefined });
    }
    const release = (): void => {
      if (this.hosted.get(address)?.actor !== actor) return;
      this.hosted.delete(address);
      sub?.unsubscribe();
      if (this.inspect) this.emit({ kind: 'actor.stopped', actor: address, reason: 'unhosted' });
    };
    this.hosted.set(address, { actor, release });
    return release;
  }

  private stopCell(cell: ActorCell, reason: string): void {
    if (cell.status === 'stopped') return;
    if (cell.children) for (const child of [...cell.children.values()].reverse()) this.stopCell(child, 'parent-stopped');
    const left = cell.halt();
    this.registry.delete(cell.address);
    for (const message of left.user) this.dropOnStop(cell, message);
    if (cell.watchers) for (const watcher of cell.watchers) this.sendTerminated(watcher, cell.address, reason);
    cell.watchers = undefined;
    if (cell.watching) for (const target of cell.watching) this.unwatch(target, cell.address);
    cell.watching = undefined;
    const parent = cell.parent ?? this.root;
    if (parent.children?.get(cell.name) === cell) parent.children.delete(cell.name);
    if (parent.status === 'running') parent.enqueueSystem({ kind: 'event', event: { type: 'ChildStopped', child: cell.name } });
    cell.logger.debug({ reason }, 'actor stopped');
    if (this.inspect) this.emit({ kind: 'actor.stopped', actor: cell.address, reason });
  }

  /** A user message left in a stopped actor's mailbox: dead letter, and fail it if it was an ask. */
  private dropOnStop(cell: ActorCell, message: UserItem): void {
    this.deadLetters.record({ reason: DeadLetterReason.ActorStopped, target: cell.address, messageType: message.type });
    const origin = (message as { origin?: Origin }).origin;
    if (origin?.correlationId) this.failAsk(origin, new ActorStoppedError(cell.address), cell.address);
  }

  private applyDirective(supervisor: ActorCell, d: DirectiveEffect): void {
    const level = d.directive === 'restart' || d.directive === 'resume' ? 'info' : 'warn';
    supervisor.logger[level]({ directive: d.directive, child: d.child, children: d.children, delayMs: d.delayMs, reason: d.reason },
      `supervisor ${supervisor === this.root ? '(root)' : supervisor.address}: ${d.directive} ${d.children.join(', ')} — ${d.reason}`);
    if (this.inspect) {
      this.emit({ kind: 'supervision.directive', supervisor: supervisor.address, child: d.child, directive: d.directive, reason: d.reason, delayMs: d.delayMs });
    }
    const cells = d.children.map((n) => supervisor.children?.get(n)).filter((c): c is ActorCell => c !== undefined);
    switch (d.directive) {
      case 'restart':
        for (const c of cells) this.restartCell(c, this.jitter(d.delayMs, c.policy.backoff.jitter));
        return;
      case 'resume':
        for (const c of cells) c.resume();
        return;
      case 'stop':
        for (const c of cells) this.stopCell(c, 'failed');
        return;
      case 'escalate':
        if (supervisor === this.root) {
          for (const c of cells) this.stopCell(c, 'failed');
          return;
        }
        // OTP: the supervisor itself fails, and its own supervisor decides (its children go with it).
        supervisor.status = 'suspended';
        this.onFailure(supervisor, new Error(`child ${d.child} escalated: ${d.reason} (${d.error})`));
        return;
    }
  }

  private jitter(delayMs: number, jitter: number): number {
    return jitter > 0 && delayMs > 0 ? Math.round(delayMs * (1 - jitter * this.opts.rng.next())) : delayMs;
  }

  private restartCell(cell: ActorCell, delayMs: number): void {
    if (cell.def.kind === 'supervisor') {
      if (cell.children) for (const child of [...cell.children.values()].reverse()) this.stopCell(child, 'parent-restarting');
      cell.restart(delayMs, () => this.startChildren(cell));
    } else {
      cell.restart(delayMs);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Refs and delivery

  ref<M extends MessageObject = MessageObject>(address: string): ActorRef<M> {
    const { node } = parseAddress(address);
    return this.refFor(address as Address, node === this.node ? this.registry.get(address) : undefined) as unknown as ActorRef<M>;
  }

  private refFor(address: Address, cell: ActorCell | undefined): RefImpl {
    const local = address.startsWith(`${this.node}/`);
    const ref = new RefImpl(address, this, local);
    ref.cell = cell;
    return ref;
  }

  /** Fast path of `ref.send`: a cached cell for local refs. */
  tellFromRef(ref: RefImpl, message: MessageObject): void {
    if (ref.local) {
      let cell = ref.cell;
      if (cell === undefined || cell.status === 'stopped') {
        cell = this.registry.get(ref.address);
        ref.cell = cell;
      }
      if (cell !== undefined && this.inspect === undefined && !this.shutdownPromise) {
        this.enqueueLocal(cell, message, message);
        return;
      }
    }
    this.deliver(ref, message);
  }

  deliver(to: RefLike, message: MessageObject, sender?: Address): void {
    const address = addressOf(to);
    if (this.inspect) this.emit({ kind: 'message.sent', from: sender, to: address, messageType: message.type, ask: false });
    if (this.shutdownPromise) {
      this.deadLetters.record({ reason: DeadLetterReason.Shutdown, target: address, sender, messageType: message.type });
      return;
    }
    if (address.startsWith(this.node) && address.charCodeAt(this.node.length) === 47 /* '/' */) {
      const cell = this.registry.get(address);
      if (!cell) {
        this.deadLetters.record({ reason: DeadLetterReason.NoActor, target: address, sender, messageType: message.type });
        return;
      }
      this.enqueueLocal(cell, message, sender ? ({ ...message, origin: { sender } } as UserItem) : message);
      return;
    }
    this.sendRemote(address, message, sender, EnvelopeKind.User);
  }

  private enqueueLocal(cell: ActorCell, message: MessageObject, item: UserItem): boolean {
    if (!cell.def.accepts.has(message.type)) {
      this.deadLetters.record({ reason: DeadLetterReason.UnknownType, target: cell.address, messageType: message.type });
      return false;
    }
    if (!cell.enqueueUser(item)) {
      this.deadLetters.record({ reason: cell.status === 'stopped' ? DeadLetterReason.ActorStopped : DeadLetterReason.MailboxFull, target: cell.address, messageType: message.type });
      return false;
    }
    return true;
  }

  private subjectOf(address: string): string {
    let s = this.subjects.get(address);
    if (s === undefined) {
      s = actorSubject(this.cluster, address);
      if (this.subjects.size > 10_000) this.subjects.clear();
      this.subjects.set(address, s);
    }
    return s;
  }

  /** Encode and publish; every failure becomes a dead letter. */
  private sendRemote(address: string, message: MessageObject, sender: string | undefined, kind: EnvelopeKind): void {
    let subject: string | undefined;
    try {
      subject = this.subjectOf(address);
      const data = this.codec.encode({ kind, target: address, sender: sender ?? '', correlationId: '', replyTo: '' }, message);
      this.transport.publish(subject, data);
    } catch (err) {
      this.deadLetters.record({ reason: reasonOf(err), target: address, sender, messageType: message.type, subject, error: describe(err) });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Ask

  ask<R extends MessageObject = MessageObject>(to: RefLike, message: MessageObject, options: AskOptions = {}): Promise<R> {
    const address = addressOf(to);
    const timeoutMs = options.timeoutMs ?? this.opts.askTimeoutMs;
    const sender = options.sender ? addressOf(options.sender) : undefined;
    if (this.shutdownPromise) return Promise.reject(new SystemShutdownError(this.node));
    if (options.signal?.aborted) return Promise.reject(new AbortedError(`ask to ${address}`, options.signal.reason));
    let node: string;
    try {
      node = parseAddress(address).node;
    } catch (err) {
      return Promise.reject(err);
    }
    const policy = options.policy ?? this.opts.policyFor?.(address as Address);
    if (policy) {
      return policy.execute(({ signal }) => this.askOnce(node, address, message, timeoutMs, sender, signal), options.signal) as Promise<R>;
    }
    return this.askOnce(node, address, message, timeoutMs, sender, options.signal) as Promise<R>;
  }

  private askOnce(node: string, address: string, message: MessageObject, timeoutMs: number, sender: Address | undefined, signal?: AbortSignal): Promise<MessageObject> {
    if (this.inspect) this.emit({ kind: 'message.sent', from: sender, to: address, messageType: message.type, ask: true });
    if (node === this.node) return this.askLocal(address, message, timeoutMs, sender, signal);
    return this.askRemote(address, message, timeoutMs, sender, signal);
  }

  private askLocal(address: string, message: MessageObject, timeoutMs: number, sender: Address | undefined, signal?: AbortSignal): Promise<MessageObject> {
    const cell = this.registry.get(address);
    if (!cell) {
      this.deadLetters.record({ reason: DeadLetterReason.NoActor, target: address, sender, messageType: message.type });
      return Promise.reject(new NoRespondersError(address, 'no actor at that address'));
    }
    if (!cell.def.accepts.has(message.type)) {
      this.deadLetters.record({ reason: DeadLetterReason.UnknownType, target: address, sender, messageType: message.type });
      return Promise.reject(new UnknownMessageTypeError(message.type, address));
    }
    const correlationId = `${this.node}-${++this.seq}`;
    return new Promise<MessageObject>((resolve, reject) => {
      const entry: PendingAsk = {
        resolve, reject,
        timer: this.clock.setTimeout(() => {
          this.settle(correlationId)?.reject(new AskTimeoutError(address, timeoutMs, message.type));
        }, timeoutMs),
      };
      if (signal) {
        const onAbort = (): void => this.settle(correlationId)?.reject(new AbortedError(`ask to ${address}`, signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
        entry.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(correlationId, entry);
      const origin: Origin = sender ? { sender, correlationId, replyTo: '' } : { correlationId, replyTo: '' };
      if (!cell.enqueueUser({ ...message, origin } as UserItem)) {
        const stopped = cell.status === 'stopped';
        this.deadLetters.record({ reason: stopped ? DeadLetterReason.ActorStopped : DeadLetterReason.MailboxFull, target: address, sender, messageType: message.type });
        this.settle(correlationId)?.reject(stopped ? new ActorStoppedError(address) : new MailboxFullError(address, cell.mailbox.capacity));
      }
    });
  }

  /** Remove a pending ask and its timer; returns it if it was still pending. */
  private settle(correlationId: string): PendingAsk | undefined {
    const entry = this.pending.get(correlationId);
    if (!entry) return undefined;
    this.pending.delete(correlationId);
    this.clock.clearTimeout(entry.timer);
    entry.cleanup?.();
    return entry;
  }

  private async askRemote(address: string, message: MessageObject, timeoutMs: number, sender: Address | undefined, signal?: AbortSignal): Promise<MessageObject> {
    const subject = this.subjectOf(address);
    const data = this.codec.encode({
      kind: EnvelopeKind.User, target: address, sender: sender ?? '', correlationId: `${this.node}-${++this.seq}`, replyTo: '',
    }, message);
    let reply: TransportMsg;
    try {
      reply = await this.transport.request(subject, data, { timeoutMs, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (this.shutdownPromise) throw new SystemShutdownError(this.node);
      if (err instanceof TransportTimeoutError) throw new AskTimeoutError(address, timeoutMs, message.type);
      if (err instanceof NoRespondersError) throw new NoRespondersError(address, `node ${parseAddress(address).node} is not reachable`);
      throw err;
    }
    const env = this.codec.decodeEnvelope(reply.data, reply.subject);
    if (env.kind === EnvelopeKind.Reply) return this.codec.decodeMessage(env.messageType, env.payload, reply.subject);
    if (env.kind === EnvelopeKind.Error) throw errorFromReply(this.codec.decodeMessage(env.messageType, env.payload, reply.subject), address);
    throw new DecodeError(reply.subject, `expected a reply envelope, got kind ${env.kind}`);
  }

  reply(origin: Origin, answer: MessageObject | TroupeError, sender: RefLike): void {
    if (answer instanceof TroupeError) this.failAsk(origin, answer, addressOf(sender));
    else this.replyToOrigin(origin, answer, addressOf(sender));
  }

  private replyToOrigin(origin: Origin | undefined, message: MessageObject, sender: Address): void {
    if (this.inspect && origin?.correlationId) {
      this.emit({ kind: 'message.sent', from: sender, to: origin.sender ?? `${this.node}/(caller)`, messageType: message.type, ask: false, reply: true });
    }
    if (!origin?.correlationId) {
      this.deadLetters.record({ reason: DeadLetterReason.NoAsk, sender, messageType: message.type, error: 'reply to a message that was not an ask' });
      return;
    }
    if (origin.replyTo) {
      try {
        this.transport.publish(origin.replyTo, this.codec.encode({
          kind: EnvelopeKind.Reply, target: origin.sender ?? '', sender, correlationId: origin.correlationId, replyTo: '',
        }, message));
      } catch (err) {
        this.deadLetters.record({ reason: reasonOf(err), target: origin.sender, sender, messageType: message.type, error: describe(err) });
      }
      return;
    }
    const entry = this.settle(origin.correlationId);
    if (entry) entry.resolve(message);
    else this.deadLetters.record({ reason: DeadLetterReason.NoAsk, target: origin.sender, sender, messageType: message.type, error: 'the ask already timed out or was aborted' });
  }

  /** Fail an ask identified by its origin (local pending, or an error reply to a remote asker). */
  private failAsk(origin: Origin, error: TroupeError, sender: string): void {
    if (origin.replyTo) this.publishError(origin.replyTo, error, origin.correlationId ?? '', sender);
    else if (origin.correlationId) this.settle(origin.correlationId)?.reject(error);
  }

  private publishError(replyTo: string, error: TroupeError, correlationId: string, sender: string): void {
    try {
      this.transport.publish(replyTo, this.codec.encode({ kind: EnvelopeKind.Error, target: '', sender, correlationId, replyTo: '' }, errorReplyOf(error)));
    } catch (err) {
      this.logger.warn({ err }, 'could not send an error reply');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Inbound

  private onInbound(msg: TransportMsg): void {
    let env: WireEnvelope;
    try {
      env = this.codec.decodeEnvelope(msg.data, msg.subject);
    } catch (err) {
      this.deadLetters.record({ reason: reasonOf(err), subject: msg.subject, error: describe(err) });
      if (msg.reply && err instanceof TroupeError) this.publishError(msg.reply, err, '', this.systemAddress);
      return;
    }
    if (env.kind === EnvelopeKind.User && (!env.target.startsWith(`${this.node}/`) || !this.registry.has(env.target))) {
      this.deadLetters.record({ reason: DeadLetterReason.NoActor, target: env.target, sender: env.sender || undefined, messageType: env.messageType });
      if (msg.reply) this.publishError(msg.reply, new NoRespondersError(env.target, 'no actor at that address'), env.correlationId, this.systemAddress);
      return;
    }
    let message: MessageObject;
    try {
      message = this.codec.decodeMessage(env.messageType, env.payload, msg.subject);
    } catch (err) {
      this.deadLetters.record({ reason: reasonOf(err), target: env.target, sender: env.sender || undefined, messageType: env.messageType, subject: msg.subject, error: describe(err) });
      if (msg.reply && err instanceof TroupeError) this.publishError(msg.reply, err, env.correlationId, this.systemAddress);
      return;
    }
    if (env.kind === EnvelopeKind.System) {
      this.onSystemMessage(env, message, msg);
      return;
    }
    if (env.kind !== EnvelopeKind.User) {
      this.deadLetters.record({ reason: DeadLetterReason.NoAsk, target: env.target, messageType: message.type, subject: msg.subject, error: 'reply envelope on an actor subject' });
      return;
    }
    const sender = (env.sender || undefined) as Address | undefined;
    const cell = this.registry.get(env.target)!;
    if (msg.reply) {
      (message as { origin?: Origin }).origin = { ...(sender ? { sender } : {}), correlationId: env.correlationId || msg.reply, replyTo: msg.reply };
    } else if (sender) {
      (message as { origin?: Origin }).origin = { sender };
    }
    if (!this.enqueueLocal(cell, message, message) && msg.reply) {
      const err = !cell.def.accepts.has(message.type)
        ? new UnknownMessageTypeError(message.type, env.target)
        : cell.status === 'stopped' ? new ActorStoppedError(env.target) : new MailboxFullError(env.target, cell.mailbox.capacity);
      this.publishError(msg.reply, err, env.correlationId, this.systemAddress);
    }
  }

  private onSystemMessage(env: WireEnvelope, message: MessageObject, msg: TransportMsg): void {
    const m = message as unknown as Record<string, string> & { type: string };
    switch (m.type) {
      case 'Heartbeat':
        if (msg.reply) {
          msg.respond(this.codec.encode(
            { kind: EnvelopeKind.Reply, target: '', sender: this.systemAddress, correlationId: env.correlationId, replyTo: '' },
            { type: 'Heartbeat', node: this.node },
          ));
        }
        return;
      case 'Watch': {
        const target = this.registry.get(m['target']!);
        if (target) (target.watchers ??= new Set()).add(m['watcher']!);
        else this.sendTerminated(m['watcher']!, m['target']!, 'not-found');
        return;
      }
      case 'Unwatch':
        this.registry.get(m['target']!)?.watchers?.delete(m['watcher']!);
        return;
      case 'Terminated':
        this.forgetRemoteWatch(m['actor']!, env.target);
        this.deliverTerminated(env.target, { type: 'Terminated', actor: m['actor']!, reason: m['reason']! });
        return;
      default:
        this.deadLetters.record({ reason: DeadLetterReason.UnknownType, target: env.target, messageType: m.type, subject: msg.subject });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Death watch

  watch(target: RefLike, watcher?: RefLike): Promise<TerminatedEvent> {
    const targetAddress = addressOf(target);
    parseAddress(targetAddress);
    return new Promise<TerminatedEvent>((resolve) => {
      const handle = `${this.node}/_w${++this.seq}`;
      this.externalWatchers.set(handle, resolve);
      this.addWatch(targetAddress, handle);
      if (watcher !== undefined) this.addWatch(targetAddress, addressOf(watcher));
    });
  }

  /** Register `watcher` (an actor or a watch handle) for `target`'s termination. */
  private addWatch(target: string, watcher: string): void {
    const node = target.slice(0, target.indexOf('/'));
    if (node === this.node) {
      const cell = this.registry.get(target);
      if (cell) (cell.watchers ??= new Set()).add(watcher);
      else this.sendTerminated(watcher, target, 'not-found');
      return;
    }
    this.sendSystem(node, { type: 'Watch', watcher, target });
    this.rememberRemoteWatch(node, watcher, target);
  }

  private unwatch(target: RefLike, watcher: Address): void {
    const targetAddress = addressOf(target);
    const { node } = parseAddress(targetAddress);
    if (node === this.node) this.registry.get(targetAddress)?.watchers?.delete(watcher);
    else {
      this.sendSystem(node, { type: 'Unwatch', watcher, target: targetAddress });
      this.forgetRemoteWatch(targetAddress, watcher);
    }
  }

  private sendSystem(node: string, message: { type: string } & Record<string, string>): void {
    try {
      this.transport.publish(systemSubject(this.cluster, node), this.codec.encode(
        { kind: EnvelopeKind.System, target: `${node}/${SYSTEM_PATH}`, sender: this.systemAddress, correlationId: '', replyTo: '' }, message,
      ));
    } catch (err) {
      this.deadLetters.record({ reason: reasonOf(err), target: `${node}/${SYSTEM_PATH}`, messageType: message.type, error: describe(err) });
    }
  }

  private sendTerminated(watcher: string, actor: string, reason: string): void {
    const slash = watcher.indexOf('/');
    const node = watcher.slice(0, slash);
    if (node === this.node) {
      this.deliverTerminated(watcher, { type: 'Terminated', actor, reason });
      return;
    }
    try {
      this.transport.publish(this.subjectOf(watcher), this.codec.encode(
        { kind: EnvelopeKind.System, target: watcher, sender: this.systemAddress, correlationId: '', replyTo: '' }, { type: 'Terminated', actor, reason },
      ));
    } catch (err) {
      this.deadLetters.record({ reason: reasonOf(err), target: watcher, messageType: 'Terminated', error: describe(err) });
    }
  }

  private deliverTerminated(watcher: string, event: TerminatedEvent): void {
    const external = this.externalWatchers.get(watcher);
    if (external) {
      this.externalWatchers.delete(watcher);
      external(event);
      return;
    }
    const cell = this.registry.get(watcher);
    if (cell) cell.enqueueSystem({ kind: 'event', event });
    else this.deadLetters.record({ reason: DeadLetterReason.NoActor, target: watcher, messageType: 'Terminated' });
  }

  private rememberRemoteWatch(node: string, watcher: string, target: string): void {
    let w = this.remoteWatches.get(node);
    if (!w) {
      w = { pairs: new Set(), missed: 0, timer: undefined };
      this.remoteWatches.set(node, w);
      this.scheduleHeartbeat(node, w);
    }
    w.pairs.add(`${watcher}|${target}`);
  }

  private forgetRemoteWatch(target: string, watcher: string): void {
    const node = target.slice(0, target.indexOf('/'));
    const w = this.remoteWatches.get(node);
    if (!w) return;
    w.pairs.delete(`${watcher}|${target}`);
    if (w.pairs.size === 0) {
      this.clock.clearTimeout(w.timer);
      this.remoteWatches.delete(node);
    }
  }

  private scheduleHeartbeat(node: string, w: RemoteNodeWatch): void {
    w.timer = this.clock.setTimeout(() => void this.heartbeat(node, w), this.opts.heartbeatIntervalMs);
  }

  private async heartbeat(node: string, w: RemoteNodeWatch): Promise<void> {
    if (this.remoteWatches.get(node) !== w || this.shutdownPromise) return;
    let unreachable = false;
    try {
      await this.transport.request(systemSubject(this.cluster, node), this.codec.encode(
        { kind: EnvelopeKind.System, target: `${node}/${SYSTEM_PATH}`, sender: this.systemAddress, correlationId: '', replyTo: '' },
        { type: 'Heartbeat', node: this.node },
      ), { timeoutMs: this.opts.heartbeatTimeoutMs });
      w.missed = 0;
    } catch (err) {
      if (err instanceof NoRespondersError) unreachable = true;
      else if (++w.missed >= this.opts.missedHeartbeats) unreachable = true;
      this.logger.debug({ err, node, missed: w.missed }, 'heartbeat failed');
    }
    if (this.remoteWatches.get(node) !== w || this.shutdownPromise) return;
    if (!unreachable) {
      this.scheduleHeartbeat(node, w);
      return;
    }
    this.remoteWatches.delete(node);
    this.logger.warn({ node }, `node ${node} is unreachable; its watched actors count as terminated`);
    for (const pair of w.pairs) {
      const [watcher, target] = pair.split('|') as [string, string];
      this.deliverTerminated(watcher, { type: 'Terminated', actor: target, reason: 'node-unreachable' });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Misc

  private emit(ev: InspectionPayload): void {
    const sink = this.inspect;
    if (!sink) return;
    try {
      sink({ v: 1, at: this.clock.now(), node: this.node, ...ev } as InspectionEvent);
    } catch (err) {
      this.logger.warn({ err }, 'inspection sink threw');
    }
  }

  ready(): Promise<void> {
    return this.transport.flush();
  }

  snapshotOf(ref: RefLike): { value: unknown; context: unknown; status: string } | undefined {
    const address = addressOf(ref);
    const cell = this.registry.get(address);
    const hosted = cell ? undefined : this.hosted.get(address);
    if (!cell && !hosted) return undefined;
    const s = (cell ? cell.snapshot() : hosted!.actor.getSnapshot()) as { value: unknown; context: unknown; status: string };
    return { value: s.value, context: s.context, status: s.status };
  }

  actors(): Address[] {
    return [...this.registry.keys(), ...this.hosted.keys()] as Address[];
  }

  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.doShutdown();
    return this.shutdownPromise;
  }

  private async doShutdown(): Promise<void> {
    for (const cell of [...(this.root.children?.values() ?? [])].reverse()) this.stopCell(cell, 'stopped');
    this.root.halt();
    for (const h of [...this.hosted.values()]) h.release();
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new SystemShutdownError(this.node));
    for (const w of this.remoteWatches.values()) this.clock.clearTimeout(w.timer);
    this.remoteWatches.clear();
    this.subscription.unsubscribe();
    this.offTransportEvents();
    try {
      await this.transport.close();
    } catch (err) {
      this.logger.warn({ err }, 'error while closing the transport');
    }
    this.logger.debug('actor system shut down');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

function reasonOf(err: unknown): DeadLetterReason {
  if (err instanceof InvalidNameError) return DeadLetterReason.InvalidAddress;
  if (err instanceof PayloadTooLargeError) return DeadLetterReason.Oversize;
  if (err instanceof UnknownMessageTypeError) return DeadLetterReason.UnknownType;
  if (err instanceof DecodeError) return DeadLetterReason.Decode;
  if (err instanceof TransportClosedError) return DeadLetterReason.Transport;
  if (err instanceof TypeError) return DeadLetterReason.Encode;
  return DeadLetterReason.Transport;
}

function errorReplyOf(error: TroupeError): MessageObject {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(error.fields())) if (v !== undefined) fields[k] = String(v);
  return { type: 'ErrorReply', code: error.code, message: error.message, retryable: error.retryable, fields } as MessageObject;
}

function errorFromReply(reply: MessageObject, address: string): TroupeError {
  const r = reply as unknown as { code: string; message: string; retryable: boolean; fields: Record<string, string> };
  switch (r.code) {
    case ErrorCode.NoResponders: return new NoRespondersError(address, r.fields['reason'] ?? 'no actor at that address');
    case ErrorCode.MailboxFull: return new MailboxFullError(address, Number(r.fields['capacity'] ?? 0));
    case ErrorCode.UnknownMessageType: return new UnknownMessageTypeError(r.fields['messageType'] ?? '?', address);
    case ErrorCode.ActorStopped: return new ActorStoppedError(address);
    case ErrorCode.ActorFailed: return new ActorFailedError(address, r.fields['reason'] ?? r.message);
    case ErrorCode.PayloadTooLarge: return new PayloadTooLargeError(Number(r.fields['sizeBytes'] ?? 0), Number(r.fields['maxBytes'] ?? 0), address);
    case ErrorCode.Decode: return new DecodeError(r.fields['subject'] ?? address, r.fields['reason'] ?? r.message);
    case ErrorCode.NotLeader: return new NotLeaderError(r.fields['node'] ?? address, r.fields['leader'] || undefined);
    default: return new RemoteError(r.code, r.message, r.retryable);
  }
}

/**
 * Create an actor system: one node of a cluster.
 * @example
 * await using system = createSystem({ cluster: 'demo', node: 'n1' });          // embedded bus
 * await using remote = createSystem({ node: 'n2', transport: await connectNats({ servers: url }) });
 */
export function createSystem(options: SystemOptions = {}): ActorSystem {
  return new SystemImpl(options);
}
