/**
 * Raft's rules as a pure step function, etcd-style: `step(state, input) → { state, effects }`.
 * Time arrives as `Tick` inputs (the host ticks every `tickMs`), randomness as a seeded `random()`
 * in the config, so the same inputs always give the same outputs — the simulator and the paper
 * tests rely on it. The state chart (machine.ts) hosts this function and shows the role.
 *
 * Implemented: leader election with randomized timeouts (§5.2) and pre-vote (thesis §9.6), terms
 * and votes persisted before any answer (the `raft.persist` effect comes first), AppendEntries with
 * the consistency check and conflict truncation (§5.3), commit only of current-term entries by
 * majority match (§5.4.2, Figure 8), a no-op entry on election, in-order apply, check-quorum (a
 * leader that has not heard from a majority for an election timeout steps down), batched and
 * pipelined replication (up to `maxBatch` entries per AppendEntries, `nextIndex` advanced
 * optimistically), linearizable reads through ReadIndex (§6.4: a read is ready once a majority
 * confirmed leadership after it arrived and the leader has committed an entry of its term), and
 * leadership transfer (thesis §3.10: bring the target up to date, then `TimeoutNow`), and
 * single-server membership changes (thesis §4.1: a configuration entry takes effect as soon as it
 * is in the log, one change at a time; a removed leader steps down once the change commits), and
 * log compaction (§7: the host hands in a snapshot of its state machine with `Compact`; the log up
 * to it is dropped, and a follower that needs dropped entries gets the snapshot by `InstallSnapshot`).
 */
import type {
  AppendEntries, AppendResponse, ChangeMembership, Compact, Entry, InstallSnapshot, Propose, RaftEffect, RaftMessage, RaftRole,
  ReadIndex, RequestVote, Snapshot, TransferLeadership, VoteResponse,
} from './types.ts';

export interface RaftConfig {
  readonly id: string;
  /** The initial voters (this node included); configuration entries in the log override them. */
  readonly voters: readonly string[];
  /** Election timeout is uniform in [electionTicks, 2·electionTicks) ticks. */
  readonly electionTicks: number;
  /** A leader sends heartbeats every `heartbeatTicks` ticks. */
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Most entries per AppendEntries. */
  readonly maxBatch: number;
  /** Seeded randomness in [0, 1). */
  readonly random: () => number;
  /**
   * Unacknowledged entry-carrying AppendEntries per follower; proposals arriving meanwhile wait and
   * go out together in the next batch (flow control that turns load into batching). @default 2
   */
  readonly maxInflight?: number;
  /**
   * Opt-in lease reads: a leader that has heard from a majority within the current check-quorum
   * window answers a read at once, without a confirmation round. Safe only while clocks run at
   * roughly the same rate (a deposed leader could otherwise serve a stale read) and with
   * `checkQuorum` on. @default false
   */
  readonly leaseReads?: boolean;
}

export interface RaftState {
  /** The voters in effect: those of the last configuration entry in the log, else the initial ones. */
  readonly voters: readonly string[];
  readonly role: RaftRole;
  readonly term: number;
  readonly votedFor: string | undefined;
  /** The latest snapshot: it stands in for every entry up to its index. */
  readonly snapshot: Snapshot | undefined;
  /** The entries after the snapshot: log[i - snapshotIndex - 1] is entry i (see `entryAt`). */
  readonly log: readonly Entry[];
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly leader: string | undefined;
  /** Votes (or pre-votes) granted in the current election, this node's included. */
  readonly votes: readonly string[];
  readonly nextIndex: Readonly<Record<string, number>>;
  readonly matchIndex: Readonly<Record<string, number>>;
  /** Entry-carrying AppendEntries in flight per follower (leader). */
  readonly inflight: Readonly<Record<string, number>>;
  /** Ticks since the last reset of the election (or check-quorum) timer. */
  readonly elapsed: number;
  readonly heartbeatElapsed: number;
  /** This election's randomized timeout, in ticks. */
  readonly timeoutTicks: number;
  /** Peers heard from since the last check-quorum (leader). */
  readonly active: readonly string[];
  /** Last ReadIndex round issued (leader). */
  readonly readSeq: number;
  /** Highest read round each peer has answered (leader). */
  readonly readAcks: Readonly<Record<string, number>>;
  /** Reads waiting for confirmation; `seq` 0 = waiting for the first commit of this term. */
  readonly pendingReads: ReadonlyArray<{ readonly id: string; readonly index: number; readonly seq: number }>;
  /** Leadership being handed to this voter (leader), and ticks since it started. */
  readonly transferTo: string | undefined;
  readonly transferElapsed: number;
}

