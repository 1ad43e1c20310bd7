/**
 * Raft as a state chart: the roles (follower, preCandidate, candidate, leader) are the chart's
 * states; every input (a peer message, a client proposal, a clock tick) goes through the pure
 * `step()` of core.ts, whose effects (`raft.persist`, `raft.send`, `raft.apply`, `raft.role`,
 * `raft.notLeader`) the chart emits in order for its host. Test the chart alone with `createActor`
 * and `actor.on('*', …)`.
 */
import { assign, enqueueActions, setup } from 'xstate';
import { initialState, step, type HardState, type RaftConfig, type RaftInput, type RaftState } from './core.ts';
import type { RaftEffect, RaftRole } from './types.ts';

export interface RaftMachineContext {
  readonly config: RaftConfig;
  readonly raft: RaftState;
}

const roleIs = (role: RaftRole) => ({ context }: { context: RaftMachineContext }): boolean => context.raft.role === role;

/** Leave a state when `step()` moved the role elsewhere. */
const follow = [
  { guard: roleIs('follower'), target: '#raft.follower' },
  { guard: roleIs('preCandidate'), target: '#raft.preCandidate' },
  { guard: roleIs('candidate'), target: '#raft.candidate' },
  { guard: roleIs('leader'), target: '#raft.leader' },
] as const;

export const raftMachine = setup({
  types: {
    context: {} as RaftMachineContext,
    events: {} as RaftInput,
    input: {} as { config: RaftConfig; hard?: HardState },
    emitted: {} as RaftEffect,
  },
  actions: {
    step: enqueueActions(({ context, event, enqueue }) => {
      const r = step(context.config, context.raft, event);
      enqueue(assign({ raft: r.state }));
      for (const effect of r.effects) enqueue.emit(effect);
    }),
  },
}).createMachine({
  id: 'raft',
  context: ({ input }) => ({ config: input.config, raft: initialState(input.config, input.hard) }),
  initial: 'follower',
  on: { '*': { actions: 'step' } },
  states: {
    follower: { always: follow.filter((t) => t.target !== '#raft.follower') },
    preCandidate: { always: follow.filter((t) => t.target !== '#raft.preCandidate') },
    candidate: { always: follow.filter((t) => t.target !== '#raft.candidate') },
    leader: { always: follow.filter((t) => t.target !== '#raft.leader') },
  },
});
