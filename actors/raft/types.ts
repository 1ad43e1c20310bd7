/**
 * Raft's data: log entries, the messages peers exchange, and the effects the machine emits for its
 * host (send to a peer, persist before answering, apply committed entries). Field names follow the
 * Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", §5).
 */

/** One log entry. Index 1 is the first; index 0 is the empty prefix (term 0). */
export interface Entry {
  readonly term: number;
  readonly index: number;
  /** The command, opaque to Raft (empty for the no-op a new leader appends). */
  readonly data: Uint8Array;
}

/** RequestVote (§5.2), also used for pre-vote (§9.6 of the thesis): `preVote` changes nothing on the receiver. */
export interface RequestVote {
  readonly type: 'RequestVote';
  readonly term: number;
  readonly from: string;
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly preVote: boolean;
}

export interface VoteResponse {
  readonly type: 'VoteResponse';
  readonly term: number;
  readonly from: string;
  readonly granted: boolean;
  readonly preVote: boolean;
}

/** AppendEntries (§5.3); an empty `entries` is a heartbeat. */
export interface AppendEntries {
  readonly type: 'AppendEntries';
  readonly term: number;
  readonly from: string;
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /** ReadIndex round this message confirms leadership for (echoed in the response); 0 when none. */
  readonly readSeq: number;
}

export interface AppendResponse {
  readonly type: 'AppendResponse';
  readonly term: number;
  readonly from: string;
  readonly success: boolean;
  /** On success: the index of the last entry the follower now matches. */
  readonly matchIndex: number;
  /** On failure: where the leader should retry from (the follower's hint, §5.3 optimisation). */
  readonly conflictIndex: number;
  /** The `readSeq` of the AppendEntries answered. */
  readonly readSeq: number;
}

/** Leadership transfer (thesis §3.10): the leader tells an up-to-date follower to campaign now. */
export interface TimeoutNow {
  readonly type: 'TimeoutNow';
  readonly term: number;
  readonly from: string;
}

export type RaftMessage = RequestVote | VoteResponse | AppendEntries | AppendResponse | TimeoutNow;

/** A client proposal (only a leader accepts it). */
export interface Propose {
  readonly type: 'Propose';
  readonly data: Uint8Array;
}

/** A linearizable read (ReadIndex, §6.4): answered with `raft.readReady` once leadership is confirmed. */
export interface ReadIndex {
  readonly type: 'ReadIndex';
  /** The caller's id for this read, echoed in `raft.readReady`. */
  readonly id: string;
}

/** Ask the leader to hand leadership to `to` (an up-to-date voter). */
export interface TransferLeadership {
  readonly type: 'TransferLeadership';
  readonly to: string;
}

/** Effects the machine emits; the host carries them out in order. */
export type RaftEffect =
  /** Make term, vote and these log changes durable — BEFORE any later `raft.send` of the same step. */
  | { readonly type: 'raft.persist'; readonly term: number; readonly votedFor: string | undefined; readonly truncateFrom: number | undefined; readonly append: readonly Entry[] }
  | { readonly type: 'raft.send'; readonly to: string; readonly message: RaftMessage }
  /** Entries newly committed, in order, to apply to the state machine. */
  | { readonly type: 'raft.apply'; readonly entries: readonly Entry[] }
  /**
   * The read `id` may be served from the state machine once it has applied `index`: a majority
   * confirmed this node was still the leader after the read arrived.
   */
  | { readonly type: 'raft.readReady'; readonly id: string; readonly index: number }
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
