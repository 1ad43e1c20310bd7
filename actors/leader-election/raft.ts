/**
 * `raftElection(node)`: leader election by a Raft group. The leader is the Raft leader and the
 * epoch is its term — Raft elects at most one leader per term and terms only grow, so the term is
 * a fencing token. There is no lease: a Raft leader cut off from its quorum keeps its role until
 * check-quorum (one election timeout) or a message with a higher term tells it otherwise, while a
 * new leader may already lead a higher term. `isLeader()` reads the node's role as it is now; use
 * `confirm()` (a ReadIndex round with a quorum) or the epoch as a fencing token before acting on
 * anything that must not see two writers.
 */
import { realClock, type Clock, type TimerId } from '../../framework/clock.ts';
import { NotLeaderError } from '../../framework/errors.ts';
import type { RaftNodeHandle } from '../raft/node.ts';
import type { Campaign, CampaignHandlers, LeaderElection, LeaderInfo, Leadership } from './election.ts';
import { DeposeReason, ElectionState, type DeposeReasonName, type ElectionStateName } from './machine.ts';

/** Default interval at which the node's role is sampled for the callbacks (one default Raft tick). */
export const DEFAULT_RAFT_ELECTION_POLL_MS = 10;

/** Options of {@link raftElection}. */
export interface RaftElectionOptions {
  /**
   * The node's clock (the system's): the role is sampled on it for the callbacks — the handle has
   * no role subscription. `isLeader()`, `leadership()` and `state` read the node directly.
   * @default realClock()
   */
  clock?: Clock;
  /**
   * How often the role is sampled for `onElected`/`onDeposed`.
   * @default 10
   */
  pollMs?: number;
  /**
   * Voters (addresses) a resigning leader may hand leadership to; the first one that is not this
   * node is asked. Without it, `resign()` only ends the campaign — Raft cannot refuse to lead.
   */
  successors?: readonly string[];
}

/**
 * Leader election by the Raft group `node` belongs to.
 * @example
 * const node = startRaftNode(system, { name: 'raft', voters, rng, storage });
 * const election = raftElection(node, { clock: system.clock });
 * election.campaign('orders', { onElected: ({ epoch }) => start(epoch), onDeposed: () => stop() });
 */
export function raftElection(node: RaftNodeHandle, options: RaftElectionOptions = {}): LeaderElection {
  const clock = options.clock ?? realClock();
  const pollMs = options.pollMs ?? DEFAULT_RAFT_ELECTION_POLL_MS;
  if (typeof pollMs !== 'number' || !Number.isFinite(pollMs) || pollMs <= 0) {
    throw new RangeError(`raft election option pollMs must be a positive number of milliseconds, got ${String(pollMs)}`);
  }
  const successors = options.successors ?? [];
  const campaigns = new Map<string, Campaign>();
  const live = (): Leadership | undefined =>
    node.role() === 'leader' ? { group: '', candidate: node.id, epoch: node.term() } : undefined;

  return {
    kind: 'raft',
    candidate: node.id,
    campaign(group, handlers: CampaignHandlers = {}) {
      if (campaigns.has(group)) throw new RangeError(`raft election: node '${node.id}' already campaigns for group '${group}'`);
      let held: number | undefined; // epoch the callbacks last announced
      let stopped = false;
      let timer: TimerId;
      const report = (err: unknown): void => {
        const e = err instanceof Error ? err : new Error(String(err));
        if (handlers.onError) handlers.onError(e);
        else queueMicrotask(() => { throw e; });
      };
      const depose = (reason: DeposeReasonName): void => {
        if (held === undefined) return;
        const epoch = held;
        held = undefined;
        try { handlers.onDeposed?.({ group, candidate: node.id, epoch, reason }); } catch (err) { report(err); }
      };
      const sample = (): void => {
        const l = live();
        if (held !== undefined && l?.epoch !== held) depose(DeposeReason.RoleChange);
        if (l && held === undefined) {
          held = l.epoch;
          try { handlers.onElected?.({ group, candidate: node.id, epoch: l.epoch }); } catch (err) { report(err); }
        }
      };
      const loop = (): void => {
        if (stopped) return;
        sample();
        timer = clock.setTimeout(loop, pollMs);
      };
      loop();
      const leadership = (): Leadership | undefined => {
        const l = stopped ? undefined : live();
        return l ? { ...l, group } : undefined;
      };
      const campaign: Campaign = {
        group,
        candidate: node.id,
        get state(): ElectionStateName {
          if (stopped) return ElectionState.Resigned;
          const role = node.role();
          if (role === 'leader') return ElectionState.Leader;
          // left the leader role; `onDeposed` comes with the next sample
          if (held !== undefined) return ElectionState.Deposed;
          return role === 'follower' ? ElectionState.Follower : ElectionState.Candidate;
        },
        isLeader: () => leadership() !== undefined,
        leadership,
        async confirm() {
          const before = leadership();
          if (!before) throw new NotLeaderError(node.id, node.leader());
          await node.readIndex(); // rejects with NotLeaderError when a quorum does not confirm us
          const after = leadership();
          if (!after || after.epoch !== before.epoch) throw new NotLeaderError(node.id, node.leader());
          return after;
        },
        async resign() {
          if (stopped) return;
          stopped = true;
          clock.clearTimeout(timer);
          campaigns.delete(group);
          const to = successors.find((s) => s !== node.id);
          if (node.role() === 'leader' && to !== undefined) node.transferLeadership(to);
          depose(DeposeReason.Resigned);
        },
      };
      campaigns.set(group, campaign);
      return campaign;
    },
    async leader(group): Promise<LeaderInfo | undefined> {
      const candidate = node.leader();
      return candidate === undefined ? undefined : { group, candidate, epoch: node.term() };
    },
    async close() {
      await Promise.all(Array.from(campaigns.values(), (c) => c.resign()));
    },
  };
}
