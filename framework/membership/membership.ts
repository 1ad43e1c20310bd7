/**
 * Cluster membership: which nodes are in the cluster and whether they are alive.
 *
 * Every member publishes a small heartbeat on one cluster subject every `heartbeatIntervalMs`, and
 * every member listens to that subject. Per observed node, a phi-accrual failure detector turns
 * silence into suspicion and a member chart (./machine.ts) turns suspicion into `suspect`, then
 * `down`. A graceful `leave()` is announced, so others see `left` at once.
 *
 * Traffic: N heartbeats published per interval and N² deliveries (each node receives N−1 per
 * interval). At 100 nodes and the default 1 s interval that is 100 messages/s published and about
 * 100 received per node per second — small next to actor traffic, and the server (or bus) does the
 * fan-out. Detection takes one interval's worth of φ; see the README for the bound.
 */
import { createActor, type Actor } from 'xstate';
import type { Clock, TimerId } from '../clock.ts';
import { createCodec, type Codec } from '../codec/codec.ts';
import type { MessageObject } from '../codec/messages.ts';
import type { Logger } from '../log.ts';
import type { ActorSystem } from '../system.ts';
import { serviceSubject } from '../transport/subjects.ts';
import type { Subscription, Transport, TransportMsg } from '../transport/transport.ts';
import { memberMachine } from './machine.ts';
import { messages, type MemberHeartbeat, type MemberLeave } from './membership.pb.ts';
import { createPhiAccrual, DEFAULT_MAX_SAMPLE_SIZE, DEFAULT_MIN_STD_DEVIATION_MS, type PhiAccrualDetector } from './phi-accrual.ts';
import { answerServiceApi } from './service-api.ts';

/** Where a member is in its lifecycle, as this node sees it. */
export type MemberStatus = 'joining' | 'up' | 'suspect' | 'down' | 'left';

/** One member of the cluster, as this node sees it. */
export interface Member {
  readonly node: string;
  readonly status: MemberStatus;
  readonly roles: readonly string[];
  /** When the member became up, on the member's own clock (the same value on every observer). */
  readonly upSinceMs?: number;
}

/** A member appeared or changed status. `previous` is undefined for a member seen the first time. */
export type MembershipEvent = { readonly type: 'member.changed'; readonly member: Member; readonly previous: MemberStatus | undefined };

/** This node's view of the cluster. `await using` leaves gracefully on dispose (`leave()`). */
export interface Membership extends AsyncDisposable {
  /** This node's name (`system.node`). */
  readonly self: string;
  /** Every known member, this node included, sorted by node. */
  members(): readonly Member[];
  /**
   * Hear every status change (synchronously, in the order they happen). Returns unsubscribe.
   * A listener that throws is logged and does not stop the others.
   */
  subscribe(listener: (e: MembershipEvent) => void): () => void;
  /** Graceful: announce the leave (others see `left` promptly), stop heartbeating. Idempotent. */
  leave(): Promise<void>;
  /** Stop heartbeating and listening without announcing (others will see `suspect`, then `down`). Idempotent. */
  stop(): Promise<void>;
}

/**
 * The read-only part of a {@link Membership}: what a consumer that only follows the cluster needs
 * (cluster sharding, for one). A test may drive one by hand.
 */
export type MembershipView = Pick<Membership, 'self' | 'members' | 'subscribe'>;

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
export const DEFAULT_PHI_THRESHOLD = 8;
export const DEFAULT_ACCEPTABLE_PAUSE_MS = 1_000;
export const DEFAULT_DOWN_AFTER_MS = 5_000;
export const DEFAULT_FORGET_AFTER_MS = 60_000;

