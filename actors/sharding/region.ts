/**
 * Shard regions: one per node per entity type. A region places keys on shards and shards on the
 * members that are up (rendezvous hashing), starts entities on demand, passivates idle ones, and
 * moves shards between nodes with a hand-off when the membership view changes.
 *
 * Delivery contract (see README.md): for one entity, the messages one region accepted are
 * delivered in the order that region accepted them, each at most once — across passivation and
 * hand-offs. In a graceful change (join, leave) none is lost. When a node crashes, the messages it
 * held and the entity state since the last `saveState` are lost; no delivered message is delivered
 * again and none out of order.
 */
import { createActor, emit, setup, type Actor } from 'xstate';
import type { ActorDefinition, TroupeAction } from '../../framework/actor.ts';
import type { MessageObject, MessageSet } from '../../framework/codec/messages.ts';
import type { ActorRef, Origin } from '../../framework/ref.ts';
import { NoRespondersError, UnknownMessageTypeError } from '../../framework/errors.ts';
import { defineActor, type ActorSystem } from '../../framework/index.ts';
import type { SupervisionOptions } from '../../framework/supervision.ts';
import type { MembershipView, MemberStatus } from '../../framework/membership/membership.ts';
import { ownerTable, shardOf } from './placement.ts';
import { ShardState, shardMachine, type ShardEffect, type ShardStateName } from './machine.ts';
import {
  messages as shardingMessages, type Claim, type ClaimReply, type HandOff, type ShardBatch, type ShardEnvelope,
} from './sharding.pb.ts';

