/**
 * A Raft node hosted as a troupe actor: the chart (machine.ts) runs in a supervised cell, ticks on
 * the system's clock, and talks to its peers — other Raft node actors, named by address — through
 * the system's `deliver()` (in-process, over NATS, or on the simulated network). Its effects are
 * carried out in emission order: `raft.persist` reaches storage before the `raft.send` that follows it.
 */
import type { ActorRef, ActorSystem } from '../../framework/index.ts';
import { defineActor, NotLeaderError } from '../../framework/index.ts';
import type { Rng } from '../../framework/clock.ts';
import type { HardState, RaftConfig } from './core.ts';
import { raftMachine } from './machine.ts';
import { messages } from './raft.pb.ts';
import type { Entry, RaftEffect, RaftRole, Snapshot } from './types.ts';

export const RaftNode = defineActor({ type: 'raft-node', machine: raftMachine, messages });

/** A `raft.persist` change: term and vote, then snapshot, truncation and appended entries, in that order. */
export type PersistChange = Extract<RaftEffect, { type: 'raft.persist' }>;

/** Where a node keeps its term, vote, snapshot and log. */
export interface RaftStorage {
  /** What survived the last crash (empty on first start). */
  load(): HardState;
  /** Make the change durable before returning (a synchronous store, or one whose writes are synced). */
  persist(change: PersistChange): void;
}

/** The hard state after `change` (the order of `raft.persist`: snapshot, truncation, append). */
export function applyPersist(hard: HardState, change: Omit<PersistChange, 'type'>): HardState {
  const snapshot = change.snapshot ?? hard.snapshot;
  let log = change.snapshot ? hard.log.filter((e) => e.index > change.snapshot!.index) : hard.log;
  if (change.truncateFrom !== undefined) log = log.filter((e) => e.index < change.truncateFrom!);
  return { term: change.term, votedFor: change.votedFor, snapshot, log: change.append.length > 0 ? log.concat(change.append) : log };
}

/** In-memory storage: survives restarts of the actor, not of the process (tests, the simulator). */
export function memoryRaftStorage(): RaftStorage {
  let hard: HardState = { term: 0, votedFor: undefined, log: [] };
  return {
    load: () => ({ ...hard, log: [...hard.log] }),
    persist(change) {
      hard = applyPersist(hard, change);
    },
  };
}

/**
 * Log compaction for a node: every `everyEntries` applied entries the node asks the state machine
 * for its state (`take`) and keeps it as its snapshot, dropping the log up to there. `restore`
 * replaces the state machine's state — on start from a stored snapshot and when a leader installs
 * one. Every node of a group needs it once any node compacts.
 */
export interface RaftSnapshotOptions {
  /** @default 10_000 */
  everyEntries?: number;
  /** The state machine's state, having applied every entry so far (as `onApply` delivered them). */
  take(): Uint8Array;
  /** Replace the state machine's state with `data` (taken at `index` by `take`, maybe on another node). */
  restore(data: Uint8Array, index: number): void;
}

export interface RaftNodeOptions {
  /** Actor name on this system; the node's id is its address `node/name`. */
  name: string;
  /** Addresses of every voter, this node's included. */
  voters: readonly string[];
  /** One logical tick every `tickMs` of the system's clock. @default 10 */
  tickMs?: number;
  /** Election timeout in ticks: uniform in [electionTicks, 2·electionTicks). @default 15 (150–300 ms at 10 ms ticks) */
  electionTicks?: number;
  /** @default 5 */
  heartbeatTicks?: number;
  /** @default true */
  preVote?: boolean;
  /** @default true */
  checkQuorum?: boolean;
  /** @default 64 */
  maxBatch?: number;
  /** Seeded randomness for election timeouts. */
  rng: Rng;
  storage: RaftStorage;
  /** Committed entries, in order, exactly once per incarnation (no-ops included: `data` is empty). */
  onApply?: (entries: readonly Entry[]) => void;
  onRole?: (role: RaftRole, term: number, leader: string | undefined) => void;
  onChangeRejected?: (reason: string) => void;
  /** Log compaction and snapshot restore; without it the log grows without bound. */
  snapshots?: RaftSnapshotOptions;
}