export type RaftInput = RaftMessage | Propose | ReadIndex | TransferLeadership | ChangeMembership | Compact | { readonly type: 'Tick' };

export interface StepResult {
  readonly state: RaftState;
  readonly effects: readonly RaftEffect[];
}

/** Durable state a node restarts from: the host restores its state machine from `snapshot` first. */
export interface HardState {
  readonly term: number;
  readonly votedFor: string | undefined;
  readonly snapshot?: Snapshot | undefined;
  /** The entries after the snapshot (or from index 1). */
  readonly log: readonly Entry[];
}

const randomTimeout = (c: RaftConfig): number => c.electionTicks + Math.floor(c.random() * c.electionTicks);

/** The voters of the last configuration entry of `log`, else the snapshot's, else `initial`. */
function votersIn(log: readonly Entry[], snapshot: Snapshot | undefined, initial: readonly string[]): readonly string[] {
  for (let i = log.length - 1; i >= 0; i--) {
    const m = log[i]!.membership;
    if (m) return m.voters;
  }
  return snapshot && snapshot.voters.length > 0 ? snapshot.voters : initial;
}

/** Index of the last configuration entry still in the log (0 when none: the snapshot's is committed). */
function lastConfigIndex(s: RaftState): number {
  for (let i = s.log.length - 1; i >= 0; i--) if (s.log[i]!.membership) return s.log[i]!.index;
  return 0;
}

/**
 * The state of a node starting (or restarting) from `hard`. Commit index is volatile: it restarts
 * at the snapshot's index (0 without one), and entries after it are applied again as they commit.
 */
export function initialState(config: RaftConfig, hard: HardState = { term: 0, votedFor: undefined, log: [] }): RaftState {
  const base = hard.snapshot?.index ?? 0;
  return {
    voters: votersIn(hard.log, hard.snapshot, config.voters), snapshot: hard.snapshot,
    role: 'follower', term: hard.term, votedFor: hard.votedFor, log: hard.log, commitIndex: base, lastApplied: base,
    leader: undefined, votes: [], nextIndex: {}, matchIndex: {}, inflight: {}, elapsed: 0, heartbeatElapsed: 0,
    timeoutTicks: randomTimeout(config), active: [], readSeq: 0, readAcks: {}, pendingReads: [], transferTo: undefined, transferElapsed: 0,
  };
}

/** Index of the last entry covered by the snapshot (0 without one). */
export const snapshotIndex = (s: RaftState): number => s.snapshot?.index ?? 0;
export const lastIndex = (s: RaftState): number => snapshotIndex(s) + s.log.length;
/** Entry `index`, or undefined when it is beyond the log or compacted into the snapshot. */
export const entryAt = (s: RaftState, index: number): Entry | undefined => s.log[index - snapshotIndex(s) - 1];
/** The term of entry `index`: 0 for index 0, the snapshot's term at its index, -1 when unknown (compacted or beyond the log). */
export function termAt(s: RaftState, index: number): number {
  if (index === 0) return 0;
  const base = snapshotIndex(s);
  if (index === base) return s.snapshot!.term;
  return index < base ? -1 : (s.log[index - base - 1]?.term ?? -1);
}
/** Entries with index in [from, to) that are still in the log. */
const entriesBetween = (s: RaftState, from: number, to: number): Entry[] => {
  const base = snapshotIndex(s);
  return s.log.slice(Math.max(0, from - base - 1), Math.max(0, to - base - 1));
};
const lastTerm = (s: RaftState): number => termAt(s, lastIndex(s));
const quorumOf = (s: RaftState): number => Math.floor(s.voters.length / 2) + 1;
const peersOf = (s: RaftState, c: RaftConfig): string[] => s.voters.filter((v) => v !== c.id);

