/**
 * `replicated(system, options)`: primary–backup replication of an XState machine. Every replica
 * node hosts one; the replica that wins `options.election` for the group is the primary.
 *
 * - **Log.** The primary appends each accepted event to its log as `(epoch, seq)` — epoch = its
 *   election epoch (the fencing token), seq = position from 1 — applies it to its own actor of the
 *   machine, and ships it to every backup. Backups apply entries in log order, so every replica's
 *   actor goes through the same states (the machine must be deterministic: no `after`, no clock or
 *   randomness in its actions).
 * - **Acknowledgement.** `mode: 'sync'`: `send` resolves once `w` backups have the entry (and
 *   every entry before it); `mode: 'async'`: at once, and `status().lag` says how far the most
 *   advanced backup is behind — what a failover right now would lose.
 * - **Fencing.** A replica remembers the largest epoch it has seen and refuses entries from a
 *   smaller one; the refusal (or any larger epoch) deposes a primary at once. A primary also checks
 *   its lease (`campaign.isLeader()`) before accepting or acknowledging a write.
 * - **Failover.** A newly elected primary first asks every replica to promise its epoch and to
 *   describe its log; in sync mode it waits until `replicas − w` replicas (itself included) have
 *   answered — a set that must share a replica with every acknowledged write's `w + 1` holders —
 *   adopts the most advanced log among them (largest last epoch, then longest), and only then
 *   serves. In async mode it waits at most `requestTimeoutMs` and adopts the best it heard.
 * - **Catch-up.** Logs are compared by their epoch tables (where each epoch starts): entries with
 *   the same epoch and seq are the same entry, so the longest shared prefix is found without
 *   shipping the log. A returning old primary (or any replica with a divergent suffix) truncates
 *   to the shared prefix — rebuilding its actor from the log — and receives the rest.
 * - **Reads.** `read()` on the primary is fresh; on a backup it carries its staleness — how long ago
 *   (on this replica's clock) it last held everything the primary had when it sent a message — and
 *   is refused with `StaleReadError` past `maxStalenessMs`.
 *
 * Wire: protobuf messages of ./replication.proto on `troupe.<cluster>._replication.<name>.<node>.<op>`.
 */
import { createActor, type Actor, type AnyStateMachine, type EventFromLogic, type SnapshotFrom } from 'xstate';
import type { Clock, TimerId } from '../../framework/clock.ts';
import { createCodec } from '../../framework/codec/codec.ts';
import type { MessageObject } from '../../framework/codec/messages.ts';
import { NotPrimaryError, StaleReadError, TroupeError, WriteUnacknowledgedError } from '../../framework/errors.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { serviceSubject, validateName } from '../../framework/transport/subjects.ts';
import type { Subscription, TransportMsg } from '../../framework/transport/transport.ts';
import type { Campaign, LeaderElection } from '../leader-election/election.ts';
import { replicaMachine, ReplicaRole, type ReplicaRoleName } from './machine.ts';
import {
  messages, type ReplAck, type ReplAppend, type ReplEntry, type ReplEpochStart, type ReplFetch, type ReplFetchReply,
  type ReplStatus, type ReplStatusRequest, type ReplWrite, type ReplWriteReply,
} from './replication.pb.ts';

/** Default acknowledgement mode. */
export const DEFAULT_REPLICATION_MODE = 'sync';
/** Default backups a synchronous write waits for. */
export const DEFAULT_REPLICATION_W = 1;
/** Default primary → backup heartbeat (and retransmission) interval. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 50;
/** Default timeout of a status or fetch request during failover. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 500;
/** Default pause between failed recovery attempts. */
export const DEFAULT_RECOVERY_RETRY_MS = 100;
/** Default time a synchronous write waits for its acknowledgements. */
export const DEFAULT_WRITE_TIMEOUT_MS = 5_000;
/** Default staleness bound of `read()`. */
export const DEFAULT_MAX_STALENESS_MS = 1_000;
/** Default entries per append or fetch message. */
export const DEFAULT_MAX_BATCH = 256;

/** Acknowledge after `w` backups applied the write, or at once. */
export type ReplicationMode = 'sync' | 'async';

