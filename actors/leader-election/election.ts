/**
 * The leader-election contract both backends implement: the lease over any `KvStore`
 * (`leaseElection`, ./lease.ts) and a Raft group (`raftElection`, ./raft.ts).
 *
 * Every leadership carries an **epoch**, a number that is unique to that leadership and larger than
 * the epoch of every earlier leadership of the same group on the same backend: pass it to whatever
 * the leader writes to, and let that resource reject a smaller epoch than one it has seen (a
 * fencing token). Epochs of different backends (or of two stores) are not comparable.
 */
import type { DeposeReasonName, ElectionStateName } from './machine.ts';

/** One leadership, as the winner sees it. */
export interface Leadership {
  readonly group: string;
  /** Who leads (the candidate id of the lease backend; the Raft node id). */
  readonly candidate: string;
  /** The fencing token: unique per leadership, increasing across the group's leaderships. */
  readonly epoch: number;
}

/** A leadership that ended, and why. */
export interface Deposal extends Leadership {
  readonly reason: DeposeReasonName;
}

/** What an observer learns from {@link LeaderElection.leader}. */
export interface LeaderInfo {
  readonly group: string;
  readonly candidate: string;
  readonly epoch: number;
}

/** Callbacks of one campaign. They run synchronously inside the chart's transition: keep them short. */
export interface CampaignHandlers {
  /** This candidate now leads `leadership.group` with `leadership.epoch`. */
  onElected?: (leadership: Leadership) => void;
  /** The leadership with `deposal.epoch` is over: stop acting on it at once. */
  onDeposed?: (deposal: Deposal) => void;
  /**
   * An exception thrown by `onElected`/`onDeposed`. Without this handler it is rethrown
   * asynchronously (an uncaught exception), never swallowed.
   */
  onError?: (err: Error) => void;
}

/** One candidate's campaign for one group. */
export interface Campaign {
  readonly group: string;
  readonly candidate: string;
  /** Where the chart is (`leader` means elected and not yet past its local deadline or role change). */
  readonly state: ElectionStateName;
  /**
   * True only while this candidate leads AND may act on it: for the lease, the chart is in
   * `leader` and the local lease deadline has not passed on this process's clock (so a process
   * that was paused past its lease reads `false` the moment it wakes, before any timer has run).
   * Check it (or hold the epoch as a fencing token) right before every leader-only action.
   */
  isLeader(): boolean;
  /** The current leadership when {@link isLeader} holds, else undefined. */
  leadership(): Leadership | undefined;
  /**
   * Resolves with the current leadership after checking it with the backend as far as it can
   * (lease: the local deadline; Raft: a ReadIndex round with a quorum), else rejects with
   * `NotLeaderError`.
   */
  confirm(): Promise<Leadership>;
  /** Stop campaigning; a leader steps down (`onDeposed` with reason `resigned`) and releases the group. */
  resign(): Promise<void>;
}

/** A leader-election backend, bound to one candidate. */
export interface LeaderElection {
  /** `'lease'` or `'raft'`. */
  readonly kind: string;
  readonly candidate: string;
  /**
   * Start campaigning for `group` (one campaign per group per election object; `RangeError`
   * otherwise). Campaigning goes on — across depositions — until `resign()`.
   * @example
   * const c = election.campaign('orders', { onElected: (l) => start(l.epoch), onDeposed: () => stop() });
   */
  campaign(group: string, handlers?: CampaignHandlers): Campaign;
  /**
   * Who leads `group`, for observers — advisory only: it may be stale the moment it returns, and
   * it never makes anyone leader. Undefined when nobody holds the group (as far as it can tell).
   */
  leader(group: string): Promise<LeaderInfo | undefined>;
  /** Resign every campaign of this object. */
  close(): Promise<void>;
}