/** A step in progress: state plus the effects so far. Persisting is folded into one effect per step. */
class Step {
  effects: RaftEffect[] = [];
  private persist: { snapshot: Snapshot | undefined; truncateFrom: number | undefined; append: Entry[] } | undefined;
  private persistAt = -1;
  /** Whether `s` is this step's own copy (the input state is never changed). */
  private owned = false;
  constructor(public s: RaftState, readonly c: RaftConfig) {}

  set(patch: Partial<RaftState>): void {
    if (this.owned) {
      Object.assign(this.s, patch);
    } else {
      this.s = { ...this.s, ...patch };
      this.owned = true;
    }
  }

  /** Term/vote/log changed: one persist effect, placed before any send that follows it. */
  durable(truncateFrom?: number, append: readonly Entry[] = [], snapshot?: Snapshot): void {
    if (!this.persist) {
      this.persist = { snapshot, truncateFrom, append: [...append] };
      this.persistAt = this.effects.length;
      this.effects.push({ type: 'raft.persist', term: 0, votedFor: undefined, truncateFrom, append: [] }); // filled in finish()
      return;
    }
    if (snapshot) {
      // a snapshot replaces what it covers, including what this step meant to append up to it
      this.persist.snapshot = snapshot;
      this.persist.append = this.persist.append.filter((e) => e.index > snapshot.index);
      if (this.persist.truncateFrom !== undefined && this.persist.truncateFrom <= snapshot.index) this.persist.truncateFrom = undefined;
    }
    if (truncateFrom !== undefined) {
      const base = this.persist.truncateFrom;
      this.persist.truncateFrom = base === undefined ? truncateFrom : Math.min(base, truncateFrom);
      this.persist.append = this.persist.append.filter((e) => e.index < truncateFrom);
    }
    this.persist.append.push(...append);
  }

  send(to: string, message: RaftMessage): void {
    this.effects.push({ type: 'raft.send', to, message });
  }

  finish(): StepResult {
    if (this.persist) {
      this.effects[this.persistAt] = {
        type: 'raft.persist', term: this.s.term, votedFor: this.s.votedFor,
        ...(this.persist.snapshot ? { snapshot: this.persist.snapshot } : {}),
        truncateFrom: this.persist.truncateFrom, append: this.persist.append,
      };
    }
    return { state: this.s, effects: this.effects };
  }
}

function becomeFollower(st: Step, term: number, leader: string | undefined): void {
  const changed = term !== st.s.term;
  const wasRole = st.s.role;
  for (const r of st.s.pendingReads) st.effects.push({ type: 'raft.notLeader', leader, readId: r.id });
  st.set({ pendingReads: [], readAcks: {}, transferTo: undefined, transferElapsed: 0 });
  st.set({
    role: 'follower', term, votedFor: changed ? undefined : st.s.votedFor, leader, votes: [], elapsed: 0,
    timeoutTicks: randomTimeout(st.c), active: [],
  });
  if (changed) st.durable();
  if (changed || wasRole !== 'follower' || leader !== undefined) st.effects.push({ type: 'raft.role', role: 'follower', term, leader });
}

function campaign(st: Step, preVote: boolean): void {
  const { c } = st;
  if (preVote) {
    st.set({ role: 'preCandidate', votes: [c.id], elapsed: 0, timeoutTicks: randomTimeout(c), leader: undefined });
  } else {
    st.set({ role: 'candidate', term: st.s.term + 1, votedFor: c.id, votes: [c.id], elapsed: 0, timeoutTicks: randomTimeout(c), leader: undefined });
    st.durable();
  }
  st.effects.push({ type: 'raft.role', role: st.s.role, term: st.s.term, leader: undefined });
  if (st.s.votes.length >= quorumOf(st.s)) {
    if (preVote) campaign(st, false);
    else becomeLeader(st);
    return;
  }
  for (const p of peersOf(st.s, c)) {
    st.send(p, {
      type: 'RequestVote', term: preVote ? st.s.term + 1 : st.s.term, from: c.id,
      lastLogIndex: lastIndex(st.s), lastLogTerm: lastTerm(st.s), preVote,
    });
  }
}

