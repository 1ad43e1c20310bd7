/**
 * Actor definitions, the effects machines use to reach the world, and the ActorCell that hosts one
 * XState actor inside a system.
 *
 * Machines stay pure: they talk to other actors only by *emitting* effects (`tell`, `reply`,
 * `watch`, `unwatch`) and by invoking the named `troupe.ask` actor. The hosting cell carries the
 * effects out; a test can run the same machine with plain `createActor` and observe the effects with
 * `actor.on('troupe.tell', …)`.
 */
import { createActor, emit, fromPromise, type ActionFunction, type AnyActor, type AnyStateMachine } from 'xstate';
import type { MessageObject, MessageSet, MessagesOf } from './codec/messages.ts';
import type { Clock } from './clock.ts';
import type { InspectionEvent, InspectionSink } from './inspector/events.ts';
import type { Logger } from './log.ts';
import { Mailbox } from './mailbox.ts';
import type { Address, Origin, RefLike } from './ref.ts';
import { originOf } from './ref.ts';
import type { Strategy, SupervisionOptions, SupervisionPolicy } from './supervision.ts';
import { supervisorMachine, type DirectiveEffect, type SupervisorEvent } from './supervisor.ts';
import { validateName } from './transport/subjects.ts';

// ---------------------------------------------------------------------------------------------
// Definitions

/** An actor type: a machine plus the protobuf messages it accepts. Create with {@link defineActor}. */
export interface ActorDefinition<M extends MessageObject = MessageObject> {
  readonly kind: 'actor';
  /** Actor type name (logs, inspector). */
  readonly type: string;
  readonly machine: AnyStateMachine;
  readonly messages: readonly MessageSet[];
  /** Short names of accepted messages (plus `Terminated`, always accepted). */
  readonly accepts: ReadonlySet<string>;
  /** Phantom: the message union, for typed refs. */
  readonly __messages?: M;
}

/** One child of a supervisor. */
export interface ChildSpec {
  readonly def: AnyDefinition;
  readonly name: string;
  readonly input?: unknown;
  readonly supervision?: SupervisionOptions;
}