/** Options of {@link replicated}. */
export interface ReplicatedOptions<M extends AnyStateMachine> {
  /** The replicated actor's name (a subject token); also the election group. */
  name: string;
  /** The machine every replica runs; deterministic (see the module docs). */
  machine: M;
  /** Machine input. */
  input?: unknown;
  /** Node names of every replica of this actor, this node included (at least 2). */
  replicas: readonly string[];
  /** Leader election bound to this node (candidate id = this node's name). */
  election: LeaderElection;
  /** @default 'sync' */
  mode?: ReplicationMode;
  /** Backups a synchronous write waits for, 1 ≤ w ≤ replicas − 1. @default 1 */
  w?: number;
  /** @default 50 */
  heartbeatIntervalMs?: number;
  /** @default 500 */
  requestTimeoutMs?: number;
  /** @default 100 */
  recoveryRetryMs?: number;
  /** A synchronous write fails with `WriteUnacknowledgedError` after this long. @default 5000 */
  writeTimeoutMs?: number;
  /** Default bound of `read()`. @default 1000 */
  maxStalenessMs?: number;
  /** @default 256 */
  maxBatch?: number;
  /**
   * True when this replica (re)starts without the state it had — a restart, since logs are kept in
   * memory. It then does not count toward a new primary's recovery quorum (its empty log would
   * hide acknowledged writes) until a primary has caught it up.
   * @default false
   */
  joining?: boolean;
  /** Told about role changes, failovers, truncations (synchronously; keep it short). */
  onEvent?: (event: ReplicationEvent) => void;
  /** @default system.clock */
  clock?: Clock;
}

/** What a replica reports through `onEvent`. */
export type ReplicationEvent =
  | { kind: 'role'; node: string; role: ReplicaRoleName; epoch: number; reason: string }
  | { kind: 'recovered'; node: string; epoch: number; adoptedFrom: string; lastSeq: number; answered: number; replicas: number }
  | { kind: 'truncated'; node: string; fromSeq: number; toSeq: number }
  | { kind: 'fenced'; node: string; epoch: number; by: number };

/** Where a write landed. */
export interface WriteReceipt {
  readonly epoch: number;
  readonly seq: number;
}

/** A read of the replicated actor's state. */
export interface ReadResult<M extends AnyStateMachine> {
  readonly snapshot: SnapshotFrom<M>;
  readonly role: ReplicaRoleName;
  /** Entries applied. */
  readonly seq: number;
  /** 0 on a serving primary; on a backup, how long ago it last held all the primary had. */
  readonly stalenessMs: number;
}

/** How far backups are behind a primary. */
export interface ReplicationLag {
  /** Entries the most advanced backup lacks (acknowledged to this primary). */
  readonly entries: number;
  /** Age of the oldest entry the most advanced backup lacks; 0 when none. */
  readonly ms: number;
  /** Per backup: entries it lacks. */
  readonly byBackup: Readonly<Record<string, number>>;
}

/** One replica's view. */
export interface ReplicaStatus {
  readonly node: string;
  readonly role: ReplicaRoleName;
  /** Largest epoch seen (promised). */
  readonly epoch: number;
  /** Latest primary known (a hint). */
  readonly primary: string | undefined;
  readonly lastSeq: number;
  readonly lastEpoch: number;
  /** On a serving primary. */
  readonly lag: ReplicationLag | undefined;
  /** On a backup. */
  readonly stalenessMs: number;
}

/** One replica of a replicated actor. */
export interface Replicated<M extends AnyStateMachine> {
  readonly name: string;
  readonly node: string;
  /** The role chart (inspection: hosted as `replica-<name>`). */
  readonly chart: Actor<typeof replicaMachine>;
  /** The election campaign. */
  readonly campaign: Campaign;
  /**
   * Write `event` (on the primary). Rejects with `NotPrimaryError` elsewhere, and with
   * `WriteUnacknowledgedError` when a synchronous write times out or its primary is deposed first.
   * @example const { seq } = await orders.send({ type: 'ADD', id: 'o-1' });
   */
  send(event: EventFromLogic<M>): Promise<WriteReceipt>;
  /** Read this replica's state; `StaleReadError` past `maxStalenessMs`. */
  read(options?: { maxStalenessMs?: number }): ReadResult<M>;
  status(): ReplicaStatus;
  /** Stop: resign the election, stop timers and subscriptions. */
  close(): Promise<void>;
}

