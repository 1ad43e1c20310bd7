/**
 * Raft as a state chart: the roles (follower, preCandidate, candidate, leader) are the chart's
 * states; every input (a peer message, a client proposal, a clock tick) goes through the pure
 * `step()` of core.ts, whose effects (`raft.persist`, `raft.send`, `raft.apply`, `raft.role`,
 * `raft.notLeader`) the chart emits in order for its host. Test the chart alone with `createActor`
 * and `actor.on('*', …)`.
 */
import { assign, enqueueActions, raise, setup } from 'xstate';
import { initialState, step, type HardState, type RaftConfig, type RaftInput, type RaftState } from './core.ts';
import type { RaftEffect, RaftRole } from './types.ts';

export interface RaftMachineContext {
  readonly config: RaftConfig;
  readonly raft: RaftState;
  /** The chart ticks itself every `tickMs` on its clock; 0 = the host sends `Tick` events. */
  readonly tickMs: number;
}

const roleIs = (role: RaftRole) => ({ context }: { context: RaftMachineContext }): boolean => context.raft.role === role;

/** Leave a state when `step()` moved the role elsewhere. */
const follow = [
  { guard: roleIs('follower'), target: '#raft.role.follower' },
  { guard: roleIs('preCandidate'), target: '#raft.role.preCandidate' },
  { guard: roleIs('candidate'), target: '#raft.role.candidate' },
  { guard: roleIs('leader'), target: '#raft.role.leader' },
] as const;

export const raftMachine = setup({
  types: {
    context: {} as RaftMachineContext,
    events: {} as RaftInput,
    input: {} as { config: RaftConfig; hard?: HardState; tickMs?: number },
    emitted: {} as RaftEffect,
  },
  actions: {
    step: enqueueActions(({ context, event, enqueue }) => {
      const r = step(context.config, context.raft, event);
      enqueue(assign({ raft: r.state }));
      for (const effect of r.effects) enqueue.emit(effect);
    }),
  },
  delays: { tick: ({ context }) => context.tickMs },
}).createMachine({
  id: 'raft',
  context: ({ input }) => ({ config: input.config, raft: initialState(input.config, input.hard), tickMs: input.tickMs ?? 0 }),
  type: 'parallel',
  on: { '*': { actions: 'step' } },
  states: {
    role: {
      initial: 'follower',
      states: {
        follower: { always: follow.filter((t) => t.target !== '#raft.role.follower') },
        preCandidate: { always: follow.filter((t) => t.target !== '#raft.role.preCandidate') },
        candidate: { always: follow.filter((t) => t.target !== '#raft.role.candidate') },
        leader: { always: follow.filter((t) => t.target !== '#raft.role.leader') },
      },
    },
    /** Logical time: one `Tick` every `tickMs` on the injected clock (election and heartbeat timers count ticks). */
    clock: {
      initial: 'start',
      states: {
        start: { always: [{ guard: ({ context }) => context.tickMs > 0, target: 'ticking' }, { target: 'hostTicks' }] },
        ticking: { after: { tick: { target: 'ticking', reenter: true, actions: raise({ type: 'Tick' }) } } },
        hostTicks: {},
      },
    },
  },
});