/** A supervisor type: a strategy and its children, started in order. Create with {@link defineSupervisor}. */
export interface SupervisorDefinition {
  readonly kind: 'supervisor';
  readonly type: string;
  readonly strategy: Strategy;
  readonly children: readonly ChildSpec[];
  readonly machine: typeof supervisorMachine;
  readonly messages: readonly MessageSet[];
  readonly accepts: ReadonlySet<string>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDefinition = ActorDefinition<any> | SupervisorDefinition;

/** The message union a definition accepts. */
export type MessagesOfDefinition<D> = D extends ActorDefinition<infer M> ? M : never;

/** The system event every actor may receive when an actor it watches stops. */
export interface TerminatedEvent {
  readonly type: 'Terminated';
  /** Address of the actor that stopped. */
  readonly actor: string;
  /** `stopped`, `failed`, `done`, `node-unreachable` or `not-found`. */
  readonly reason: string;
}

/**
 * Define an actor type.
 * @example
 * import { messages, type Message } from './pingpong.pb.ts';
 * const Ponger = defineActor({ type: 'ponger', machine: pongerMachine, messages });
 * const ref = system.spawn(Ponger, { name: 'ponger' }); // ActorRef<Message>
 */
export function defineActor<S extends MessageSet | readonly MessageSet[]>(spec: {
  type: string;
  machine: AnyStateMachine;
  messages: S;
}): ActorDefinition<S extends readonly MessageSet[] ? MessagesOf<S[number]> : MessagesOf<S>> {
  validateName(spec.type, 'actor type');
  const sets: readonly MessageSet[] = Array.isArray(spec.messages) ? (spec.messages as readonly MessageSet[]) : [spec.messages as MessageSet];
  const accepts = new Set<string>(['Terminated']);
  for (const set of sets) for (const name of set.types.keys()) accepts.add(name);
  return { kind: 'actor', type: spec.type, machine: spec.machine, messages: sets, accepts };
}

/**
 * Define a supervisor and its children (a supervision tree; children may be supervisors).
 * @example
 * const Workers = defineSupervisor({
 *   type: 'workers', strategy: 'one-for-all',
 *   children: [{ def: Fetcher, name: 'fetcher', supervision: { maxRestarts: 3, withinMs: 1_000 } },
 *              { def: Parser, name: 'parser' }],
 * });
 */
export function defineSupervisor(spec: { type: string; strategy: Strategy; children: readonly ChildSpec[] }): SupervisorDefinition {
  validateName(spec.type, 'supervisor type');
  const names = new Set<string>();
  for (const c of spec.children) {
    validateName(c.name, 'child name');
    if (names.has(c.name)) throw new RangeError(`supervisor ${spec.type}: child name '${c.name}' is used twice`);
    names.add(c.name);
  }
  return {
    kind: 'supervisor', type: spec.type, strategy: spec.strategy, children: spec.children,
    machine: supervisorMachine, messages: [], accepts: new Set(['Terminated']),
  };
}

// ---------------------------------------------------------------------------------------------
// Effects: how a machine acts on other actors

/** Effects a hosted machine emits; the host carries them out. */
export type Effect =
  | { readonly type: 'troupe.tell'; readonly to: RefLike; readonly message: MessageObject }
  | { readonly type: 'troupe.reply'; readonly origin: Origin | undefined; readonly message: MessageObject }
  | { readonly type: 'troupe.watch'; readonly target: RefLike }
  | { readonly type: 'troupe.unwatch'; readonly target: RefLike }
  | DirectiveEffect;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ExprArgs = { context: any; event: any };
/** A value, or a function of the machine's context and event. */
export type Expr<T> = T | ((args: ExprArgs) => T);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TroupeAction = ActionFunction<any, any, any, any, any, any, any, any, any>;

const evaluate = <T>(expr: Expr<T>, args: ExprArgs): T =>
  typeof expr === 'function' ? (expr as (a: ExprArgs) => T)(args) : expr;

/** Tell `to` a message. @example on: { Ping: { actions: tell(({ event }) => event.origin.sender, { type: 'Pong' }) } } */
export function tell(to: Expr<RefLike>, message: Expr<MessageObject>): TroupeAction {
  return emit(({ context, event }: ExprArgs) => ({
    type: 'troupe.tell' as const, to: evaluate(to, { context, event }), message: evaluate(message, { context, event }),
  })) as unknown as TroupeAction;
}

/** Reply to the ask being handled (a no-op, counted as a dead letter, when the event was not an ask). */
export function reply(message: Expr<MessageObject>): TroupeAction {
  return emit(({ context, event }: ExprArgs) => ({
    type: 'troupe.reply' as const, origin: originOf(event), message: evaluate(message, { context, event }),
  })) as unknown as TroupeAction;
}

/** Reply later, to an origin kept from an earlier event (`originOf(event)`). */
export function replyTo(origin: Expr<Origin | undefined>, message: Expr<MessageObject>): TroupeAction {
  return emit(({ context, event }: ExprArgs) => ({
    type: 'troupe.reply' as const, origin: evaluate(origin, { context, event }), message: evaluate(message, { context, event }),
  })) as unknown as TroupeAction;
}

/** Death watch: this actor receives a `Terminated` event when `target` stops. */
export function watch(target: Expr<RefLike>): TroupeAction {
  return emit(({ context, event }: ExprArgs) => ({ type: 'troupe.watch' as const, target: evaluate(target, { context, event }) })) as unknown as TroupeAction;
}

export function unwatch(target: Expr<RefLike>): TroupeAction {
  return emit(({ context, event }: ExprArgs) => ({ type: 'troupe.unwatch' as const, target: evaluate(target, { context, event }) })) as unknown as TroupeAction;
}

/** Input of the invoked `troupe.ask` actor. */
export interface AskInput {
  readonly to: RefLike;
  readonly message: MessageObject;
  /** @default the system's askTimeoutMs */
  readonly timeoutMs?: number;
}

/**
 * Placeholder for the `troupe.ask` actor, so machines type-check and can be tested alone; the host
 * system provides the real one. Declare it in `setup({ actors: { ...hostActors } })` and invoke
 * `{ src: 'troupe.ask', input: … }`; the reply is the invoke's `output`.
 */
export const askLogic = fromPromise<MessageObject, AskInput>(async () => {
  throw new Error("'troupe.ask' runs only inside a troupe system (or provide your own 'troupe.ask' actor in a test)");
});

/** Spread into `setup({ actors })` of a machine that asks other actors. */
export const hostActors = { 'troupe.ask': askLogic } as const;

// ---------------------------------------------------------------------------------------------
// The cell

/** A user message waiting in a mailbox (the event as the machine will see it). */
export type UserItem = MessageObject;

/** A system message: an event taken ahead of every user message. */
export type SystemItem = { readonly kind: 'event'; readonly event: TerminatedEvent | SupervisorEvent };

export type CellStatus = 'running' | 'suspended' | 'stopped';

/** What a cell needs from its system. Implemented by system.ts. */
export interface CellHost {
  readonly node: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly inspect: InspectionSink | undefined;
  machineFor(def: AnyDefinition): AnyStateMachine;
  onEffect(cell: ActorCell, effect: Effect): void;
  /** `event` is the message being handled when the failure happened, if any. */
  onFailure(cell: ActorCell, error: unknown, event: unknown): void;
  onDone(cell: ActorCell): void;
  /** Put the cell on the system's run queue (it has mail and is running). */
  schedule(cell: ActorCell): void;
}

/**
 * Hosts one XState actor: owns its mailbox, runs it turn by turn when the system's dispatcher
 * says so, reports failures to its parent. Kept small: a system may host 100k of them.
 */
export class ActorCell {
  status: CellStatus = 'running';
  /** True while the cell is on the system's run queue. */
  scheduled = false;
  readonly mailbox: Mailbox<SystemItem, UserItem>;
  /** Children by name, in start order (supervisors only). */
  children: Map<string, ActorCell> | undefined;
  /** Addresses of actors (local or remote) that watch this one. */
  watchers: Set<string> | undefined;
  /** Addresses this actor watches (released when it stops). */
  watching: Set<string> | undefined;
  actor!: AnyActor;
  /** Restarts of this cell so far (for logs and tests). */
  restarts = 0;
  /** Handler for the machine's own (non-`troupe.`) emitted effects, given by the spawner. */
  onCustomEffect: ((effect: { type: string }) => void) | undefined;
  private lastGood: unknown;
  private current: unknown;
  private log: Logger | undefined;
  private restartTimer: unknown;
  private readonly onEmitted: (ev: { type: string }) => void;