/** Options of {@link joinCluster}. Durations in ms. */
export interface MembershipOptions {
  /** Roles this node announces (e.g. `'shard-host'`, `'frontend'`). @default [] */
  roles?: readonly string[];
  /** How often this node heartbeats. @default 1000 */
  heartbeatIntervalMs?: number;
  /** φ at which a member becomes `suspect` (Akka's default is 8). @default 8 */
  phiThreshold?: number;
  /** Silence beyond the mean that is not suspicious (GC, a busy event loop). @default 1000 */
  acceptableHeartbeatPauseMs?: number;
  /** Floor on the detector's standard deviation. @default 100 */
  minStdDeviationMs?: number;
  /** Inter-arrival samples kept per member. @default 200 */
  maxSampleSize?: number;
  /** How long a member stays `suspect` before it is marked `down`. @default 5000 */
  downAfterMs?: number;
  /** How long this node stays `joining` (listening to learn the cluster) before it announces `up`. @default 2 × heartbeatIntervalMs */
  joinGraceMs?: number;
  /** How often φ is evaluated for every member. @default heartbeatIntervalMs / 4 */
  checkIntervalMs?: number;
  /** How long `down` and `left` members stay listed before they are forgotten. @default 60000 */
  forgetAfterMs?: number;
  /**
   * Answer the NATS service API (`$SRV.PING|INFO|STATS`, optionally `.troupe[.<id>]`) so `nats micro`
   * tooling lists this node. @default false
   */
  serviceApi?: boolean;
}

interface Resolved {
  roles: readonly string[];
  heartbeatIntervalMs: number;
  phiThreshold: number;
  acceptableHeartbeatPauseMs: number;
  minStdDeviationMs: number;
  maxSampleSize: number;
  downAfterMs: number;
  joinGraceMs: number;
  checkIntervalMs: number;
  forgetAfterMs: number;
  serviceApi: boolean;
}

function resolve(o: MembershipOptions): Resolved {
  const num = (name: keyof MembershipOptions, value: number | undefined, dflt: number, min: number, integer = false): number => {
    const v = value ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      throw new RangeError(`membership option ${name} must be ${integer ? 'an integer' : 'a finite number'} ≥ ${min}, got ${String(value)}`);
    }
    return v;
  };
  const heartbeatIntervalMs = num('heartbeatIntervalMs', o.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS, 1);
  const roles = o.roles ?? [];
  if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string' || r.length === 0)) {
    throw new RangeError(`membership option roles must be an array of non-empty strings, got ${JSON.stringify(o.roles)}`);
  }
  return {
    roles: [...roles],
    heartbeatIntervalMs,
    phiThreshold: num('phiThreshold', o.phiThreshold, DEFAULT_PHI_THRESHOLD, Number.MIN_VALUE),
    acceptableHeartbeatPauseMs: num('acceptableHeartbeatPauseMs', o.acceptableHeartbeatPauseMs, DEFAULT_ACCEPTABLE_PAUSE_MS, 0),
    minStdDeviationMs: num('minStdDeviationMs', o.minStdDeviationMs, DEFAULT_MIN_STD_DEVIATION_MS, Number.MIN_VALUE),
    maxSampleSize: num('maxSampleSize', o.maxSampleSize, DEFAULT_MAX_SAMPLE_SIZE, 2, true),
    downAfterMs: num('downAfterMs', o.downAfterMs, DEFAULT_DOWN_AFTER_MS, 0),
    joinGraceMs: num('joinGraceMs', o.joinGraceMs, 2 * heartbeatIntervalMs, 0),
    checkIntervalMs: num('checkIntervalMs', o.checkIntervalMs, Math.max(1, heartbeatIntervalMs / 4), 1),
    forgetAfterMs: num('forgetAfterMs', o.forgetAfterMs, DEFAULT_FORGET_AFTER_MS, 0),
    serviceApi: o.serviceApi ?? false,
  };
}

/** One observed incarnation of a node. */
interface Observed {
  readonly node: string;
  readonly incarnation: number;
  roles: readonly string[];
  upSinceMs: number | undefined;
  readonly detector: PhiAccrualDetector | undefined;
  readonly actor: Actor<typeof memberMachine>;
  status: MemberStatus;
  /** When the member reached `down`/`left` (for forgetting it). */
  endedAtMs?: number;
}