interface ResolvedOptions {
  name: string; replicas: readonly string[]; mode: ReplicationMode; w: number; heartbeatIntervalMs: number;
  requestTimeoutMs: number; recoveryRetryMs: number; writeTimeoutMs: number; maxStalenessMs: number; maxBatch: number;
}

function resolve(options: ReplicatedOptions<AnyStateMachine>, node: string): ResolvedOptions {
  const bad = (property: string, expected: string, value: unknown): never => {
    throw new RangeError(`replication option ${property} must be ${expected}, got ${String(value)}`);
  };
  if (options === null || typeof options !== 'object') bad('(options)', 'an object', options);
  if (typeof options.name !== 'string') bad('name', 'a string', options.name);
  validateName(options.name, 'replicated actor name');
  if (!options.machine || typeof options.machine !== 'object') bad('machine', 'an XState machine', options.machine);
  if (!options.election || typeof options.election.campaign !== 'function') bad('election', 'a LeaderElection', options.election);
  const replicas = options.replicas;
  if (!Array.isArray(replicas) || replicas.length < 2 || new Set(replicas).size !== replicas.length) bad('replicas', 'at least 2 distinct node names', replicas);
  if (!replicas.includes(node)) bad('replicas', `a list including this node '${node}'`, replicas);
  const mode = options.mode ?? DEFAULT_REPLICATION_MODE;
  if (mode !== 'sync' && mode !== 'async') bad('mode', "'sync' or 'async'", mode);
  const w = options.w ?? DEFAULT_REPLICATION_W;
  if (!Number.isInteger(w) || w < 1 || w > replicas.length - 1) bad('w', `an integer in 1..${replicas.length - 1}`, w);
  const ms = (property: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(property, 'a positive number of milliseconds', v);
    return v;
  };
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) bad('maxBatch', 'a positive integer', maxBatch);
  return {
    name: options.name, replicas, mode, w, maxBatch,
    heartbeatIntervalMs: ms('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS),
    requestTimeoutMs: ms('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS),
    recoveryRetryMs: ms('recoveryRetryMs', options.recoveryRetryMs, DEFAULT_RECOVERY_RETRY_MS),
    writeTimeoutMs: ms('writeTimeoutMs', options.writeTimeoutMs, DEFAULT_WRITE_TIMEOUT_MS),
    maxStalenessMs: ms('maxStalenessMs', options.maxStalenessMs, DEFAULT_MAX_STALENESS_MS),
  };
}

type Entry = Omit<ReplEntry, 'type'>;
type EpochStart = Omit<ReplEpochStart, 'type'>;

/**
 * The longest prefix `log` shares with another log of `lastSeq` entries whose epochs start as in
 * `epochs`. Entries with equal (epoch, seq) are equal, and so are the prefixes before them.
 */
export function sharedPrefix(log: readonly { epoch: number }[], epochs: readonly EpochStart[], lastSeq: number): number {
  const epochAt = (seq: number): number => {
    let e = 0;
    for (const s of epochs) {
      if (s.firstSeq > seq) break;
      e = s.epoch;
    }
    return e;
  };
  for (let s = Math.min(lastSeq, log.length); s > 0; s--) {
    if (log[s - 1]!.epoch === epochAt(s)) return s;
  }
  return 0;
}

interface PendingWrite {
  resolve(r: WriteReceipt): void;
  reject(e: Error): void;
  timer: TimerId;
  epoch: number;
}

interface BackupProgress {
  /** Entries known to be on the backup (a prefix of our log). */
  matchSeq: number;
  /** Next entry to ship. */
  nextSeq: number;
  /** An ack arrived since the last heartbeat tick. */
  heard: boolean;
}

/**
 * Host one replica of `options.machine` on `system`'s node.
 * @example
 * const election = leaseElection({ store, candidate: system.node, ttlMs: 2_000 });
 * const counter = replicated(system, { name: 'counter', machine: counterMachine, replicas: ['a', 'b', 'c'], election, mode: 'sync', w: 1 });
 * if (counter.status().role === 'primary') await counter.send({ type: 'INC' });
 * counter.read({ maxStalenessMs: 500 }).snapshot.context.count;
 */
export function replicated<M extends AnyStateMachine>(system: ActorSystem, options: ReplicatedOptions<M>): Replicated<M> {
  const node = system.node;
  const o = resolve(options as ReplicatedOptions<AnyStateMachine>, node);
  const clock = options.clock ?? system.clock;
  const transport = system.transport;
  const codec = createCodec({ maxPayloadBytes: transport.maxPayloadBytes });
  codec.register(messages);
  const others = o.replicas.filter((r) => r !== node);
  const subject = (to: string, op: string): string => serviceSubject(system.cluster, 'replication', o.name, to, op);
  const enc = (m: MessageObject): Uint8Array => codec.encodeMessage(m).bytes;
  const dec = <T extends MessageObject>(bytes: Uint8Array, short: string, subj: string): T | undefined => {
    try {
      return codec.decodeMessage(`troupe.replication.${short}`, bytes, subj) as T;
    } catch (err) {
      system.logger.debug({ err, subject: subj }, 'replication: undecodable message');
      return undefined;
    }
  };
  const textEncoder = new TextEncoder();
  const textDecoder = new TextDecoder();
  const emit = (e: ReplicationEvent): void => options.onEvent?.(e);

  // ---- the log and the replicated actor ----
  const log: Entry[] = [];
  const epochs: EpochStart[] = [];
  /** When this primary appended each entry (0 for entries it received). */
  const appendedAtMs: number[] = [];
  let promised = 0;
  let eligible = !(options.joining ?? false);
  let primaryHint: string | undefined;
  let caughtUpAtMs = Number.NEGATIVE_INFINITY;
  /** Prefix of our log acknowledged to the primary of epoch `promised`: never truncated below. */
  let verified = 0;
  let closed = false;

  const newActor = (): Actor<M> => {
    const a = (createActor as (m: AnyStateMachine, o?: object) => Actor<M>)(options.machine, options.input === undefined ? {} : { input: options.input });
    a.start();
    return a;
  };
  let actor = newActor();
  const applyEntry = (e: Entry, event?: EventFromLogic<M>): void => {
    actor.send(event ?? (JSON.parse(textDecoder.decode(e.event)) as EventFromLogic<M>));
  };
  const lastSeq = (): number => log.length;
  const lastEpoch = (): number => log.at(-1)?.epoch ?? 0;
  const epochAt = (seq: number): number => (seq === 0 ? 0 : log[seq - 1]?.epoch ?? -1);
  const append = (e: Entry, atMs: number, event?: EventFromLogic<M>): void => {
    if (epochs.at(-1)?.epoch !== e.epoch) epochs.push({ epoch: e.epoch, firstSeq: e.seq });
    log.push(e);
    appendedAtMs.push(atMs);
    applyEntry(e, event);
  };
  const truncate = (toSeq: number): void => {
    if (toSeq >= log.length) return;
    const fromSeq = log.length;
    log.length = toSeq;
    appendedAtMs.length = toSeq;
    while (epochs.length > 0 && epochs.at(-1)!.firstSeq > toSeq) epochs.pop();
    // The actor cannot un-apply events: rebuild it from the kept prefix.
    actor.stop();
    actor = newActor();
    for (const e of log) applyEntry(e);
    emit({ kind: 'truncated', node, fromSeq, toSeq });
  };

  // ---- the role chart ----
  const progress = new Map<string, BackupProgress>();
  const pending = new Map<number, PendingWrite>();
  let heartbeat: TimerId | undefined;
  let servingEpoch = 0;

  const chartDef = replicaMachine.provide({
    actions: {
      recover: ({ context }) => {
        const epoch = context.epoch;
        // After the transition: recover() reads the chart's state.
        void Promise.resolve().then(() => recover(epoch));
      },
      serve: ({ context }) => {
        servingEpoch = context.epoch;
        primaryHint = node;
        progress.clear();
        for (const b of others) progress.set(b, { matchSeq: 0, nextSeq: lastSeq() + 1, heard: true });
        if (heartbeat !== undefined) clock.clearTimeout(heartbeat);
        heartbeat = clock.setTimeout(tick, 0); // after the transition: tick() reads the chart's state
      },
      stepDown: () => {
        servingEpoch = 0;
        if (heartbeat !== undefined) clock.clearTimeout(heartbeat);
        heartbeat = undefined;
        failPending('the primary stepped down');
      },
    },
  });
  const chart = createActor(chartDef, { clock, input: { node, recoveryRetryMs: o.recoveryRetryMs } });
  chart.on('replica.transition', (t) => emit({ kind: 'role', node, role: t.to, epoch: t.epoch, reason: t.reason }));
  const role = (): ReplicaRoleName => {
    const v = chart.getSnapshot().value;
    return (typeof v === 'string' ? v : Object.keys(v)[0]) as ReplicaRoleName;
  };
  /** True while this replica may accept and acknowledge writes of `servingEpoch`. */
  const serving = (): boolean =>
    servingEpoch !== 0 && servingEpoch === promised && role() === ReplicaRole.Primary && campaign.leadership()?.epoch === servingEpoch;

  const seeEpoch = (epoch: number): void => {
    if (epoch <= promised) return;
    const mine = chart.getSnapshot().context.epoch;
    promised = epoch;
    verified = 0;
    if (role() === ReplicaRole.Primary || role() === ReplicaRole.Recovering) {
      emit({ kind: 'fenced', node, epoch: mine, by: epoch });
      chart.send({ type: 'FENCED', epoch: mine, by: epoch });
    }
  };

  const failPending = (reason: string): void => {
    for (const [seq, p] of pending) {
      clock.clearTimeout(p.timer);
      p.reject(new WriteUnacknowledgedError(o.name, seq, acksFor(seq), o.w, reason));
    }
    pending.clear();
  };
  const acksFor = (seq: number): number => {
    let n = 0;
    for (const p of progress.values()) if (p.matchSeq >= seq) n++;
    return n;
  };
  /** Largest seq on at least `w` backups. */
  const committedSeq = (): number => {
    const m = Array.from(progress.values(), (p) => p.matchSeq).sort((a, b) => b - a);
    return m[o.w - 1] ?? 0;
  };
  const settlePending = (): void => {
    if (pending.size === 0) return;
    if (!serving()) return; // a deposed primary acknowledges nothing (its lease may have lapsed)
    const c = committedSeq();
    for (const [seq, p] of pending) {
      if (seq > c) break;
      clock.clearTimeout(p.timer);
      pending.delete(seq);
      p.resolve({ epoch: p.epoch, seq });
    }
  };

  // ---- shipping (primary) ----
  const ship = (to: string, p: BackupProgress, opts: { truncate?: boolean } = {}): void => {
    const prevSeq = p.nextSeq - 1;
    const entries = log.slice(prevSeq, prevSeq + o.maxBatch);
    const msg: ReplAppend = {
      type: 'ReplAppend', epoch: servingEpoch, primary: node, prevSeq, prevEpoch: epochAt(prevSeq), entries,
      primaryLastSeq: lastSeq(), truncate: opts.truncate ?? false,
    };
    p.nextSeq = prevSeq + entries.length + 1;
    publish(subject(to, 'append'), enc(msg));
  };
  const publish = (subj: string, bytes: Uint8Array): void => {
    try {
      transport.publish(subj, bytes);
    } catch (err) {
      system.logger.debug({ err, subject: subj }, 'replication: publish failed');
    }
  };
  const tick = (): void => {
    heartbeat = undefined;
    if (closed || role() !== ReplicaRole.Primary) return;
    if (!serving()) {
      // The lease lapsed locally before the election noticed: stop acting at once.
      chart.send({ type: 'DEPOSED', epoch: servingEpoch, reason: 'lease no longer held' });
      return;
    }
    for (const [to, p] of progress) {
      // No answer since the last tick while behind: the pipeline may have lost a message; probe
      // from the acknowledged prefix (the backup's answer says exactly where it is).
      if (!p.heard && p.matchSeq < lastSeq()) p.nextSeq = p.matchSeq + 1;
      p.heard = false;
      ship(to, p);
    }
    heartbeat = clock.setTimeout(tick, o.heartbeatIntervalMs);
  };

  // ---- handlers ----
  const subs: Subscription[] = [];
  const onAppend = (m: TransportMsg): void => {
    const a = dec<ReplAppend>(m.data, 'ReplAppend', m.subject);
    if (!a || closed) return;
    seeEpoch(a.epoch);
    const ack = (ok: boolean, matched: number): void => {
      const r: ReplAck = {
        type: 'ReplAck', epoch: promised, from: node, ok, lastSeq: ok ? matched : lastSeq(), lastEpoch: lastEpoch(),
        epochs: ok ? [] : epochs.map((e) => ({ ...e })),
      };
      publish(subject(a.primary, 'ack'), enc(r));
    };
    if (a.epoch < promised || role() !== ReplicaRole.Backup) {
      ack(false, 0);
      return;
    }
    primaryHint = a.primary;
    if (a.prevSeq > lastSeq() || epochAt(a.prevSeq) !== a.prevEpoch) {
      ack(false, 0);
      return;
    }
    if (a.truncate) truncate(Math.max(a.prevSeq, verified));
    for (const e of a.entries) {
      if (e.seq <= lastSeq()) {
        if (log[e.seq - 1]!.epoch === e.epoch) continue;
        truncate(e.seq - 1);
      }
      append(e, 0);
    }
    const matched = a.prevSeq + a.entries.length;
    verified = Math.max(verified, matched);
    // Entries past the primary's last one are not in its log (a deposed primary's suffix): drop
    // them, even when nothing conflicts with them yet, so reads never show them.
    if (lastSeq() > Math.max(a.primaryLastSeq, verified)) truncate(Math.max(a.primaryLastSeq, verified));
    if (matched >= a.primaryLastSeq) {
      caughtUpAtMs = clock.now();
      eligible = true;
    }
    ack(true, matched);
  };

  const onAck = (m: TransportMsg): void => {
    const a = dec<ReplAck>(m.data, 'ReplAck', m.subject);
    if (!a || closed) return;
    seeEpoch(a.epoch);
    const p = progress.get(a.from);
    if (!p || a.epoch !== servingEpoch || role() !== ReplicaRole.Primary) return;
    p.heard = true;
    if (a.ok) {
      if (a.lastSeq > p.matchSeq) p.matchSeq = a.lastSeq;
      settlePending();
      return;
    }
    // Mismatch: ship from the prefix we share, telling the backup to drop what follows it.
    // The answer describes the backup's whole log: it holds exactly `common` of ours (less than we
    // thought if it restarted empty — lag and acknowledgements must not count what it lost).
    const common = sharedPrefix(log, a.epochs, a.lastSeq);
    p.matchSeq = common;
    p.nextSeq = common + 1;
    ship(a.from, p, { truncate: true });
  };

  const onStatus = (m: TransportMsg): void => {
    const r = dec<ReplStatusRequest>(m.data, 'ReplStatusRequest', m.subject);
    if (!r || closed) return;
    seeEpoch(r.epoch);
    const s: ReplStatus = {
      type: 'ReplStatus', from: node, ok: r.epoch >= promised && eligible, promisedEpoch: promised, lastSeq: lastSeq(), lastEpoch: lastEpoch(),
    };
    m.respond(enc(s));
  };

  const onFetch = (m: TransportMsg): void => {
    const r = dec<ReplFetch>(m.data, 'ReplFetch', m.subject);
    if (!r || closed) return;
    seeEpoch(r.epoch);
    const ok = r.epoch >= promised;
    const common = ok ? sharedPrefix(log, r.epochs, r.lastSeq) : 0;
    const reply: ReplFetchReply = { type: 'ReplFetchReply', ok, commonSeq: common, entries: ok ? log.slice(common, common + o.maxBatch) : [] };
    m.respond(enc(reply));
  };

  // ---- recovery (a newly elected primary) ----
  const better = (a: { lastEpoch: number; lastSeq: number }, b: { lastEpoch: number; lastSeq: number }): boolean =>
    a.lastEpoch > b.lastEpoch || (a.lastEpoch === b.lastEpoch && a.lastSeq > b.lastSeq);
  const stillRecovering = (epoch: number): boolean => !closed && role() === ReplicaRole.Recovering && chart.getSnapshot().context.epoch === epoch;

  async function recover(epoch: number): Promise<void> {
    const fail = (reason: string): void => {
      if (stillRecovering(epoch)) chart.send({ type: 'RECOVERY_FAILED', epoch, reason });
    };
    if (epoch < promised) {
      fail(`epoch ${epoch} is below the promised ${promised}`);
      return;
    }
    promised = epoch;
    const request: ReplStatusRequest = { type: 'ReplStatusRequest', epoch, candidate: node };
    const bytes = enc(request);
    const answers = await Promise.all(others.map(async (to) => {
      try {
        const reply = await transport.request(subject(to, 'status'), bytes, { timeoutMs: o.requestTimeoutMs });
        return dec<ReplStatus>(reply.data, 'ReplStatus', reply.subject);
      } catch {
        return undefined;
      }
    }));
    if (!stillRecovering(epoch)) return;
    for (const a of answers) if (a) seeEpoch(a.promisedEpoch);
    if (!stillRecovering(epoch)) return;
    const usable = answers.filter((a): a is ReplStatus => a !== undefined && a.ok);
    const counted = usable.length + (eligible ? 1 : 0);
    const needed = o.mode === 'sync' ? o.replicas.length - o.w : 1;
    if (counted < needed) {
      fail(`${counted} of the ${needed} replicas a recovery needs answered`);
      return;
    }
    let best: { from: string; lastEpoch: number; lastSeq: number } = { from: node, lastEpoch: lastEpoch(), lastSeq: lastSeq() };
    if (!eligible) best = { from: node, lastEpoch: -1, lastSeq: -1 };
    for (const a of usable) if (better(a, best)) best = { from: a.from, lastEpoch: a.lastEpoch, lastSeq: a.lastSeq };
    // Adopt the best log: fetch until ours ends where it ends.
    while (best.from !== node && (lastEpoch() !== best.lastEpoch || lastSeq() < best.lastSeq)) {
      const f: ReplFetch = { type: 'ReplFetch', epoch, epochs: epochs.map((e) => ({ ...e })), lastSeq: lastSeq() };
      let reply: ReplFetchReply | undefined;
      try {
        const r = await transport.request(subject(best.from, 'fetch'), enc(f), { timeoutMs: o.requestTimeoutMs });
        reply = dec<ReplFetchReply>(r.data, 'ReplFetchReply', r.subject);
      } catch {
        reply = undefined;
      }
      if (!stillRecovering(epoch)) return;
      if (!reply?.ok || (reply.entries.length === 0 && reply.commonSeq >= lastSeq())) {
        fail(`could not fetch the log of ${best.from}`);
        return;
      }
      truncate(reply.commonSeq);
      for (const e of reply.entries) append(e, 0);
    }
    eligible = true;
    caughtUpAtMs = clock.now();
    chart.send({
      type: 'RECOVERED', epoch,
      detail: `recovered: adopted the log of ${best.from} (${lastSeq()} entries); ${counted} of ${o.replicas.length} replicas answered`,
    });
    emit({ kind: 'recovered', node, epoch, adoptedFrom: best.from, lastSeq: lastSeq(), answered: counted, replicas: o.replicas.length });
  }

  // Remote writes (./client.ts): the same as `send` on this replica.
  const onWrite = (m: TransportMsg): void => {
    const w = dec<ReplWrite>(m.data, 'ReplWrite', m.subject);
    if (!w) return;
    let event: EventFromLogic<M>;
    try {
      event = JSON.parse(textDecoder.decode(w.event)) as EventFromLogic<M>;
    } catch {
      return; // not JSON: the client times out, as for any undecodable request
    }
    const answer = (r: Omit<ReplWriteReply, 'type'>): void => {
      m.respond(enc({ type: 'ReplWriteReply', ...r, primary: primaryHint ?? '' } satisfies ReplWriteReply));
    };
    api.send(event).then(
      (r) => answer({ ok: true, epoch: r.epoch, seq: r.seq, errorCode: '', errorMessage: '', primary: '' }),
      (err: unknown) => answer({
        ok: false, epoch: 0, seq: 0, errorCode: err instanceof TroupeError ? err.code : 'UNKNOWN',
        errorMessage: err instanceof Error ? err.message : String(err), primary: '',
      }),
    );
  };

  // ---- start ----
  chart.start();
  const unhost = system.host(`replica-${o.name}`, chart, { type: 'replica' });
  subs.push(transport.subscribe(subject(node, 'append'), onAppend));
  subs.push(transport.subscribe(subject(node, 'ack'), onAck));
  subs.push(transport.subscribe(subject(node, 'status'), onStatus));
  subs.push(transport.subscribe(subject(node, 'fetch'), onFetch));
  subs.push(transport.subscribe(subject(node, 'write'), onWrite));
  // Campaign once the chart runs: the callbacks drive it.
  const campaign: Campaign = options.election.campaign(o.name, {
    onElected: ({ epoch }) => {
      if (!closed) chart.send({ type: 'ELECTED', epoch });
    },
    onDeposed: ({ epoch, reason }) => {
      if (!closed) chart.send({ type: 'DEPOSED', epoch, reason: `deposed: ${reason}` });
    },
  });

  const stalenessMs = (): number => (serving() ? 0 : Math.max(0, clock.now() - caughtUpAtMs));

  const api: Replicated<M> = {
    name: o.name,
    node,
    chart,
    campaign,
    send(event) {
      if (closed || !serving()) {
        return Promise.reject(new NotPrimaryError(o.name, node, primaryHint === node ? undefined : primaryHint, closed ? 'closed' : `role ${role()}`));
      }
      const entry: Entry = { epoch: servingEpoch, seq: lastSeq() + 1, event: textEncoder.encode(JSON.stringify(event)) };
      append(entry, clock.now(), event);
      // Backups that are up to date get the same message: encode it once.
      let bytes: Uint8Array | undefined;
      for (const [to, p] of progress) {
        if (p.nextSeq !== entry.seq) continue;
        bytes ??= enc({
          type: 'ReplAppend', epoch: servingEpoch, primary: node, prevSeq: entry.seq - 1, prevEpoch: epochAt(entry.seq - 1),
          entries: [entry], primaryLastSeq: entry.seq, truncate: false,
        } satisfies ReplAppend);
        p.nextSeq = entry.seq + 1;
        publish(subject(to, 'append'), bytes);
      }
      const receipt: WriteReceipt = { epoch: entry.epoch, seq: entry.seq };
      if (o.mode === 'async') return Promise.resolve(receipt);
      return new Promise<WriteReceipt>((res, rej) => {
        const timer = clock.setTimeout(() => {
          pending.delete(entry.seq);
          rej(new WriteUnacknowledgedError(o.name, entry.seq, acksFor(entry.seq), o.w, `no acknowledgement within ${o.writeTimeoutMs} ms`));
        }, o.writeTimeoutMs);
        pending.set(entry.seq, { resolve: res, reject: rej, timer, epoch: entry.epoch });
      });
    },
    read(opts = {}) {
      const bound = opts.maxStalenessMs ?? o.maxStalenessMs;
      const s = stalenessMs();
      if (s > bound) throw new StaleReadError(o.name, node, s, bound);
      return { snapshot: actor.getSnapshot() as SnapshotFrom<M>, role: role(), seq: lastSeq(), stalenessMs: s };
    },
    status() {
      let lag: ReplicationLag | undefined;
      if (serving()) {
        const byBackup: Record<string, number> = {};
        let best = 0;
        for (const [b, p] of progress) {
          byBackup[b] = lastSeq() - p.matchSeq;
          best = Math.max(best, p.matchSeq);
        }
        const oldest = appendedAtMs[best];
        lag = { entries: lastSeq() - best, ms: oldest === undefined || oldest === 0 ? 0 : clock.now() - oldest, byBackup };
      }
      return {
        node, role: role(), epoch: promised, primary: primaryHint, lastSeq: lastSeq(), lastEpoch: lastEpoch(), lag,
        stalenessMs: stalenessMs(),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      chart.send({ type: 'STOP' });
      for (const s of subs) s.unsubscribe();
      unhost();
      await campaign.resign();
      actor.stop();
    },
  };
  return api;
}