  constructor(
    readonly host: CellHost,
    readonly address: Address,
    readonly name: string,
    readonly def: AnyDefinition,
    readonly parent: ActorCell | undefined,
    readonly input: unknown,
    readonly policy: SupervisionPolicy,
    mailboxCapacity: number,
  ) {
    this.mailbox = new Mailbox(mailboxCapacity);
    this.onEmitted = this.emitted.bind(this);
  }

  /** The child logger `{ node, actor }`, created on first use. */
  get logger(): Logger {
    this.log ??= this.host.logger.child({ node: this.host.node, actor: this.address });
    return this.log;
  }

  /** Create and start the XState actor (fresh, or from a persisted snapshot). */
  start(snapshot?: unknown): void {
    const machine = this.host.machineFor(this.def);
    const actor = createActor(machine, {
      input: this.input,
      clock: this.host.clock,
      id: this.address,
      ...(snapshot !== undefined ? { snapshot: snapshot as never } : {}),
    });
    actor.on('*', this.onEmitted);
    // `this` is the observer: its error() and complete() methods (no next(): snapshots are pulled)
    actor.subscribe(this as unknown as { error(err: unknown): void; complete(): void });
    // inspection observes snapshots (one call per update) rather than XState's `inspect`, which
    // builds an object per microstep and per action as well
    if (this.host.inspect) actor.subscribe({ next: (s: unknown) => this.inspectSnapshot(s), error: () => undefined });
    this.actor = actor;
    this.status = 'running';
    actor.start();
    if (this.actor === actor && this.status === 'running' && !this.scheduled && this.mailbox.size > 0) this.host.schedule(this);
  }

  private emitted(ev: { type: string }): void {
    if (ev.type.startsWith('troupe.')) this.host.onEffect(this, ev as Effect);
    else this.onCustomEffect?.(ev);
  }

