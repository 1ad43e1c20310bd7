/**
 * The receptionist: register actors under a service key, find every current instance of a key
 * cluster-wide, and hear when that set changes (Akka's Receptionist).
 *
 * Each node's receptionist owns its own registrations and publishes all of them (state, versioned)
 * on one cluster subject whenever they change, when a new member appears, and on a slow refresh;
 * every receptionist keeps the newest set per node. Liveness comes from membership: instances on a
 * node that is `down` or `left` disappear at once, and a node's sets are shown only while the node
 * is a live member (`joining`, `up` or `suspect`). Local actors that stop are deregistered.
 */
import type { TimerId } from '../clock.ts';
import { createCodec, type Codec } from '../codec/codec.ts';
import type { MessageObject } from '../codec/messages.ts';
import { addressOf, type ActorRef, type RefLike } from '../ref.ts';
import type { ActorSystem } from '../system.ts';
import { parseAddress, serviceSubject } from '../transport/subjects.ts';
import type { Subscription, TransportMsg } from '../transport/transport.ts';
import { membershipInternals, type Membership, type MemberStatus } from './membership.ts';
import { messages, type ServiceRegistrations, type ServiceSyncRequest } from './membership.pb.ts';

/** The current instances of a key (sorted by address). */
export interface Listing {
  readonly key: string;
  readonly instances: readonly ActorRef[];
}

/** Service registry over the cluster. */
export interface Receptionist extends AsyncDisposable {
  /**
   * Register a local actor under `key` (idempotent). It stays registered until deregistered, until
   * it stops, or until the receptionist stops. Throws `RangeError` for a bad key or a remote actor.
   * Returns a function that deregisters it.
   */
  register(key: string, ref: RefLike): () => void;
  deregister(key: string, ref: RefLike): void;
  /** Every current instance of `key`, local and remote, sorted by address. */
  find(key: string): readonly ActorRef[];
  /**
   * Hear the listing of `key` now and after every change (synchronously). Returns unsubscribe.
   * @example receptionist.subscribe('workers', ({ instances }) => pool.replace(instances));
   */
  subscribe(key: string, listener: (listing: Listing) => void): () => void;
  /** Withdraw this node's registrations (others drop them at once) and stop. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link createReceptionist}. */
export interface ReceptionistOptions {
  /** Republish this node's registrations this often, so a lost update heals. @default 30000 */
  refreshMs?: number;
  /** Coalesce changes for this long before publishing them. @default 10 */
  publishDelayMs?: number;
}

export const DEFAULT_REFRESH_MS = 30_000;
export const DEFAULT_PUBLISH_DELAY_MS = 10;
/** Longest service key. */
export const MAX_KEY_LENGTH = 256;

const LIVE: ReadonlySet<MemberStatus> = new Set(['joining', 'up', 'suspect']);

interface NodeSet {
  epoch: number;
  version: number;
  /** key → addresses */
  byKey: Map<string, Set<string>>;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new RangeError(`receptionist key must be a non-empty string of at most ${MAX_KEY_LENGTH} characters, got ${JSON.stringify(key)}`);
  }
}

class ReceptionistImpl implements Receptionist {
  private readonly codec: Codec;
  private readonly subject: string;
  private readonly syncSubject: string;
  private readonly local: NodeSet;
  private readonly remote = new Map<string, NodeSet>();
  /** Highest epoch dropped per node (a down node's late sets must not come back). */
  private readonly dropped = new Map<string, number>();
  private readonly listeners = new Map<string, Set<(l: Listing) => void>>();
  private readonly lastListing = new Map<string, string>();
  private readonly refs = new Map<string, ActorRef>();
  private readonly subs: Subscription[] = [];
  private readonly offMembership: () => void;
  private publishTimer: TimerId | undefined;
  private refreshTimer: TimerId | undefined;
  private stopped = false;
  private readonly refreshMs: number;
  private readonly publishDelayMs: number;