/** Membership counters (tests, the service API's STATS, the heartbeat measurement). */
export interface MembershipStats {
  readonly heartbeatsSent: number;
  readonly heartbeatsReceived: number;
  readonly undecodable: number;
}

/** The implementation behind {@link joinCluster}; the receptionist uses its extras. */
export interface MembershipInternals extends Membership {
  readonly incarnation: number;
  readonly clock: Clock;
  readonly transport: Transport;
  readonly cluster: string;
  stats(): MembershipStats;
  /** φ of a member now (tests, diagnostics); undefined for unknown members and for self. */
  phiOf(node: string): number | undefined;
  /** Silence after a member's last heartbeat at which it becomes suspect, with its current statistics. */
  suspectAfterMs(node: string): number | undefined;
}

class MembershipImpl implements MembershipInternals {
  readonly self: string;
  readonly incarnation: number;
  readonly clock: Clock;
  readonly transport: Transport;
  readonly cluster: string;
  private readonly o: Resolved;
  private readonly logger: Logger;
  private readonly codec: Codec;
  private readonly observed = new Map<string, Observed>();
  private readonly listeners = new Set<(e: MembershipEvent) => void>();
  private readonly subs: Subscription[] = [];
  private readonly heartbeatSubject: string;
  private readonly leaveSubject: string;
  private heartbeatTimer: TimerId | undefined;
  private checkTimer: TimerId | undefined;
  private joinTimer: TimerId | undefined;
  private seq = 0;
  private counters = { heartbeatsSent: 0, heartbeatsReceived: 0, undecodable: 0 };
  private stopped = false;
  private leavePromise: Promise<void> | undefined;
  private sorted: readonly Member[] | undefined;

  constructor(private readonly system: ActorSystem, options: MembershipOptions) {
    this.o = resolve(options);
    this.self = system.node;
    this.cluster = system.cluster;
    this.clock = system.clock;
    this.transport = system.transport;
    this.logger = system.logger;
    this.incarnation = this.clock.now();
    this.codec = createCodec({ maxPayloadBytes: this.transport.maxPayloadBytes });
    this.codec.register(messages);
    this.heartbeatSubject = serviceSubject(this.cluster, 'members', 'heartbeat');
    this.leaveSubject = serviceSubject(this.cluster, 'members', 'leave');

    this.track(this.self, this.incarnation, this.o.roles, undefined, undefined);
    this.subs.push(this.transport.subscribe(this.heartbeatSubject, (m) => this.onHeartbeat(m)));
    this.subs.push(this.transport.subscribe(this.leaveSubject, (m) => this.onLeave(m)));
    if (this.o.serviceApi) this.subs.push(...answerServiceApi(this.transport, { node: this.self, cluster: this.cluster, roles: this.o.roles, startedMs: this.incarnation, stats: () => this.stats() }));
    this.joinTimer = this.clock.setTimeout(() => this.becomeUp(), this.o.joinGraceMs);
    this.sendHeartbeat();
    this.scheduleCheck();
  }

  // -------------------------------------------------------------------------------------------
  // Public

  members(): readonly Member[] {
    if (!this.sorted) {
      this.sorted = [...this.observed.values()]
        .map((m) => this.view(m))
        .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    }
    return this.sorted;
  }