function becomeLeader(st: Step): void {
  const { c } = st;
  const next: Record<string, number> = {};
  const match: Record<string, number> = {};
  for (const p of peersOf(st.s, c)) {
    next[p] = lastIndex(st.s) + 1;
    match[p] = 0;
  }
  // A no-op in the new term lets entries of earlier terms commit (§5.4.2, §8).
  const noop: Entry = { term: st.s.term, index: lastIndex(st.s) + 1, data: new Uint8Array(0) };
  st.set({ role: 'leader', leader: c.id, nextIndex: next, matchIndex: match, inflight: {}, log: [...st.s.log, noop], heartbeatElapsed: 0, elapsed: 0, active: [] });
  st.durable(undefined, [noop]);
  st.effects.push({ type: 'raft.role', role: 'leader', term: st.s.term, leader: c.id });
  advanceCommit(st);
  for (const p of peersOf(st.s, c)) replicate(st, p);
}

/**
 * Send `peer` what it lacks, from nextIndex (pipelined: nextIndex moves on optimistically), unless
 * its window of unacknowledged batches is full — then the entries wait for the next acknowledgement
 * and leave together. A heartbeat goes out regardless.
 */
function replicate(st: Step, peer: string, heartbeatOnly = false): void {
  const next = st.s.nextIndex[peer] ?? lastIndex(st.s) + 1;
  const prev = next - 1;
  const windowFull = (st.s.inflight[peer] ?? 0) >= (st.c.maxInflight ?? 2);
  if (!heartbeatOnly && windowFull) return;
  if (st.s.snapshot && prev < st.s.snapshot.index) {
    // the follower needs entries compacted away: send the snapshot instead (once per window slot)
    if (windowFull) return;
    st.send(peer, { type: 'InstallSnapshot', term: st.s.term, from: st.c.id, snapshot: st.s.snapshot, readSeq: st.s.readSeq });
    st.set({ nextIndex: { ...st.s.nextIndex, [peer]: st.s.snapshot.index + 1 }, inflight: { ...st.s.inflight, [peer]: (st.s.inflight[peer] ?? 0) + 1 } });
    return;
  }
  const entries = heartbeatOnly ? [] : entriesBetween(st.s, next, next + st.c.maxBatch);
  st.send(peer, {
    type: 'AppendEntries', term: st.s.term, from: st.c.id, prevLogIndex: prev, prevLogTerm: termAt(st.s, prev),
    entries, leaderCommit: st.s.commitIndex, readSeq: st.s.readSeq,
  });
  if (entries.length > 0) {
    st.set({ nextIndex: { ...st.s.nextIndex, [peer]: next + entries.length }, inflight: { ...st.s.inflight, [peer]: (st.s.inflight[peer] ?? 0) + 1 } });
  }
}

/** Leader: commit the highest index a majority matches, if its entry is of the current term (Figure 8). */
function advanceCommit(st: Step): void {
  const { c, s } = st;
  if (s.role !== 'leader') return;
  const matches = s.voters.map((v) => (v === c.id ? lastIndex(s) : (s.matchIndex[v] ?? 0))).sort((a, b) => b - a);
  const n = matches[quorumOf(st.s) - 1]!;
  if (n > s.commitIndex && termAt(s, n) === s.term) {
    st.set({ commitIndex: n });
    apply(st);
    if (!st.s.voters.includes(c.id) && lastConfigIndex(st.s) <= n) {
      // removed from the group and the change is committed: hand over by stepping down
      becomeFollower(st, st.s.term, undefined);
      return;
    }
    // reads that waited for this term's first commit can start their confirmation round
    if (st.s.pendingReads.some((r) => r.seq === 0)) {
      const seq = st.s.readSeq + 1;
      st.set({ readSeq: seq, pendingReads: st.s.pendingReads.map((r) => (r.seq === 0 ? { ...r, index: n, seq } : r)) });
      for (const p of peersOf(st.s, c)) replicate(st, p, (st.s.nextIndex[p] ?? 0) > lastIndex(st.s));
      confirmReads(st);
    }
  }
}

/** Serve reads whose round a majority has answered. */
function confirmReads(st: Step): void {
  const { s, c } = st;
  if (s.pendingReads.length === 0) return;
  const ready: Array<{ id: string; index: number }> = [];
  const waiting = s.pendingReads.filter((r) => {
    if (r.seq === 0) return true;
    const acks = 1 + peersOf(st.s, c).filter((p) => (s.readAcks[p] ?? 0) >= r.seq).length;
    if (acks < quorumOf(st.s)) return true;
    ready.push(r);
    return false;
  });
  if (ready.length === 0) return;
  st.set({ pendingReads: waiting });
  for (const r of ready) st.effects.push({ type: 'raft.readReady', id: r.id, index: r.index });
}