  constructor(private readonly system: ActorSystem, private readonly membership: Membership, options: ReceptionistOptions) {
    this.refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS;
    if (!Number.isFinite(this.refreshMs) || this.refreshMs <= 0) throw new RangeError(`receptionist option refreshMs must be a number > 0, got ${String(options.refreshMs)}`);
    this.publishDelayMs = options.publishDelayMs ?? DEFAULT_PUBLISH_DELAY_MS;
    if (!Number.isFinite(this.publishDelayMs) || this.publishDelayMs < 0) throw new RangeError(`receptionist option publishDelayMs must be a number ≥ 0, got ${String(options.publishDelayMs)}`);
    if (membership.self !== system.node) throw new RangeError(`receptionist: membership is of node ${membership.self}, the system is ${system.node}`);
    const internals = membershipInternals(membership);
    this.local = { epoch: internals?.incarnation ?? system.clock.now(), version: 0, byKey: new Map() };
    this.codec = createCodec({ maxPayloadBytes: system.transport.maxPayloadBytes });
    this.codec.register(messages);
    this.subject = serviceSubject(system.cluster, 'reception', 'registrations');
    this.syncSubject = serviceSubject(system.cluster, 'reception', 'sync');
    this.subs.push(system.transport.subscribe(this.subject, (m) => this.onRegistrations(m)));
    this.subs.push(system.transport.subscribe(this.syncSubject, (m) => this.onSync(m)));
    this.offMembership = membership.subscribe((e) => {
      const node = e.member.node;
      if (node === system.node) return;
      if (e.member.status === 'down' || e.member.status === 'left') {
        const set = this.remote.get(node);
        if (set) this.dropped.set(node, Math.max(this.dropped.get(node) ?? 0, set.epoch));
        this.remote.delete(node);
      } else if (e.previous === undefined || e.previous === 'down' || e.previous === 'left' || e.member.status === 'joining') {
        // a new member (or a new incarnation): let it learn our registrations
        if (this.local.byKey.size > 0) this.schedulePublish();
      }
      this.notifyAll();
    });
    this.publish({ type: 'ServiceSyncRequest', node: system.node } satisfies ServiceSyncRequest, this.syncSubject);
    this.scheduleRefresh();
  }

  register(key: string, ref: RefLike): () => void {
    checkKey(key);
    const address = addressOf(ref);
    const { node } = parseAddress(address);
    if (node !== this.system.node) throw new RangeError(`receptionist: register only local actors (${address} is on ${node}, this is ${this.system.node})`);
    if (this.stopped) throw new RangeError('receptionist: stopped');
    let set = this.local.byKey.get(key);
    if (!set) this.local.byKey.set(key, (set = new Set()));
    if (!set.has(address)) {
      set.add(address);
      this.localChanged(key);
      void this.system.watch(address).then(() => this.deregister(key, address));
    }
    return () => this.deregister(key, address);
  }

  deregister(key: string, ref: RefLike): void {
    const address = addressOf(ref);
    const set = this.local.byKey.get(key);
    if (!set?.delete(address)) return;
    if (set.size === 0) this.local.byKey.delete(key);
    this.localChanged(key);
  }

  find(key: string): readonly ActorRef[] {
    const addresses = new Set<string>(this.local.byKey.get(key));
    const members = this.liveMembers();
    for (const [node, set] of this.remote) {
      if (!members.has(node)) continue;
      for (const a of set.byKey.get(key) ?? []) addresses.add(a);
    }
    return [...addresses].sort().map((a) => this.refOf(a));
  }

  subscribe(key: string, listener: (listing: Listing) => void): () => void {
    checkKey(key);
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    const instances = this.find(key);
    this.lastListing.set(key, instances.map((r) => r.address).join(' '));
    listener({ key, instances });
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.listeners.delete(key);
        this.lastListing.delete(key);
      }
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clock.clearTimeout(this.publishTimer);
    this.clock.clearTimeout(this.refreshTimer);
    this.offMembership();
    if (this.local.byKey.size > 0) {
      this.local.byKey.clear();
      this.local.version++;
      this.publishNow();
      try {
        await this.system.transport.flush();
      } catch {
        // the transport is closing: the node's leave or down will drop its registrations anyway
      }
    }
    for (const s of this.subs) s.unsubscribe();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // -------------------------------------------------------------------------------------------

  private get clock() {
    return this.system.clock;
  }

  private liveMembers(): Set<string> {
    const live = new Set<string>();
    for (const m of this.membership.members()) if (LIVE.has(m.status)) live.add(m.node);
    return live;
  }