export interface RaftNodeHandle {
  readonly ref: ActorRef;
  readonly id: string;
  /** Propose a command (accepted only by the leader; otherwise `onApply` never sees it — retry elsewhere). */
  propose(data: Uint8Array): void;
  /** A linearizable read barrier: resolves with the index the state machine must have applied before reading. */
  readIndex(): Promise<number>;
  transferLeadership(to: string): void;
  /** Add or remove one voter (the leader refuses while another change is uncommitted: `onChangeRejected`). */
  changeMembership(change: { add: string } | { remove: string }): void;
  role(): RaftRole;
  term(): number;
  leader(): string | undefined;
}

/** Spawn a Raft node on `system`. */
export function startRaftNode(system: ActorSystem, options: RaftNodeOptions): RaftNodeHandle {
  const id = `${system.node}/${options.name}`;
  const config: RaftConfig = {
    id, voters: options.voters, electionTicks: options.electionTicks ?? 15, heartbeatTicks: options.heartbeatTicks ?? 5,
    preVote: options.preVote ?? true, checkQuorum: options.checkQuorum ?? true, maxBatch: options.maxBatch ?? 64,
    random: () => options.rng.next(),
  };
  const reads = new Map<string, { resolve(index: number): void; reject(err: Error): void }>();
  let readSeq = 0;
  let role: RaftRole = 'follower';
  let term = 0;
  let leader: string | undefined;
  const hard = options.storage.load();
  const snapshots = options.snapshots;
  const everyEntries = snapshots?.everyEntries ?? 10_000;
  if (!Number.isInteger(everyEntries) || everyEntries < 1) throw new RangeError(`snapshots.everyEntries must be a positive integer, got ${String(everyEntries)}`);
  const restore = (snapshot: Snapshot): void => {
    if (!snapshots) throw new TypeError(`raft node ${id} received a snapshot but was started without the 'snapshots' option (give every node of the group the same options)`);
    snapshots.restore(snapshot.data, snapshot.index);
  };
  let compactedAt = hard.snapshot?.index ?? 0;
  if (hard.snapshot) restore(hard.snapshot);
  const ref = system.spawn(RaftNode, {
    name: options.name,
    input: { config, hard, tickMs: options.tickMs ?? 10 },
    onEffect: (effect, self) => {
      const e = effect as RaftEffect;
      switch (e.type) {
        case 'raft.persist':
          options.storage.persist(e);
          return;
        case 'raft.send':
          system.deliver(e.to, e.message, self.address);
          return;
        case 'raft.apply': {
          options.onApply?.(e.entries);
          const applied = e.entries[e.entries.length - 1]?.index ?? compactedAt;
          if (snapshots && applied - compactedAt >= everyEntries) {
            compactedAt = applied;
            self.send({ type: 'Compact', index: applied, data: snapshots.take() });
          }
          return;
        }
        case 'raft.restore':
          restore(e.snapshot);
          compactedAt = e.snapshot.index;
          return;
        case 'raft.readReady':
          reads.get(e.id)?.resolve(e.index);
          reads.delete(e.id);
          return;
        case 'raft.notLeader':
          if (e.readId !== undefined) {
            reads.get(e.readId)?.reject(new NotLeaderError(id, e.leader));
            reads.delete(e.readId);
          }
          return;
        case 'raft.changeRejected':
          options.onChangeRejected?.(e.reason);
          return;
        case 'raft.role':
          role = e.role;
          term = e.term;
          leader = e.leader;
          options.onRole?.(e.role, e.term, e.leader);
          return;
      }
    },
  });
  return {
    ref,
    id,
    propose: (data) => ref.send({ type: 'Propose', data }),
    readIndex: () => new Promise<number>((resolve, reject) => {
      const rid = `${id}#${++readSeq}`;
      reads.set(rid, { resolve, reject });
      ref.send({ type: 'ReadIndex', id: rid });
    }),
    transferLeadership: (to) => ref.send({ type: 'TransferLeadership', to }),
    changeMembership: (change) => ref.send({ type: 'ChangeMembership', add: 'add' in change ? change.add : '', remove: 'remove' in change ? change.remove : '' }),
    role: () => role,
    term: () => term,
    leader: () => leader,
  };
}