  subscribe(listener: (e: MembershipEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  leave(): Promise<void> {
    this.leavePromise ??= this.doLeave();
    return this.leavePromise;
  }

  private async doLeave(): Promise<void> {
    if (this.stopped) return;
    const self = this.observed.get(this.self);
    try {
      // Twice: a leave is one small message, and a lost one would cost observers the full detection time.
      const bytes = this.encode({ type: 'MemberLeave', node: this.self, incarnation: this.incarnation } satisfies MemberLeave);
      this.transport.publish(this.leaveSubject, bytes);
      this.transport.publish(this.leaveSubject, bytes);
      await this.transport.flush();
    } catch (err) {
      this.logger.warn({ err }, 'membership: could not announce the leave');
    }
    self?.actor.send({ type: 'leave' });
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clock.clearTimeout(this.heartbeatTimer);
    this.clock.clearTimeout(this.checkTimer);
    this.clock.clearTimeout(this.joinTimer);
    for (const s of this.subs) s.unsubscribe();
    for (const m of this.observed.values()) m.actor.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.leave();
  }

  stats(): MembershipStats {
    return { ...this.counters };
  }

  phiOf(node: string): number | undefined {
    return this.observed.get(node)?.detector?.phi(this.clock.now());
  }

  suspectAfterMs(node: string): number | undefined {
    return this.observed.get(node)?.detector?.silenceForPhiMs(this.o.phiThreshold);
  }

  // -------------------------------------------------------------------------------------------
  // Members

  private view(m: Observed): Member {
    return m.upSinceMs !== undefined
      ? { node: m.node, status: m.status, roles: m.roles, upSinceMs: m.upSinceMs }
      : { node: m.node, status: m.status, roles: m.roles };
  }

  /** Start watching an incarnation of `node`; it replaces any earlier incarnation. */
  private track(node: string, incarnation: number, roles: readonly string[], upSinceMs: number | undefined, intervalMs: number | undefined): Observed {
    const earlier = this.observed.get(node);
    if (earlier) earlier.actor.stop();
    const actor = createActor(memberMachine, { input: { node, downAfterMs: this.o.downAfterMs }, clock: this.clock });
    const detector = node === this.self ? undefined : createPhiAccrual({
      firstHeartbeatEstimateMs: intervalMs && intervalMs > 0 ? intervalMs : this.o.heartbeatIntervalMs,
      maxSampleSize: this.o.maxSampleSize,
      minStdDeviationMs: this.o.minStdDeviationMs,
      acceptableHeartbeatPauseMs: this.o.acceptableHeartbeatPauseMs,
    });
    const m: Observed = { node, incarnation, roles, upSinceMs, detector, actor, status: 'joining' };
    this.observed.set(node, m);
    actor.subscribe((snapshot) => {
      const status = snapshot.value as MemberStatus;
      if (this.observed.get(node) !== m || status === m.status) return;
      const previous = m.status;
      m.status = status;
      if (status === 'down' || status === 'left') m.endedAtMs = this.clock.now();
      if (status === 'down') this.logger.warn({ member: node }, `membership: ${node} is down`);
      this.changed(m, previous);
    });
    actor.start();
    this.changed(m, earlier?.status);
    return m;
  }

  private changed(m: Observed, previous: MemberStatus | undefined): void {
    this.sorted = undefined;
    if (this.listeners.size === 0) return;
    const event: MembershipEvent = { type: 'member.changed', member: this.view(m), previous };
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn({ err }, 'membership: a listener threw');
      }
    }
  }

  private becomeUp(): void {
    if (this.stopped) return;
    const self = this.observed.get(this.self);
    if (!self || self.status !== 'joining') return;
    self.upSinceMs = this.clock.now();
    self.actor.send({ type: 'heartbeat', up: true });
    this.sendHeartbeat(); // announce `up` now rather than an interval later
  }

  // -------------------------------------------------------------------------------------------
  // Wire

  private encode(message: MessageObject): Uint8Array {
    return this.codec.encodeMessage(message).bytes;
  }

  private decode<M extends MessageObject>(msg: TransportMsg, typeName: string): M | undefined {
    try {
      return this.codec.decodeMessage(typeName, msg.data, msg.subject) as M;
    } catch (err) {
      this.counters.undecodable++;
      this.logger.debug({ err, subject: msg.subject }, 'membership: undecodable message');
      return undefined;
    }
  }