function apply(st: Step): void {
  const { s } = st;
  if (s.commitIndex <= s.lastApplied) return;
  const entries = entriesBetween(s, s.lastApplied + 1, s.commitIndex + 1);
  st.set({ lastApplied: s.commitIndex });
  st.effects.push({ type: 'raft.apply', entries });
}

function onRequestVote(st: Step, m: RequestVote): void {
  const { s, c } = st;
  const upToDate = m.lastLogTerm > lastTerm(s) || (m.lastLogTerm === lastTerm(s) && m.lastLogIndex >= lastIndex(s));
  if (m.preVote) {
    // Grant a pre-vote only to a term ahead with an up-to-date log, and only when we have not heard
    // from a leader within the election timeout (so a rejoining node cannot disrupt a live leader).
    const leaderAlive = s.leader !== undefined && s.elapsed < c.electionTicks;
    const granted = m.term > s.term && upToDate && !leaderAlive;
    st.send(m.from, { type: 'VoteResponse', term: granted ? m.term : s.term, from: c.id, granted, preVote: true });
    return;
  }
  const granted = m.term === s.term && upToDate && (s.votedFor === undefined || s.votedFor === m.from);
  if (granted && s.votedFor !== m.from) {
    st.set({ votedFor: m.from, elapsed: 0 });
    st.durable(); // the vote is durable before the answer leaves (§5.2, Figure 2)
  } else if (granted) {
    st.set({ elapsed: 0 });
  }
  st.send(m.from, { type: 'VoteResponse', term: s.term, from: c.id, granted, preVote: false });
}

function onVoteResponse(st: Step, m: VoteResponse): void {
  const { s } = st;
  const wanted = m.preVote ? s.role === 'preCandidate' && m.term === s.term + 1 : s.role === 'candidate' && m.term === s.term;
  if (!wanted || !m.granted || s.votes.includes(m.from)) return;
  st.set({ votes: [...s.votes, m.from] });
  if (st.s.votes.length < quorumOf(st.s)) return;
  if (m.preVote) campaign(st, false);
  else becomeLeader(st);
}

function onAppendEntries(st: Step, m: AppendEntries): void {
  const { c } = st;
  // m.term === current term here: a valid leader for this term
  if (st.s.role !== 'follower' || st.s.leader !== m.from) becomeFollower(st, m.term, m.from);
  st.set({ elapsed: 0, leader: m.from });
  const s = st.s;
  const base = snapshotIndex(s);
  // Entries up to our snapshot are committed, so they match the leader's (§5.4): the consistency
  // check starts at the snapshot.
  let prevIndex = m.prevLogIndex;
  let prevTerm = m.prevLogTerm;
  let incoming: readonly Entry[] = m.entries;
  if (prevIndex < base) {
    incoming = m.entries.filter((e) => e.index > base);
    prevIndex = base;
    prevTerm = termAt(s, base);
  }
  if (prevIndex > lastIndex(s) || termAt(s, prevIndex) !== prevTerm) {
    // Log-consistency check failed (§5.3): hint where to retry — the end of our log, or the first
    // index of the conflicting term.
    let hint = Math.min(prevIndex, lastIndex(s) + 1);
    if (prevIndex <= lastIndex(s)) {
      const t = termAt(s, prevIndex);
      while (hint > base + 1 && termAt(s, hint - 1) === t) hint--;
    }
    st.send(m.from, { type: 'AppendResponse', term: s.term, from: c.id, success: false, matchIndex: 0, conflictIndex: Math.max(1, hint), readSeq: m.readSeq });
    return;
  }
  // Append what is new; truncate at the first conflict (§5.3, rule 3) — never truncate committed entries.
  let kept = s.log;
  let truncateFrom: number | undefined;
  const appended: Entry[] = [];
  for (const e of incoming) {
    const at = e.index - base - 1;
    if (appended.length === 0 && at < kept.length) {
      if (kept[at]!.term === e.term) continue;
      truncateFrom = e.index;
      kept = kept.slice(0, at);
    }
    appended.push(e);
  }
  if (appended.length > 0) {
    const log = kept.concat(appended);
    // a configuration entry takes effect as soon as it is in the log (and is undone if truncated)
    const newest = [...appended].reverse().find((e) => e.membership);
    const voters = newest?.membership ? newest.membership.voters : truncateFrom !== undefined ? votersIn(log, s.snapshot, c.voters) : st.s.voters;
    st.set({ log, voters });
    st.durable(truncateFrom, appended);
  }
  const matchIndex = m.prevLogIndex + m.entries.length;
  // commit what the leader committed, as far as this message proves we hold it — never backwards
  // (a reordered, older AppendEntries proves less than we already know)
  const commit = Math.min(m.leaderCommit, matchIndex);
  if (commit > st.s.commitIndex) {
    st.set({ commitIndex: commit });
    apply(st);
  }
  st.send(m.from, { type: 'AppendResponse', term: st.s.term, from: c.id, success: true, matchIndex, conflictIndex: 0, readSeq: m.readSeq });
}