  /** Observer: the hosted actor errored (a thrown action, an error snapshot). */
  error(err: unknown): void {
    if (this.status !== 'running') return;
    this.status = 'suspended';
    this.host.onFailure(this, err, this.current);
  }

  /** Observer: the hosted actor reached a final state. */
  complete(): void {
    if (this.status === 'running') this.host.onDone(this);
  }

  private inspectSnapshot(snapshot: unknown): void {
    const s = snapshot as { value?: unknown; context?: unknown; status?: string };
    this.inspectSafely({
      v: 1, at: this.host.clock.now(), node: this.host.node, actor: this.address,
      kind: 'actor.snapshot', value: s.value, context: s.context, status: s.status ?? 'active',
    });
  }

  /** A sink must not throw; if one does, the actor carries on (the system logs it). */
  private inspectSafely(ev: InspectionEvent): void {
    try {
      this.host.inspect!(ev);
    } catch (err) {
      this.logger.warn({ err }, 'inspection sink threw');
    }
  }

  /** Queue a user message; false when the mailbox is full or the cell is stopped. */
  enqueueUser(message: UserItem): boolean {
    if (this.status === 'stopped' || !this.mailbox.pushUser(message)) return false;
    if (!this.scheduled && this.status === 'running') this.host.schedule(this);
    return true;
  }

  enqueueSystem(item: SystemItem): void {
    if (this.status === 'stopped') return;
    this.mailbox.pushSystem(item);
    if (!this.scheduled && this.status === 'running') this.host.schedule(this);
  }

  /**
   * Process up to `budget` messages, system messages first. Returns true when mail is left and
   * the cell is still running (the dispatcher queues it again). A suspended cell (failed, awaiting
   * its supervisor or a backoff) keeps its mail for later.
   */
  runTurn(budget: number): boolean {
    for (let n = 0; n < budget; n++) {
      if (this.status !== 'running') return false;
      const sys = this.mailbox.shiftSystem();
      if (sys !== undefined) {
        this.send(sys.event);
        continue;
      }
      const msg = this.mailbox.shiftUser();
      if (msg === undefined) return false;
      this.send(msg);
    }
    return this.status === 'running' && this.mailbox.size > 0;
  }

  private send(event: { type: string }): void {
    const actor = this.actor;
    if (this.host.inspect) this.inspectSafely({ v: 1, at: this.host.clock.now(), node: this.host.node, actor: this.address, kind: 'actor.event', event });
    this.lastGood = actor.getSnapshot();
    this.current = event;
    actor.send(event);
    this.current = undefined;
  }

  /** Replace the actor with a fresh one, after `delayMs` (the mailbox is kept). */
  restart(delayMs: number, afterStart?: () => void): void {
    if (this.status === 'stopped') return;
    this.status = 'suspended';
    this.stopActorQuietly();
    const go = (): void => {
      this.restartTimer = undefined;
      if (this.status === 'stopped') return;
      this.restarts++;
      this.start();
      afterStart?.();
    };
    if (delayMs > 0) this.restartTimer = this.host.clock.setTimeout(go, delayMs);
    else go();
  }

  /** Continue from the last good state; the failing message is dropped. */
  resume(): void {
    if (this.status === 'stopped') return;
    const machine = this.host.machineFor(this.def);
    const good = this.lastGood as Parameters<typeof machine.getPersistedSnapshot>[0] | undefined;
    this.stopActorQuietly();
    const persisted = good && (good as { status?: string }).status === 'active' ? machine.getPersistedSnapshot(good) : undefined;
    this.start(persisted);
  }

  /** Stop the XState actor and mark the cell stopped; returns what was left in the mailbox. */
  halt(): { system: SystemItem[]; user: UserItem[] } {
    this.status = 'stopped';
    if (this.restartTimer !== undefined) {
      this.host.clock.clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    this.stopActorQuietly();
    return this.mailbox.drain();
  }

  private stopActorQuietly(): void {
    const actor = this.actor;
    if (!actor) return;
    try {
      actor.stop();
    } catch (err) {
      this.logger.warn({ err }, 'error while stopping actor');
    }
  }

  /** The machine's current snapshot (tests, inspector). */
  snapshot(): ReturnType<AnyActor['getSnapshot']> {
    return this.actor.getSnapshot();
  }
}