  private sendHeartbeat(): void {
    if (this.stopped) return;
    if (this.transport.status() === 'closed') {
      // the system shut down under us: stop, or our timers would keep the process alive
      void this.stop();
      return;
    }
    const self = this.observed.get(this.self);
    const hb: MemberHeartbeat = {
      type: 'MemberHeartbeat', node: this.self, incarnation: this.incarnation, up: self?.status === 'up',
      roles: [...this.o.roles], intervalMs: Math.round(this.o.heartbeatIntervalMs), upSinceMs: self?.upSinceMs ?? 0, seq: ++this.seq >>> 0,
    };
    try {
      this.transport.publish(this.heartbeatSubject, this.encode(hb));
      this.counters.heartbeatsSent++;
    } catch (err) {
      this.logger.debug({ err }, 'membership: heartbeat not sent');
    }
    this.clock.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = this.clock.setTimeout(() => this.sendHeartbeat(), this.o.heartbeatIntervalMs);
  }

  private onHeartbeat(msg: TransportMsg): void {
    if (this.stopped) return;
    const hb = this.decode<MemberHeartbeat>(msg, 'troupe.membership.MemberHeartbeat');
    if (!hb || !hb.node || hb.node === this.self) return;
    this.counters.heartbeatsReceived++;
    const now = this.clock.now();
    let m = this.observed.get(hb.node);
    if (m && hb.incarnation < m.incarnation) return; // an older incarnation's last words
    if (!m || hb.incarnation > m.incarnation) {
      m = this.track(hb.node, hb.incarnation, hb.roles, hb.upSinceMs > 0 ? hb.upSinceMs : undefined, hb.intervalMs);
    } else if (m.status === 'down' || m.status === 'left') {
      return; // final for this incarnation
    }
    m.detector!.heartbeat(now);
    if (hb.upSinceMs > 0 && m.upSinceMs === undefined) m.upSinceMs = hb.upSinceMs;
    m.roles = hb.roles;
    m.actor.send({ type: 'heartbeat', up: hb.up });
  }

  private onLeave(msg: TransportMsg): void {
    if (this.stopped) return;
    const leave = this.decode<MemberLeave>(msg, 'troupe.membership.MemberLeave');
    if (!leave || leave.node === this.self) return;
    const m = this.observed.get(leave.node);
    if (m && m.incarnation === leave.incarnation && m.status !== 'down' && m.status !== 'left') m.actor.send({ type: 'leave' });
  }

  // -------------------------------------------------------------------------------------------
  // Failure detection

  private scheduleCheck(): void {
    this.checkTimer = this.clock.setTimeout(() => {
      if (this.stopped) return;
      this.check();
      this.scheduleCheck();
    }, this.o.checkIntervalMs);
  }

  private check(): void {
    const now = this.clock.now();
    for (const m of [...this.observed.values()]) {
      if (m.node === this.self) continue;
      if ((m.status === 'up' || m.status === 'joining') && m.detector!.phi(now) >= this.o.phiThreshold) {
        m.actor.send({ type: 'suspect' });
      } else if (m.endedAtMs !== undefined && now - m.endedAtMs >= this.o.forgetAfterMs) {
        this.observed.delete(m.node);
        this.sorted = undefined;
      }
    }
  }
}

/**
 * Join the cluster of `system`: start heartbeating and watching every other member. Works over any
 * transport the system uses (the embedded bus, NATS, the simulator's network).
 * @example
 * await using membership = joinCluster(system, { roles: ['worker'] });
 * membership.subscribe((e) => console.log(e.member.node, e.previous, '→', e.member.status));
 */
export function joinCluster(system: ActorSystem, options: MembershipOptions = {}): Membership {
  return new MembershipImpl(system, options);
}

/** The extras behind a {@link Membership} created by {@link joinCluster} (for the receptionist and tests). */
export function membershipInternals(membership: Membership): MembershipInternals | undefined {
  return membership instanceof MembershipImpl ? membership : undefined;
}