/**
 * InstallSnapshot (§7): take the leader's snapshot unless we already committed past it; keep the
 * log after it only when it agrees with the snapshot's last entry. Answered like AppendEntries.
 */
function onInstallSnapshot(st: Step, m: InstallSnapshot): void {
  const { c } = st;
  if (st.s.role !== 'follower' || st.s.leader !== m.from) becomeFollower(st, m.term, m.from);
  st.set({ elapsed: 0, leader: m.from });
  const snap = m.snapshot;
  if (!snap) return;
  const s = st.s;
  let matchIndex = s.commitIndex;
  if (snap.index > s.commitIndex) {
    const agrees = termAt(s, snap.index) === snap.term;
    const log = agrees ? entriesBetween(s, snap.index + 1, lastIndex(s) + 1) : [];
    const snapshot: Snapshot = { index: snap.index, term: snap.term, voters: [...snap.voters], data: snap.data };
    st.set({ snapshot, log, commitIndex: snap.index, lastApplied: snap.index, voters: votersIn(log, snapshot, c.voters) });
    st.durable(agrees ? undefined : snap.index + 1, [], snapshot);
    st.effects.push({ type: 'raft.restore', snapshot });
    matchIndex = snap.index;
  }
  st.send(m.from, { type: 'AppendResponse', term: st.s.term, from: c.id, success: true, matchIndex, conflictIndex: 0, readSeq: m.readSeq });
}

/** The host's snapshot of its state machine at applied `index`: keep it, drop the log up to there. */
function onCompact(st: Step, m: Compact): void {
  const s = st.s;
  const base = snapshotIndex(s);
  if (m.index <= base || m.index > s.lastApplied) return; // stale, or not applied yet: the data cannot be of that index
  const upTo = entriesBetween(s, base + 1, m.index + 1);
  const snapshot: Snapshot = { index: m.index, term: termAt(s, m.index), voters: [...votersIn(upTo, s.snapshot, st.c.voters)], data: m.data };
  st.set({ snapshot, log: entriesBetween(s, m.index + 1, lastIndex(s) + 1) });
  st.durable(undefined, [], snapshot);
}

function onAppendResponse(st: Step, m: AppendResponse): void {
  const { s } = st;
  if (s.role !== 'leader') return;
  if (!s.active.includes(m.from)) st.set({ active: [...s.active, m.from] });
  // any answer in this term confirms our leadership for the read rounds it covers
  if (m.readSeq > (s.readAcks[m.from] ?? 0)) {
    st.set({ readAcks: { ...s.readAcks, [m.from]: m.readSeq } });
    confirmReads(st);
  }
  // an answer frees a slot of the follower's window
  if ((st.s.inflight[m.from] ?? 0) > 0) st.set({ inflight: { ...st.s.inflight, [m.from]: st.s.inflight[m.from]! - 1 } });
  if (m.success) {
    const match = Math.max(s.matchIndex[m.from] ?? 0, m.matchIndex);
    const next = Math.max(st.s.nextIndex[m.from] ?? 1, match + 1);
    st.set({ matchIndex: { ...st.s.matchIndex, [m.from]: match }, nextIndex: { ...st.s.nextIndex, [m.from]: next } });
    advanceCommit(st);
    if (st.s.transferTo === m.from && match === lastIndex(st.s)) {
      st.send(m.from, { type: 'TimeoutNow', term: st.s.term, from: st.c.id });
    } else if (next <= lastIndex(st.s)) replicate(st, m.from);
    return;
  }
  // Back off to the follower's hint and retry at once (what was in flight after it is void).
  st.set({
    nextIndex: { ...st.s.nextIndex, [m.from]: Math.max(1, Math.min(m.conflictIndex, lastIndex(st.s) + 1)) },
    inflight: { ...st.s.inflight, [m.from]: 0 },
  });
  replicate(st, m.from);
}