/** @default 1000 — ten times more shards than nodes is the usual advice; placement is per shard. */
export const DEFAULT_NUMBER_OF_SHARDS = 1_000;
/** @default 120 000 (2 minutes), as Akka. */
export const DEFAULT_PASSIVATE_IDLE_MS = 120_000;
/** @default 500 */
export const DEFAULT_CLAIM_RETRY_MS = 500;
/** @default 2 000 */
export const DEFAULT_GAP_TIMEOUT_MS = 2_000;
/** @default 10 000 */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Largest batch of forwarded envelopes, in payload bytes (the system's payload limit is 1 MiB by default). */
const MAX_BATCH_BYTES = 256 * 1024;
/**
 * Forwarding hops after which a message waits `claimRetryMs` where it is before it is routed again:
 * regions whose views disagree pass it back and forth until one of them catches up.
 */
const MAX_HOPS = 8;

/** What a region spawns an entity with: its identity and its last saved state, if any. */
export interface EntityInput {
  readonly entityType: string;
  readonly key: string;
  /** The bytes the entity last saved with `saveState`, carried across passivation and hand-off. */
  readonly state?: Uint8Array;
}

/** Effect an entity emits to save its state (use {@link saveState}). */
export interface SaveStateEffect {
  readonly type: 'sharding.saveState';
  readonly state: Uint8Array;
}

/**
 * An action for entity machines: remember `state` as this entity's snapshot. The region keeps the
 * latest one and gives it back as `input.state` when the entity starts again — after passivation,
 * or on the new owner after a hand-off.
 * @example on: { Passivate: { target: '.done', actions: saveState(({ context }) => encode(context)) } }
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function saveState(state: (args: { context: any; event: any }) => Uint8Array): TroupeAction {
  return emit((args: { context: unknown; event: unknown }) => ({ type: 'sharding.saveState' as const, state: state(args) })) as unknown as TroupeAction;
}

/** Options of {@link startShardRegion}. */
export interface ShardRegionOptions {
  /** Entity type name; names the region actor (`sharding-<entityType>`) — a valid subject token. */
  readonly entityType: string;
  /**
   * The entity definition. It must accept `Passivate` (include {@link entityMessages} in its
   * messages) and reach a final state on it; it receives {@link EntityInput} as input.
   */
  readonly entity: ActorDefinition;
  /** Fixed number of shards; every region of the entity type must use the same. @default 1000 */
  readonly numberOfShards?: number;
  /** Passivate an entity that received nothing for this long; 0 never. @default 120 000 */
  readonly passivateIdleMs?: number;
  /**
   * Timeout of a shard claim's asks; a blocked claim is retried after it, an undecided one after
   * twice it; a message bounced between disagreeing views waits this long. @default 500
   */
  readonly claimRetryMs?: number;
  /**
   * Hold a message that arrived ahead of a lost predecessor (a crashed node held it) this long,
   * then deliver it anyway. @default 2 000
   */
  readonly gapTimeoutMs?: number;
  /** Force-stop an entity that has not stopped this long after `Passivate`. @default 10 000 */
  readonly stopTimeoutMs?: number;
  /** Only members with this role host shards. @default every member */
  readonly role?: string;
  /** Supervision of each entity. @default the system's */
  readonly supervision?: SupervisionOptions;
}

/** What a region reports (for examples, tests, tooling). */
export type RegionEvent =
  | { readonly type: 'shard.activated'; readonly shard: number; readonly generation: number; readonly handedOff: boolean }
  | { readonly type: 'handoff.started'; readonly shard: number; readonly to: string | undefined }
  | { readonly type: 'handoff.sent'; readonly shard: number; readonly to: string; readonly entities: number; readonly buffered: number }
  | { readonly type: 'handoff.received'; readonly shard: number; readonly from: string; readonly entities: number; readonly buffered: number }
  | { readonly type: 'entity.started'; readonly shard: number; readonly key: string }
  | { readonly type: 'entity.stopped'; readonly shard: number; readonly key: string; readonly reason: string }
  | { readonly type: 'message.dropped'; readonly shard: number; readonly key: string; readonly reason: 'duplicate' | 'undecodable' }
  /** Forwarded too often (membership views disagree): it waits here and is routed again later. */
  | { readonly type: 'message.bounced'; readonly shard: number; readonly key: string }
  | { readonly type: 'gap.skipped'; readonly shard: number; readonly fromRegion: string; readonly missing: number };

/** Counters of one region. */
export interface RegionStats {
  readonly hostedShards: number;
  readonly entities: number;
  readonly handOffsSent: number;
  readonly handOffsReceived: number;
  readonly forwarded: number;
  /** Messages waiting for their shard to become active (here or after forwarding). */
  readonly buffered: number;
  /** Messages held behind a missing predecessor (released in order, or after `gapTimeoutMs`). */
  readonly held: number;
  readonly duplicatesDropped: number;
  /** Forwarded messages whose payload did not decode as the entity's message type. */
  readonly undecodable: number;
}

/** A handle to one entity, wherever it lives. */
export interface EntityRef<M extends MessageObject = MessageObject> {
  readonly entityType: string;
  readonly key: string;
  /** Tell, through the sharding (fire-and-forget). */
  send(message: M): void;
}

/** A running shard region. */
export interface ShardRegion extends AsyncDisposable {
  readonly entityType: string;
  readonly node: string;
  readonly numberOfShards: number;
  /** A ref to the entity `key`. @example region.ref('cart-42').send({ type: 'AddItem', sku: 'x' }) */
  ref<M extends MessageObject = MessageObject>(key: string): EntityRef<M>;
  /** Tell entity `key` a message; `sender` becomes the event's origin on the entity. */
  tell(key: string, message: MessageObject, sender?: string): void;
  shardOf(key: string): number;
  /** The node owning `shard` by this region's view (undefined when no member can host). */
  ownerOf(shard: number): string | undefined;
  /** The shard chart's state on this node (`remote` for shards this node never touched). */
  stateOf(shard: number): ShardStateName;
  /** Shards whose entities run here. */
  hostedShards(): number[];
  /** Keys of the entities running here. */
  entityKeys(): string[];
  /** Address of the entity `key` when it runs on this node (tooling, benchmarks), else undefined. */
  entityAddress(key: string): string | undefined;
  stats(): RegionStats;
  /** Listen to region events; returns the unsubscribe function. */
  on(listener: (e: RegionEvent) => void): () => void;
  /**
   * Stop the region and its entities here, without handing off (leave the cluster first to hand
   * off). Tells after this are ignored.
   */
  stop(): Promise<void>;
}

/** The message set entities add to theirs so they accept `Passivate`. */
export const entityMessages: MessageSet = { types: new Map([['Passivate', shardingMessages.types.get('Passivate')!]]) };

/** A message held by a region, before or after it crossed the network. */
interface Item {
  readonly key: string;
  readonly fromRegion: string;
  readonly seq: number;
  readonly sender: string;
  readonly hops: number;
  readonly message?: MessageObject;
  readonly messageType: string;
  readonly payload?: Uint8Array;
}

interface EntityEntry {
  ref: ActorRef | undefined;
  lastActiveMs: number;
  state: Uint8Array | undefined;
  stopping: boolean;
  stopTimer: unknown;
  /** Messages that arrived while the entity was stopping (passivation); delivered to its successor. */
  pending: Item[];
}

interface ShardHost {
  readonly shard: number;
  readonly actor: Actor<typeof shardMachine>;
  /** Known hand-off generation of the shard (highest seen). */
  generation: number;
  /** Messages waiting for the shard to become active here (claiming, waiting, handingOff). */
  buffer: Item[];
  /** Highest sequence number delivered, per other sending region. */
  delivered: Map<string, number>;
  /** The same for this region's own messages (kept apart: it is read on every local tell). */
  selfDelivered: number;
  /** Messages ahead of a gap, per sending region. */
  held: Map<string, Map<number, Item>>;
  gapTimer: unknown;
  entities: Map<string, EntityEntry>;
  incoming: HandOff[];
  claim: { id: number; awaiting: Set<string>; blocked: boolean } | undefined;
  /** Removes the chart from the system's hosted actors. */
  unhost: () => void;
  /** Last hand-off sent from here. */
  movedTo: { node: string; generation: number; atMs: number } | undefined;
}

/** A protobuf message type, as message sets hold them. */
type ProtoType = MessageSet['types'] extends ReadonlyMap<string, infer T> ? T : never;

/** A hand-off sent is reported to claimers for this many `claimRetryMs`. */
const MOVED_REPORT_FACTOR = 4;

const CLAIM_NONE = 0;
const CLAIM_HOSTING = 1;
const CLAIM_CLAIMING = 2;
const CLAIM_MOVED = 3;

/** Members that may hold a shard (they own it, or still hand it off): everyone not joining, down or gone. */
const MAY_HOLD: ReadonlySet<MemberStatus> = new Set(['up', 'suspect', 'left']);
/** Members that own shards. */
const OWNS: ReadonlySet<MemberStatus> = new Set(['up', 'suspect']);

const regionMachine = setup({}).createMachine({
  id: 'shard-region',
  on: { '*': { actions: emit(({ event }) => ({ type: 'sharding.inbound', event })) } },
});

/** The region actor: its messages go to the region's host code (this file). */
const RegionActor = defineActor({ type: 'shard-region', machine: regionMachine, messages: shardingMessages });

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

function nonNegativeMs(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a non-negative number of ms, got ${String(v)}`);
  return v;
}

const KEY_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * An actor name for an entity key: the key itself when it is a safe token, else its hex. The type's
 * length comes first, so no (type, key) pair can take another's name.
 */
function entityName(entityType: string, key: string): string {
  const prefix = `e${entityType.length}-${entityType}`;
  if (KEY_TOKEN.test(key)) return `${prefix}-k-${key}`;
  let hex = '';
  for (const b of new TextEncoder().encode(key)) hex += b.toString(16).padStart(2, '0');
  return `${prefix}-x-${hex}`;
}

class Region implements ShardRegion {
  readonly entityType: string;
  readonly node: string;
  readonly numberOfShards: number;
  private readonly name: string;
  private readonly regionId: string;
  private readonly passivateIdleMs: number;
  private readonly claimRetryMs: number;
  private readonly gapTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly role: string | undefined;
  private readonly supervision: SupervisionOptions | undefined;
  private readonly entity: ActorDefinition;
  private readonly types = new Map<string, ProtoType>();
  private readonly shards = new Map<number, ShardHost>();
  /** Next outgoing sequence number per shard (messages this region accepted). */
  private readonly outSeq: Uint32Array;
  private owners: readonly (string | undefined)[] = [];
  private mayHold = new Set<string>();
  /** Every other member this view lists, whatever its status: all are asked when claiming. */
  private known = new Set<string>();
  /** Messages for shards no member can host now. */
  private parked: { shard: number; item: Item }[] = [];
  /** Messages forwarded back and forth too often; routed again after `claimRetryMs`. */
  private bounced: { shard: number; item: Item }[] = [];
  private bounceTimer: unknown;
  private readonly listeners = new Set<(e: RegionEvent) => void>();
  private readonly unsubscribe: () => void;
  private readonly self: ActorRef;
  /** Envelopes to forward, per node, sent together at the end of this turn (order kept). */
  private readonly outbox = new Map<string, { envelopes: Omit<ShardEnvelope, 'type'>[]; bytes: number }>();
  private flushScheduled = false;
  private readonly flush = (): void => this.flushOutbox();
  private claimSeq = 0;
  private passivationTimer: unknown;
  private stopped = false;
  private counters = { handOffsSent: 0, handOffsReceived: 0, forwarded: 0, duplicatesDropped: 0, undecodable: 0 };

  constructor(private readonly system: ActorSystem, private readonly membership: MembershipView, options: ShardRegionOptions) {
    if (membership.self !== system.node) throw new RangeError(`membership.self ('${membership.self}') must be the system's node ('${system.node}')`);
    if (!options.entity || !options.entity.accepts.has('Passivate')) {
      throw new RangeError('entity must accept Passivate: add entityMessages to its messages and stop on it');
    }
    this.entityType = options.entityType;
    this.node = system.node;
    this.name = `sharding-${options.entityType}`;
    this.numberOfShards = positiveInt('numberOfShards', options.numberOfShards, DEFAULT_NUMBER_OF_SHARDS);
    this.passivateIdleMs = nonNegativeMs('passivateIdleMs', options.passivateIdleMs, DEFAULT_PASSIVATE_IDLE_MS);
    this.claimRetryMs = nonNegativeMs('claimRetryMs', options.claimRetryMs, DEFAULT_CLAIM_RETRY_MS) || DEFAULT_CLAIM_RETRY_MS;
    this.gapTimeoutMs = nonNegativeMs('gapTimeoutMs', options.gapTimeoutMs, DEFAULT_GAP_TIMEOUT_MS);
    this.stopTimeoutMs = nonNegativeMs('stopTimeoutMs', options.stopTimeoutMs, DEFAULT_STOP_TIMEOUT_MS);
    this.role = options.role;
    this.supervision = options.supervision;
    this.entity = options.entity;
    for (const set of options.entity.messages) for (const [n, t] of set.types) this.types.set(n, t);
    this.outSeq = new Uint32Array(this.numberOfShards);
    // A restarted node starts a new region incarnation: its sequence numbers start again at 1.
    this.regionId = `${this.node}@${system.clock.now()}`;
    this.self = system.spawn(RegionActor, {
      name: this.name,
      onEffect: (effect) => this.onInbound((effect as unknown as { event: MessageObject }).event),
    });
    this.recompute();
    this.unsubscribe = membership.subscribe(() => this.onViewChange());
  }

  // -------------------------------------------------------------------------------------------
  // Public surface

  ref<M extends MessageObject = MessageObject>(key: string): EntityRef<M> {
    return { entityType: this.entityType, key, send: (message: M) => this.tell(key, message) };
  }

  shardOf(key: string): number {
    return shardOf(key, this.numberOfShards);
  }

  ownerOf(shard: number): string | undefined {
    return this.owners[shard];
  }

  stateOf(shard: number): ShardStateName {
    const h = this.shards.get(shard);
    return h ? (h.actor.getSnapshot().value as ShardStateName) : ShardState.Remote;
  }

  hostedShards(): number[] {
    return [...this.shards.values()].filter((h) => this.isActive(h)).map((h) => h.shard).sort((a, b) => a - b);
  }

  entityKeys(): string[] {
    const keys: string[] = [];
    for (const h of this.shards.values()) for (const [k, e] of h.entities) if (e.ref) keys.push(k);
    return keys;
  }

  entityAddress(key: string): string | undefined {
    return this.shards.get(shardOf(key, this.numberOfShards))?.entities.get(key)?.ref?.address;
  }

  stats(): RegionStats {
    let entities = 0;
    let buffered = 0;
    let held = 0;
    for (const h of this.shards.values()) {
      buffered += h.buffer.length;
      for (const m of h.held.values()) held += m.size;
      for (const e of h.entities.values()) if (e.ref) entities++;
    }
    return { hostedShards: this.hostedShards().length, entities, buffered: buffered + this.parked.length + this.bounced.length, held, ...this.counters };
  }

  on(listener: (e: RegionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  tell(key: string, message: MessageObject, sender?: string): void {
    if (this.stopped) return;
    if (!this.types.has(message.type)) throw new UnknownMessageTypeError(message.type, `${this.node}/${this.name}`);
    const shard = shardOf(key, this.numberOfShards);
    const h = this.shards.get(shard);
    // Fast path: the shard is active here and nothing this region sent it earlier is still on its way.
    if (h !== undefined && h.actor.getSnapshot().value === ShardState.Active) {
      const next = this.outSeq[shard]! + 1;
      if (h.selfDelivered === next - 1) {
        this.outSeq[shard] = next;
        h.selfDelivered = next;
        this.deliverToEntity(h, key, message, sender ?? '');
        return;
      }
    }
    const seq = ++this.outSeq[shard]!;
    this.route(shard, { key, fromRegion: this.regionId, seq, sender: sender ?? '', hops: 0, message, messageType: message.type });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    this.system.clock.clearTimeout(this.passivationTimer);
    this.system.clock.clearTimeout(this.bounceTimer);
    for (const h of this.shards.values()) {
      this.system.clock.clearTimeout(h.gapTimer);
      for (const e of h.entities.values()) {
        this.system.clock.clearTimeout(e.stopTimer);
        if (e.ref) this.system.stop(e.ref);
      }
      h.unhost();
      h.actor.stop();
    }
    this.system.stop(this.self);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  private recompute(): void {
    const owners: string[] = [];
    const mayHold = new Set<string>();
    const known = new Set<string>();
    for (const m of this.membership.members()) {
      if (this.role !== undefined && !m.roles.includes(this.role)) continue;
      if (OWNS.has(m.status)) owners.push(m.node);
      if (m.node === this.node) continue;
      known.add(m.node);
      if (MAY_HOLD.has(m.status)) mayHold.add(m.node);
    }
    this.owners = ownerTable(this.numberOfShards, owners);
    this.mayHold = mayHold;
    this.known = known;
  }

  private onViewChange(): void {
    if (this.stopped) return;
    this.recompute();
    for (const h of this.shards.values()) {
      const state = h.actor.getSnapshot().value as ShardStateName;
      const mine = this.owners[h.shard] === this.node;
      if (state === ShardState.Remote && h.incoming.length > 0 && this.owners[h.shard] !== undefined) {
        // A hand-off parked while nobody could host the shard.
        if (mine) h.actor.send({ type: 'HANDOFF_IN' });
        else for (const handOff of h.incoming.splice(0)) this.onHandOff(handOff);
      } else if (!mine && state !== ShardState.Remote && state !== ShardState.HandingOff) {
        if (state === ShardState.Active) this.emitEvent({ type: 'handoff.started', shard: h.shard, to: this.owners[h.shard] });
        h.actor.send({ type: 'OWNER_ELSEWHERE' });
      }
    }
    const parked = this.parked;
    this.parked = [];
    for (const p of parked) this.route(p.shard, p.item);
  }

  // -------------------------------------------------------------------------------------------
  // Routing

  private isActive(h: ShardHost): boolean {
    return h.actor.getSnapshot().value === ShardState.Active;
  }

  private route(shard: number, item: Item): void {
    const h = this.shards.get(shard);
    const state = h ? (h.actor.getSnapshot().value as ShardStateName) : ShardState.Remote;
    if (state === ShardState.Active) {
      this.accept(h!, item);
      return;
    }
    if (state !== ShardState.Remote) {
      h!.buffer.push(item);
      return;
    }
    const owner = this.owners[shard];
    if (owner === this.node) {
      const host = h ?? this.hostFor(shard);
      host.buffer.push(item);
      host.actor.send({ type: 'DEMAND' });
    } else if (owner === undefined) {
      this.parked.push({ shard, item });
    } else {
      this.forward(owner, shard, item);
    }
  }

  private forward(owner: string, shard: number, item: Item): void {
    if (item.hops >= MAX_HOPS) {
      this.emitEvent({ type: 'message.bounced', shard, key: item.key });
      this.bounced.push({ shard, item: { ...item, hops: 0 } });
      this.bounceTimer ??= this.system.clock.setTimeout(() => {
        this.bounceTimer = undefined;
        if (this.stopped) return;
        const bounced = this.bounced;
        this.bounced = [];
        for (const b of bounced) this.route(b.shard, b.item);
      }, this.claimRetryMs);
      return;
    }
    this.counters.forwarded++;
    const { type: _t, ...env } = this.envelopeOf(shard, item, item.hops + 1);
    let box = this.outbox.get(owner);
    if (!box) this.outbox.set(owner, (box = { envelopes: [], bytes: 0 }));
    box.envelopes.push(env);
    box.bytes += env.payload.length + env.key.length + 32;
    if (box.bytes >= MAX_BATCH_BYTES) this.sendBatch(owner, box);
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  private flushOutbox(): void {
    this.flushScheduled = false;
    for (const [node, box] of this.outbox) this.sendBatch(node, box);
  }

  /** Region-to-region control message; forwarded envelopes queued for `node` go first (one FIFO per pair). */
  private sendTo(node: string, message: MessageObject): void {
    const box = this.outbox.get(node);
    if (box) this.sendBatch(node, box);
    this.system.deliver(`${node}/${this.name}`, message, this.self.address);
  }

  private sendBatch(node: string, box: { envelopes: Omit<ShardEnvelope, 'type'>[]; bytes: number }): void {
    if (box.envelopes.length === 0) return;
    const envelopes = box.envelopes;
    box.envelopes = [];
    box.bytes = 0;
    this.system.deliver(`${node}/${this.name}`, { type: 'ShardBatch', envelopes }, this.self.address);
  }

  private envelopeOf(shard: number, item: Item, hops: number): ShardEnvelope {
    let payload = item.payload;
    if (payload === undefined) {
      const t = this.types.get(item.messageType);
      if (!t) throw new RangeError(`entity ${this.entityType} does not accept ${item.messageType}`);
      // fromObject, like the codec's enum handling, takes enum values by name.
      payload = t.encode(t.fromObject(item.message as object)).finish();
    }
    return {
      type: 'ShardEnvelope', shard, key: item.key, fromRegion: item.fromRegion, seq: item.seq,
      messageType: item.messageType, payload, sender: item.sender, hops,
    };
  }

  private itemOf(env: Omit<ShardEnvelope, 'type'>): Item {
    return { key: env.key, fromRegion: env.fromRegion, seq: env.seq, sender: env.sender, hops: env.hops, messageType: env.messageType, payload: env.payload };
  }

  private messageOf(item: Item): MessageObject {
    if (item.message) return item.message;
    const t = this.types.get(item.messageType);
    if (!t) throw new RangeError(`entity ${this.entityType} does not accept ${item.messageType}`);
    const obj = t.toObject(t.decode(item.payload!), { longs: Number, enums: String, defaults: true, arrays: true }) as Record<string, unknown>;
    obj['type'] = item.messageType;
    return obj as unknown as MessageObject;
  }

  /** Delivery on the active host: in order per sending region, at most once, holding messages that arrive ahead of a gap. */
  private accept(h: ShardHost, item: Item): void {
    if (item.seq === 0) {
      // Accepted before a hand-off but not yet processed (its entity was stopping): first in line.
      this.deliverDecoded(h, item);
      return;
    }
    const last = this.lastDelivered(h, item.fromRegion);
    if (item.seq <= last) {
      this.counters.duplicatesDropped++;
      this.emitEvent({ type: 'message.dropped', shard: h.shard, key: item.key, reason: 'duplicate' });
      return;
    }
    if (item.seq > last + 1) {
      let held = h.held.get(item.fromRegion);
      if (!held) h.held.set(item.fromRegion, (held = new Map()));
      if (held.has(item.seq)) {
        this.counters.duplicatesDropped++;
        return;
      }
      held.set(item.seq, item);
      if (h.gapTimer === undefined) h.gapTimer = this.system.clock.setTimeout(() => this.skipGaps(h), this.gapTimeoutMs);
      return;
    }
    this.setDelivered(h, item.fromRegion, item.seq);
    this.deliverDecoded(h, item);
    this.drainHeld(h, item.fromRegion);
  }

  private lastDelivered(h: ShardHost, fromRegion: string): number {
    return fromRegion === this.regionId ? h.selfDelivered : (h.delivered.get(fromRegion) ?? 0);
  }

  private setDelivered(h: ShardHost, fromRegion: string, seq: number): void {
    if (fromRegion === this.regionId) h.selfDelivered = seq;
    else h.delivered.set(fromRegion, seq);
  }

  /** Bytes from another region that do not decode are dropped (counted, logged), never a failure of the region. */
  private deliverDecoded(h: ShardHost, item: Item): void {
    let message: MessageObject;
    try {
      message = this.messageOf(item);
    } catch (err) {
      this.counters.undecodable++;
      this.emitEvent({ type: 'message.dropped', shard: h.shard, key: item.key, reason: 'undecodable' });
      this.system.logger.warn({ err, shard: h.shard, key: item.key, messageType: item.messageType }, 'sharding: a forwarded message did not decode; dropped');
      return;
    }
    this.deliverToEntity(h, item.key, message, item.sender);
  }

  private drainHeld(h: ShardHost, fromRegion: string): void {
    const held = h.held.get(fromRegion);
    if (!held) return;
    let last = this.lastDelivered(h, fromRegion);
    for (let next = held.get(last + 1); next !== undefined; next = held.get(last + 1)) {
      held.delete(last + 1);
      last++;
      this.setDelivered(h, fromRegion, last);
      this.deliverDecoded(h, next);
    }
    if (held.size === 0) h.held.delete(fromRegion);
  }

  /** A predecessor did not come within `gapTimeoutMs`: it was lost with a crashed node. Move on. */
  private skipGaps(h: ShardHost): void {
    h.gapTimer = undefined;
    if (!this.isActive(h) || this.stopped) return;
    for (const [fromRegion, held] of [...h.held]) {
      const lowest = Math.min(...held.keys());
      const last = this.lastDelivered(h, fromRegion);
      this.emitEvent({ type: 'gap.skipped', shard: h.shard, fromRegion, missing: lowest - last - 1 });
      this.setDelivered(h, fromRegion, lowest - 1);
      this.drainHeld(h, fromRegion);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Entities

  private deliverToEntity(h: ShardHost, key: string, message: MessageObject, sender: string): void {
    let e = h.entities.get(key);
    if (e === undefined) {
      e = { ref: undefined, lastActiveMs: 0, state: undefined, stopping: false, stopTimer: undefined, pending: [] };
      h.entities.set(key, e);
    }
    if (e.stopping) {
      e.pending.push({ key, fromRegion: '', seq: 0, sender, hops: 0, message, messageType: message.type });
      return;
    }
    if (e.ref === undefined) this.startEntity(h, key, e);
    if (this.passivateIdleMs > 0) e.lastActiveMs = this.system.clock.now();
    if (sender) this.system.deliver(e.ref!, message, sender as never);
    else e.ref!.send(message);
  }

  private startEntity(h: ShardHost, key: string, e: EntityEntry): void {
    const input: EntityInput = e.state ? { entityType: this.entityType, key, state: e.state } : { entityType: this.entityType, key };
    const ref = this.system.spawn(this.entity, {
      name: entityName(this.entityType, key),
      input,
      ...(this.supervision ? { supervision: this.supervision } : {}),
      onEffect: (effect) => {
        if (effect.type === 'sharding.saveState') e.state = (effect as SaveStateEffect).state;
      },
    });
    e.ref = ref;
    void this.system.watch(ref).then((t) => this.onEntityTerminated(h, key, e, ref, t.reason));
    this.emitEvent({ type: 'entity.started', shard: h.shard, key });
    if (this.passivateIdleMs > 0 && this.passivationTimer === undefined) this.schedulePassivation();
  }

  private stopEntity(e: EntityEntry, reason: string): void {
    if (e.stopping || e.ref === undefined) return;
    e.stopping = true;
    this.system.deliver(e.ref, { type: 'Passivate', reason });
    const ref = e.ref;
    e.stopTimer = this.system.clock.setTimeout(() => {
      if (e.ref === ref) {
        this.system.logger.warn({ entity: ref.address }, 'sharding: entity did not stop after Passivate; stopping it');
        this.system.stop(ref);
      }
    }, this.stopTimeoutMs);
  }

  private onEntityTerminated(h: ShardHost, key: string, e: EntityEntry, ref: ActorRef, reason: string): void {
    if (e.ref !== ref) return;
    this.system.clock.clearTimeout(e.stopTimer);
    e.ref = undefined;
    e.stopping = false;
    this.emitEvent({ type: 'entity.stopped', shard: h.shard, key, reason });
    if (this.stopped) return;
    const state = h.actor.getSnapshot().value as ShardStateName;
    if (state === ShardState.HandingOff) {
      // Messages that came in while it stopped go with the hand-off, ahead of the shard's buffer.
      if (e.pending.length > 0) h.buffer.unshift(...e.pending);
      e.pending = [];
      if ([...h.entities.values()].every((x) => x.ref === undefined)) h.actor.send({ type: 'ENTITIES_STOPPED' });
      return;
    }
    const pending = e.pending;
    e.pending = [];
    if (pending.length === 0 && e.state === undefined) h.entities.delete(key);
    for (const p of pending) this.deliverToEntity(h, key, p.message!, p.sender);
  }

  private schedulePassivation(): void {
    const period = Math.max(1, Math.floor(this.passivateIdleMs / 2));
    this.passivationTimer = this.system.clock.setTimeout(() => {
      this.passivationTimer = undefined;
      if (this.stopped) return;
      const now = this.system.clock.now();
      let running = 0;
      for (const h of this.shards.values()) {
        if (!this.isActive(h)) continue;
        for (const e of h.entities.values()) {
          if (e.ref === undefined || e.stopping) continue;
          if (now - e.lastActiveMs >= this.passivateIdleMs) this.stopEntity(e, 'idle');
          else running++;
        }
      }
      if (running > 0) this.schedulePassivation();
    }, period);
  }

  // -------------------------------------------------------------------------------------------
  // The shard chart's effects

  private hostFor(shard: number): ShardHost {
    let h = this.shards.get(shard);
    if (h) return h;
    const actor = createActor(shardMachine, { input: { shard, claimRetryMs: this.claimRetryMs }, clock: this.system.clock });
    h = {
      shard, actor, generation: 0, buffer: [], delivered: new Map(), selfDelivered: 0, held: new Map(), gapTimer: undefined,
      entities: new Map(), incoming: [], claim: undefined, movedTo: undefined, unhost: () => undefined,
    };
    const host = h;
    actor.on('*', (effect) => this.onShardEffect(host, effect as ShardEffect));
    this.shards.set(shard, h);
    actor.start();
    // Shown with the system's actors (actors(), snapshotOf, the inspector) as `<region>-shard-<n>`.
    h.unhost = this.system.host(`${this.name}-shard-${shard}`, actor, { type: 'shard' });
    return h;
  }

  private onShardEffect(h: ShardHost, effect: ShardEffect): void {
    if (this.stopped) return;
    switch (effect.type) {
      case 'shard.claim':
        this.sendClaim(h);
        return;
      case 'shard.activate':
        this.activate(h);
        return;
      case 'shard.stopEntities': {
        h.claim = undefined;
        let running = 0;
        for (const e of h.entities.values()) {
          if (e.ref !== undefined) {
            running++;
            this.stopEntity(e, 'hand-off');
          }
        }
        if (running === 0) queueMicrotask(() => h.actor.send({ type: 'ENTITIES_STOPPED' }));
        return;
      }
      case 'shard.handOff':
        this.sendHandOff(h);
        return;
      case 'shard.forwardBuffered': {
        h.claim = undefined;
        const buffer = h.buffer;
        h.buffer = [];
        for (const item of buffer) this.route(h.shard, item);
        return;
      }
    }
  }

  private activate(h: ShardHost): void {
    h.claim = undefined;
    const incoming = h.incoming;
    h.incoming = [];
    if (incoming.length === 0) h.generation++;
    this.emitEvent({ type: 'shard.activated', shard: h.shard, generation: h.generation, handedOff: incoming.length > 0 });
    for (const handOff of incoming) this.applyHandOff(h, handOff);
    const buffer = h.buffer;
    h.buffer = [];
    for (const item of buffer) this.accept(h, item);
  }

  private applyHandOff(h: ShardHost, handOff: HandOff): void {
    h.generation = Math.max(h.generation, handOff.generation);
    for (const d of handOff.delivered) this.setDelivered(h, d.fromRegion, Math.max(this.lastDelivered(h, d.fromRegion), d.seq));
    for (const s of handOff.states) {
      const e = h.entities.get(s.key);
      if (e === undefined) h.entities.set(s.key, { ref: undefined, lastActiveMs: 0, state: s.state, stopping: false, stopTimer: undefined, pending: [] });
      else if (e.ref === undefined) e.state = s.state;
      else this.system.logger.warn({ shard: h.shard, key: s.key }, 'sharding: hand-off state for an entity already running here was ignored');
    }
    for (const env of handOff.buffered) this.accept(h, this.itemOf(env));
  }

  private sendHandOff(h: ShardHost): void {
    const to = this.owners[h.shard];
    // Order: messages already accepted here (seq 0: their entity was stopping), then those held
    // behind a gap, then the rest of the buffer.
    const items: Item[] = h.buffer.filter((i) => i.seq === 0);
    for (const held of h.held.values()) items.push(...[...held.values()].sort((a, b) => a.seq - b.seq));
    items.push(...h.buffer.filter((i) => i.seq !== 0));
    h.held.clear();
    this.system.clock.clearTimeout(h.gapTimer);
    h.gapTimer = undefined;
    h.buffer = [];
    const states = [];
    for (const [key, e] of h.entities) if (e.state !== undefined) states.push({ key, state: e.state });
    h.entities.clear();
    const generation = h.generation + 1;
    const handOff: HandOff = {
      type: 'HandOff', shard: h.shard, fromNode: this.node, generation,
      delivered: [...h.delivered, ...(h.selfDelivered > 0 ? [[this.regionId, h.selfDelivered] as const] : [])].map(([fromRegion, seq]) => ({ fromRegion, seq })),
      states, buffered: items.map((i) => { const { type: _t, ...env } = this.envelopeOf(h.shard, i, i.hops); return env; }),
    };
    h.delivered.clear();
    h.selfDelivered = 0;
    if (to === undefined) {
      // Nobody can host it now: keep it as an incoming hand-off to ourselves, applied when we own it again.
      h.incoming.push(handOff);
      return;
    }
    h.generation = generation;
    h.movedTo = { node: to, generation, atMs: this.system.clock.now() };
    this.counters.handOffsSent++;
    this.emitEvent({ type: 'handoff.sent', shard: h.shard, to, entities: states.length, buffered: items.length });
    if (to === this.node) this.onHandOff(handOff);
    else this.sendTo(to, handOff);
  }

  // -------------------------------------------------------------------------------------------
  // Inbound region messages

  private onInbound(event: MessageObject): void {
    if (this.stopped) return;
    switch (event.type) {
      case 'ShardBatch':
        for (const env of (event as unknown as ShardBatch).envelopes) if (env.shard < this.numberOfShards) this.route(env.shard, this.itemOf(env));
        return;
      case 'Claim':
        this.onClaim(event as unknown as Claim);
        return;
      case 'HandOff':
        this.onHandOff(event as unknown as HandOff);
        return;
    }
  }

  private onHandOff(handOff: HandOff): void {
    if (handOff.shard >= this.numberOfShards) return;
    const owner = this.owners[handOff.shard];
    if (owner !== this.node && owner !== undefined) {
      // Our view says someone else owns it: pass it on, unchanged.
      const h = this.shards.get(handOff.shard);
      if (h) h.movedTo = { node: owner, generation: handOff.generation, atMs: this.system.clock.now() };
      this.sendTo(owner, handOff);
      return;
    }
    const h = this.hostFor(handOff.shard);
    this.counters.handOffsReceived++;
    this.emitEvent({ type: 'handoff.received', shard: h.shard, from: handOff.fromNode, entities: handOff.states.length, buffered: handOff.buffered.length });
    const state = h.actor.getSnapshot().value as ShardStateName;
    if (state === ShardState.Active) {
      this.applyHandOff(h, handOff);
      return;
    }
    h.incoming.push(handOff);
    if (owner === this.node) h.actor.send({ type: 'HANDOFF_IN' });
  }

  /**
   * Ask every member this view lists — `down` ones too: a view may still think a node down that
   * came back and took shards. A node with no region there (no responders) holds nothing; one
   * that does not answer in time holds nothing if it is `down` or `joining` here, and blocks the
   * claim otherwise.
   */
  private sendClaim(h: ShardHost): void {
    const id = ++this.claimSeq;
    const peers = [...this.known];
    h.claim = { id, awaiting: new Set(peers), blocked: false };
    const claim: Claim = { type: 'Claim', shard: h.shard, fromNode: this.node, claimId: id };
    for (const peer of peers) {
      const box = this.outbox.get(peer);
      if (box) this.sendBatch(peer, box);
      this.system.ask<ClaimReply>(`${peer}/${this.name}`, claim, { timeoutMs: this.claimRetryMs, sender: this.self }).then(
        (reply) => this.onClaimReply(reply),
        (err: unknown) => this.onClaimUnanswered(h.shard, id, peer, err),
      );
    }
    this.decideClaim(h);
  }

  private onClaimUnanswered(shard: number, id: number, peer: string, err: unknown): void {
    const h = this.shards.get(shard);
    if (this.stopped || !h?.claim || h.claim.id !== id) return;
    if (!(err instanceof NoRespondersError) && this.mayHold.has(peer)) h.claim.blocked = true;
    h.claim.awaiting.delete(peer);
    this.decideClaim(h);
  }

  private onClaim(claim: Claim & { origin?: Origin }): void {
    const h = this.shards.get(claim.shard);
    let status = CLAIM_NONE;
    let movedTo = '';
    let generation = 0;
    if (h) {
      const state = h.actor.getSnapshot().value as ShardStateName;
      if (state === ShardState.Active || state === ShardState.HandingOff || h.incoming.length > 0) status = CLAIM_HOSTING;
      else if (state === ShardState.Claiming || state === ShardState.Waiting) status = CLAIM_CLAIMING;
      else if (h.movedTo && this.system.clock.now() - h.movedTo.atMs < MOVED_REPORT_FACTOR * this.claimRetryMs) {
        // Only while the hand-off may still be in transit: later, its recipient answers for it
        // (and a recipient that restarted since has nothing to answer for).
        status = CLAIM_MOVED;
        movedTo = h.movedTo.node;
        generation = h.movedTo.generation;
      }
    }
    const reply: ClaimReply = { type: 'ClaimReply', shard: claim.shard, fromNode: this.node, claimId: claim.claimId, status, movedTo, generation };
    if (claim.origin) this.system.reply(claim.origin, reply, this.self);
  }

  private onClaimReply(reply: ClaimReply): void {
    const h = this.shards.get(reply.shard);
    if (this.stopped || !h?.claim || h.claim.id !== reply.claimId) return;
    if (reply.status === CLAIM_HOSTING || reply.status === CLAIM_CLAIMING) h.claim.blocked = true;
    else if (reply.status === CLAIM_MOVED && reply.generation > h.generation && reply.movedTo !== this.node && this.mayHold.has(reply.movedTo)) {
      // It was handed to a node that may still hold it (or be about to receive it): not ours to start fresh.
      h.claim.blocked = true;
    }
    h.claim.awaiting.delete(reply.fromNode);
    this.decideClaim(h);
  }

  private decideClaim(h: ShardHost): void {
    const claim = h.claim;
    if (!claim || claim.awaiting.size > 0) return;
    h.claim = undefined;
    h.actor.send({ type: claim.blocked ? 'CLAIM_BLOCKED' : 'CLAIM_GRANTED' });
  }

  private emitEvent(e: RegionEvent): void {
    for (const l of this.listeners) l(e);
  }
}

/**
 * Start this node's shard region for one entity type. Every node that hosts or addresses the
 * entity type starts one, with the same `entityType`, `entity` and `numberOfShards`.
 * @example
 * const carts = startShardRegion(system, membership, { entityType: 'cart', entity: Cart, passivateIdleMs: 60_000 });
 * carts.ref('cart-42').send({ type: 'AddItem', sku: 'apple' });
 */
export function startShardRegion(system: ActorSystem, membership: MembershipView, options: ShardRegionOptions): ShardRegion {
  return new Region(system, membership, options);
}

/** Regions of several entity types on one node, addressed as `sharding.ref(entityType, key)`. */
export interface Sharding extends AsyncDisposable {
  /** Start the region of an entity type (once per type). */
  start(options: ShardRegionOptions): ShardRegion;
  region(entityType: string): ShardRegion;
  /** @example sharding.ref('cart', 'cart-42').send({ type: 'AddItem', sku: 'apple' }) */
  ref<M extends MessageObject = MessageObject>(entityType: string, key: string): EntityRef<M>;
  stop(): Promise<void>;
}

/** Cluster sharding on one node: one region per entity type. */
export function createSharding(system: ActorSystem, membership: MembershipView): Sharding {
  const regions = new Map<string, ShardRegion>();
  const region = (entityType: string): ShardRegion => {
    const r = regions.get(entityType);
    if (!r) throw new RangeError(`entityType '${entityType}' has no region on ${system.node}; start it first`);
    return r;
  };
  const stop = async (): Promise<void> => {
    for (const r of regions.values()) await r.stop();
    regions.clear();
  };
  return {
    start(options) {
      if (regions.has(options.entityType)) throw new RangeError(`entityType '${options.entityType}' already has a region on ${system.node}`);
      const r = startShardRegion(system, membership, options);
      regions.set(options.entityType, r);
      return r;
    },
    region,
    ref: (entityType, key) => region(entityType).ref(key),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
