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
import type { Entry, RaftEffect, RaftRole } from './types.ts';

export const RaftNode = defineActor({ type: 'raft-node', machine: raftMachine, messages });

/** Where a node keeps its term, vote and log. */
export interface RaftStorage {
  /** What survived the last crash (empty on first start). */
  load(): HardState;
  /** Make the change durable before returning (a synchronous store, or one whose writes are synced). */
  persist(change: Extract<RaftEffect, { type: 'raft.persist' }>): void;
}

/** In-memory storage: survives restarts of the actor, not of the process (tests, the simulator). */
export function memoryRaftStorage(): RaftStorage {
  let hard: { term: number; votedFor: string | undefined; log: Entry[] } = { term: 0, votedFor: undefined, log: [] };
  return {
    load: () => ({ term: hard.term, votedFor: hard.votedFor, log: [...hard.log] }),
    persist(change) {
      const log = change.truncateFrom !== undefined ? hard.log.slice(0, change.truncateFrom - 1) : hard.log;
      hard = { term: change.term, votedFor: change.votedFor, log: [...log, ...change.append] };
    },
  };
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
  const ref = system.spawn(RaftNode, {
    name: options.name,
    input: { config, hard: options.storage.load(), tickMs: options.tickMs ?? 10 },
    onEffect: (effect, self) => {
      const e = effect as RaftEffect;
      switch (e.type) {
        case 'raft.persist':
          options.storage.persist(e);
          return;
        case 'raft.send':
          system.deliver(e.to, e.message, self.address);
          return;
        case 'raft.apply':
          options.onApply?.(e.entries);
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