function onTick(st: Step): void {
  const { c } = st;
  const s = st.s;
  if (s.role === 'leader') {
    const heartbeatElapsed = s.heartbeatElapsed + 1;
    const elapsed = s.elapsed + 1;
    st.set({ heartbeatElapsed, elapsed });
    if (s.transferTo !== undefined) {
      // a transfer that has not happened within an election timeout is abandoned
      if (s.transferElapsed + 1 >= c.electionTicks) st.set({ transferTo: undefined, transferElapsed: 0 });
      else st.set({ transferElapsed: s.transferElapsed + 1 });
    }
    if (c.checkQuorum && elapsed >= c.electionTicks) {
      // check-quorum: a leader that has not heard from a majority for an election timeout steps down
      if (st.s.active.length + 1 < quorumOf(st.s)) {
        becomeFollower(st, s.term, undefined);
        return;
      }
      st.set({ elapsed: 0, active: [] });
    }
    if (heartbeatElapsed >= c.heartbeatTicks) {
      st.set({ heartbeatElapsed: 0 });
      for (const p of peersOf(st.s, c)) {
        if ((st.s.inflight[p] ?? 0) > 0 || (st.s.nextIndex[p] ?? 0) <= lastIndex(st.s)) {
          // batches may have been lost: resend from what the follower is known to hold
          st.set({ nextIndex: { ...st.s.nextIndex, [p]: (st.s.matchIndex[p] ?? 0) + 1 }, inflight: { ...st.s.inflight, [p]: 0 } });
        }
        replicate(st, p, (st.s.nextIndex[p] ?? 0) > lastIndex(st.s));
      }
    }
    return;
  }
  st.set({ elapsed: s.elapsed + 1 });
  // a node outside the configuration (removed, or not yet added) never starts an election
  if (st.s.elapsed >= s.timeoutTicks && s.voters.includes(c.id)) campaign(st, c.preVote);
}

function onPropose(st: Step, m: Propose): void {
  const { s } = st;
  if (s.role !== 'leader' || s.transferTo !== undefined) {
    st.effects.push({ type: 'raft.notLeader', leader: s.role === 'leader' ? undefined : s.leader });
    return;
  }
  const entry: Entry = { term: s.term, index: lastIndex(s) + 1, data: m.data };
  st.set({ log: [...s.log, entry] });
  st.durable(undefined, [entry]);
  advanceCommit(st); // a single-voter cluster commits at once
  for (const p of peersOf(st.s, st.c)) if ((st.s.nextIndex[p] ?? 0) === entry.index) replicate(st, p);
}

function onReadIndex(st: Step, m: ReadIndex): void {
  const { s, c } = st;
  if (s.role !== 'leader') {
    st.effects.push({ type: 'raft.notLeader', leader: s.leader, readId: m.id });
    return;
  }
  if (termAt(s, s.commitIndex) !== s.term) {
    // not yet sure what is committed: wait for this term's first commit (the no-op)
    st.set({ pendingReads: [...s.pendingReads, { id: m.id, index: 0, seq: 0 }] });
    return;
  }
  if (c.leaseReads && c.checkQuorum && s.active.length + 1 >= quorumOf(st.s)) {
    // within the lease: a majority answered during this check-quorum window, so no other leader can exist yet
    st.effects.push({ type: 'raft.readReady', id: m.id, index: s.commitIndex });
    return;
  }
  const seq = s.readSeq + 1;
  st.set({ readSeq: seq, pendingReads: [...s.pendingReads, { id: m.id, index: s.commitIndex, seq }] });
  confirmReads(st); // a single voter is its own majority
  for (const p of peersOf(st.s, c)) replicate(st, p, (st.s.nextIndex[p] ?? 0) > lastIndex(st.s));
}

