/**
 * Raft's data: log entries, the messages peers exchange, and the effects the machine emits for its
 * host (send to a peer, persist before answering, apply committed entries). Field names follow the
 * Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", §5).
 */

import type * as wire from './raft.pb.ts';

// The message types are generated from raft.proto (the wire schema) — never written twice.

/** One log entry. Index 1 is the first; index 0 is the empty prefix (term 0). */
export type Entry = Omit<wire.Entry, 'type'>;
/** RequestVote (§5.2), also used for pre-vote (thesis §9.6): `preVote` changes nothing on the receiver. */
export type RequestVote = wire.RequestVote;
export type VoteResponse = wire.VoteResponse;
/** AppendEntries (§5.3); empty `entries` is a heartbeat; `readSeq` is the ReadIndex round it confirms. */
export type AppendEntries = wire.AppendEntries;
/** On success `matchIndex` is the follower's last matching index; on failure `conflictIndex` is where to retry. */
export type AppendResponse = wire.AppendResponse;
/** Leadership transfer (thesis §3.10): the leader tells an up-to-date follower to campaign now. */
export type TimeoutNow = wire.TimeoutNow;
/** The state machine as of `index`, standing in for the log up to there (§7). */
export type Snapshot = Omit<wire.Snapshot, 'type'>;
/** A leader's snapshot for a follower that lags behind the leader's compacted log (§7). */
export type InstallSnapshot = wire.InstallSnapshot;
export type RaftMessage = RequestVote | VoteResponse | AppendEntries | AppendResponse | TimeoutNow | InstallSnapshot;
/** From the host to its own node: keep `data` (the state machine at applied `index`) as the snapshot, drop the log up to it. */
export type Compact = wire.Compact;
/** A client proposal (only a leader accepts it). */
export type Propose = wire.Propose;
/** A linearizable read (ReadIndex, §6.4): answered with `raft.readReady` once leadership is confirmed. */
export type ReadIndex = wire.ReadIndex;
/** Ask the leader to hand leadership to `to` (an up-to-date voter). */
export type TransferLeadership = wire.TransferLeadership;
/** Add or remove one voter (single-server membership change, thesis §4.1). */
export type ChangeMembership = wire.ChangeMembership;

/** Effects the machine emits; the host carries them out in order. */
export type RaftEffect =
  /**
   * Make term, vote and these log changes durable — BEFORE any later `raft.send` of the same step.
   * Apply in this order: keep `snapshot` (when set) and drop the entries up to its index; drop the
   * entries from `truncateFrom` on; append `append`.
   */
  | {
    readonly type: 'raft.persist'; readonly term: number; readonly votedFor: string | undefined;
    readonly snapshot?: Snapshot; readonly truncateFrom: number | undefined; readonly append: readonly Entry[];
  }
  | { readonly type: 'raft.send'; readonly to: string; readonly message: RaftMessage }
  /** Replace the state machine with this snapshot's (a leader's snapshot was installed); later applies follow on from its index. */
  | { readonly type: 'raft.restore'; readonly snapshot: Snapshot }
  /** Entries newly committed, in order, to apply to the state machine. */
  | { readonly type: 'raft.apply'; readonly entries: readonly Entry[] }
  /**
   * The read `id` may be served from the state machine once it has applied `index`: a majority
   * confirmed this node was still the leader after the read arrived.
   */
  | { readonly type: 'raft.readReady'; readonly id: string; readonly index: number }
  /** A membership change was refused (another is not yet committed, or it would change nothing). */
  | { readonly type: 'raft.changeRejected'; readonly reason: string }
  /** A proposal or read was rejected because this node is not the leader (hint: who is, if known). */
  | { readonly type: 'raft.notLeader'; readonly leader: string | undefined; readonly readId?: string }
  /** The role changed (for observers and invariant checks). */
  | { readonly type: 'raft.role'; readonly role: RaftRole; readonly term: number; readonly leader: string | undefined };

export const RaftRole = {
  Follower: 'follower',
  PreCandidate: 'preCandidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type RaftRole = (typeof RaftRole)[keyof typeof RaftRole];