  private refOf(address: string): ActorRef {
    let ref = this.refs.get(address);
    if (!ref) {
      ref = this.system.ref(address);
      this.refs.set(address, ref);
    }
    return ref;
  }

  private localChanged(key: string): void {
    this.local.version++;
    this.schedulePublish();
    this.notify(key);
  }

  private notifyAll(): void {
    for (const key of this.listeners.keys()) this.notify(key);
  }

  private notify(key: string): void {
    const listeners = this.listeners.get(key);
    if (!listeners) return;
    const instances = this.find(key);
    const signature = instances.map((r) => r.address).join(' ');
    if (this.lastListing.get(key) === signature) return;
    this.lastListing.set(key, signature);
    for (const l of [...listeners]) {
      try {
        l({ key, instances });
      } catch (err) {
        this.system.logger.warn({ err, key }, 'receptionist: a listener threw');
      }
    }
  }

  private schedulePublish(): void {
    if (this.stopped || this.publishTimer !== undefined) return;
    this.publishTimer = this.clock.setTimeout(() => {
      this.publishTimer = undefined;
      this.publishNow();
    }, this.publishDelayMs);
  }

  private scheduleRefresh(): void {
    this.refreshTimer = this.clock.setTimeout(() => {
      if (this.stopped) return;
      if (this.system.transport.status() === 'closed') {
        void this.stop();
        return;
      }
      if (this.local.byKey.size > 0) this.publishNow();
      this.scheduleRefresh();
    }, this.refreshMs);
  }

  private publishNow(): void {
    const entries: Array<{ key: string; address: string }> = [];
    for (const [key, set] of this.local.byKey) for (const address of set) entries.push({ key, address });
    this.publish({
      type: 'ServiceRegistrations', node: this.system.node, epoch: this.local.epoch, version: this.local.version, entries,
    } satisfies ServiceRegistrations, this.subject);
  }

  private publish(message: MessageObject, subject: string): void {
    try {
      this.system.transport.publish(subject, this.codec.encodeMessage(message).bytes);
    } catch (err) {
      this.system.logger.debug({ err }, 'receptionist: could not publish');
    }
  }

  private onSync(msg: TransportMsg): void {
    if (this.stopped) return;
    try {
      const req = this.codec.decodeMessage('troupe.membership.ServiceSyncRequest', msg.data, msg.subject) as ServiceSyncRequest;
      if (req.node !== this.system.node && this.local.byKey.size > 0) this.schedulePublish();
    } catch (err) {
      this.system.logger.debug({ err }, 'receptionist: undecodable sync request');
    }
  }

  private onRegistrations(msg: TransportMsg): void {
    if (this.stopped) return;
    let regs: ServiceRegistrations;
    try {
      regs = this.codec.decodeMessage('troupe.membership.ServiceRegistrations', msg.data, msg.subject) as ServiceRegistrations;
    } catch (err) {
      this.system.logger.debug({ err }, 'receptionist: undecodable registrations');
      return;
    }
    const node = regs.node;
    if (!node || node === this.system.node) return;
    if (regs.epoch <= (this.dropped.get(node) ?? -Infinity)) return;
    const status = this.membership.members().find((m) => m.node === node)?.status;
    if (status === 'down' || status === 'left') return;
    const current = this.remote.get(node);
    if (current && (regs.epoch < current.epoch || (regs.epoch === current.epoch && regs.version <= current.version))) return;
    const byKey = new Map<string, Set<string>>();
    for (const e of regs.entries) {
      // only addresses on the sender's own node: a receptionist speaks for its node alone
      if (!e.address.startsWith(`${node}/`)) continue;
      let set = byKey.get(e.key);
      if (!set) byKey.set(e.key, (set = new Set()));
      set.add(e.address);
    }
    this.remote.set(node, { epoch: regs.epoch, version: regs.version, byKey });
    this.notifyAll();
  }
}

/**
 * A receptionist for `system`, using `membership` (of the same system) for liveness.
 * @example
 * const reception = createReceptionist(system, membership);
 * reception.register('workers', system.spawn(Worker, { name: 'w1' }));
 * reception.subscribe('workers', ({ instances }) => console.log(instances.map(String)));
 */
export function createReceptionist(system: ActorSystem, membership: Membership, options: ReceptionistOptions = {}): Receptionist {
  return new ReceptionistImpl(system, membership, options);
}