function onTransfer(st: Step, m: TransferLeadership): void {
  const { s, c } = st;
  if (s.role !== 'leader') {
    st.effects.push({ type: 'raft.notLeader', leader: s.leader });
    return;
  }
  if (m.to === c.id || !s.voters.includes(m.to)) return;
  st.set({ transferTo: m.to, transferElapsed: 0 });
  if ((s.matchIndex[m.to] ?? 0) === lastIndex(s)) st.send(m.to, { type: 'TimeoutNow', term: s.term, from: c.id });
  else replicate(st, m.to);
}

function onChangeMembership(st: Step, m: ChangeMembership): void {
  const { s, c } = st;
  if (s.role !== 'leader' || s.transferTo !== undefined) {
    st.effects.push({ type: 'raft.notLeader', leader: s.role === 'leader' ? undefined : s.leader });
    return;
  }
  if (lastConfigIndex(s) > s.commitIndex) {
    st.effects.push({ type: 'raft.changeRejected', reason: 'a membership change is still uncommitted (one at a time)' });
    return;
  }
  const voters = m.add ? [...new Set([...s.voters, m.add])] : s.voters.filter((v) => v !== m.remove);
  if (voters.length === s.voters.length || voters.length === 0) {
    st.effects.push({ type: 'raft.changeRejected', reason: 'the change would not change the voters' });
    return;
  }
  const entry: Entry = { term: s.term, index: lastIndex(s) + 1, data: new Uint8Array(0), membership: { voters } };
  const joining = m.add !== undefined && m.add !== '' && !(m.add in s.nextIndex);
  st.set({
    log: [...s.log, entry], voters,
    ...(joining ? { nextIndex: { ...s.nextIndex, [m.add]: entry.index }, matchIndex: { ...s.matchIndex, [m.add]: 0 } } : {}),
  });
  st.durable(undefined, [entry]);
  advanceCommit(st);
  for (const p of peersOf(st.s, c)) if ((st.s.nextIndex[p] ?? 0) >= entry.index) replicate(st, p);
}

/** One step of Raft. Pure. */
export function step(config: RaftConfig, state: RaftState, input: RaftInput): StepResult {
  const st = new Step(state, config);
  if (input.type === 'Tick') onTick(st);
  else if (input.type === 'Propose') onPropose(st, input);
  else if (input.type === 'ReadIndex') onReadIndex(st, input);
  else if (input.type === 'TransferLeadership') onTransfer(st, input);
  else if (input.type === 'ChangeMembership') onChangeMembership(st, input);
  else if (input.type === 'Compact') onCompact(st, input);
  else {
    const m = input;
    // Any message from a higher term makes us a follower of that term first (§5.1) — except a
    // pre-vote request or a granted pre-vote response, which must not disturb anyone.
    const preVoteTraffic = (m.type === 'RequestVote' && m.preVote) || (m.type === 'VoteResponse' && m.preVote && m.granted);
    if (m.term > st.s.term && !preVoteTraffic) {
      becomeFollower(st, m.term, m.type === 'AppendEntries' || m.type === 'InstallSnapshot' ? m.from : undefined);
    }
    if (m.term < st.s.term && !(m.type === 'RequestVote' && m.preVote)) {
      // Stale term: tell the sender our term so it steps down (§5.1); ignore stale responses.
      if (m.type === 'AppendEntries' || m.type === 'InstallSnapshot') st.send(m.from, { type: 'AppendResponse', term: st.s.term, from: config.id, success: false, matchIndex: 0, conflictIndex: 0, readSeq: 0 });
      if (m.type === 'RequestVote') st.send(m.from, { type: 'VoteResponse', term: st.s.term, from: config.id, granted: false, preVote: false });
    } else if (m.type === 'RequestVote') onRequestVote(st, m);
    else if (m.type === 'VoteResponse') onVoteResponse(st, m);
    else if (m.type === 'AppendEntries') onAppendEntries(st, m);
    else if (m.type === 'AppendResponse') onAppendResponse(st, m);
    else if (m.type === 'InstallSnapshot') onInstallSnapshot(st, m);
    // TimeoutNow from the current leader: campaign at once, without pre-vote (the leader asked)
    else if (st.s.role === 'follower') campaign(st, false);
  }
  return st.finish();
}
