/**
 * One shard's life in one region, as a state chart. Pure: the region (the host) tells it what the
 * membership view says and what the network answered; it answers with named effects the host
 * carries out. Messages themselves never enter the chart — the host buffers them while the chart
 * says so, in arrival order.
 *
 *   remote ──DEMAND──▶ claiming ──CLAIM_GRANTED──▶ active ──OWNER_ELSEWHERE──▶ handingOff
 *     ▲                 │  ▲   (nobody hosts it)      ▲                          │
 *     │      CLAIM_BLOCKED  after claimRetryMs         │ HANDOFF_IN              ENTITIES_STOPPED
 *     │                 ▼  │                          │ (from any state          │
 *     │               waiting ────────────────────────┘  but handingOff)         │
 *     └──────────────────────────────────────────────────────────────────────────┘
 *
 * - `remote`: another node owns the shard; the host forwards its messages there.
 * - `claiming` / `waiting` (buffering): this node owns the shard by its view but does not host
 *   it yet; it asks every possible holder whether it hosts the shard, and waits for a hand-off or
 *   for everyone to say no. An undecided claim (its asks time out) is re-sent after 2 × `claimRetryMs`.
 * - `active` (delivering): entities run here; on entry the host delivers what it buffered, in
 *   order, then everything new goes straight to the entities.
 * - `handingOff` (buffering): the view moved the shard away; the host stops the entities
 *   (each finishes its earlier messages, may save its state) and buffers new messages; then it
 *   sends one HandOff (positions, states, buffered messages) to the new owner.
 */
import { emit, setup } from 'xstate';

export interface ShardMachineInput {
  readonly shard: number;
  /** Re-send an undecided claim this often. */
  readonly claimRetryMs: number;
}

/** What the host tells the chart. */
export type ShardEvent =
  /** A message arrived for the shard while this node owns it by its view. */
  | { readonly type: 'DEMAND' }
  /** Every possible holder answered "not hosting". */
  | { readonly type: 'CLAIM_GRANTED' }
  /** Someone hosts (or is claiming, or is receiving) the shard: wait and claim again. */
  | { readonly type: 'CLAIM_BLOCKED' }
  /** A HandOff for this shard arrived, and this node owns the shard by its view. */
  | { readonly type: 'HANDOFF_IN' }
  /** The view says another node owns the shard now. */
  | { readonly type: 'OWNER_ELSEWHERE' }
  /** Every entity of the shard on this node has stopped. */
  | { readonly type: 'ENTITIES_STOPPED' };

/** Effects the host carries out, in emission order. */
export type ShardEffect =
  | { readonly type: 'shard.claim' }
  | { readonly type: 'shard.activate' }
  | { readonly type: 'shard.stopEntities' }
  | { readonly type: 'shard.handOff' }
  | { readonly type: 'shard.forwardBuffered' };

/** The chart's states as they reach logs and tests. */
export const ShardState = {
  Remote: 'remote',
  Claiming: 'claiming',
  Waiting: 'waiting',
  Active: 'active',
  HandingOff: 'handingOff',
} as const;
export type ShardStateName = (typeof ShardState)[keyof typeof ShardState];

export const shardMachine = setup({
  types: {
    context: {} as ShardMachineInput,
    input: {} as ShardMachineInput,
    events: {} as ShardEvent,
    emitted: {} as ShardEffect,
  },
  delays: {
    claimRetry: ({ context }) => context.claimRetryMs,
    // An undecided claim (its asks time out after claimRetryMs) is sent again after twice that.
    claimResend: ({ context }) => 2 * context.claimRetryMs,
  },
}).createMachine({
  id: 'shard',
  context: ({ input }) => input,
  initial: ShardState.Remote,
  states: {
    remote: {
      on: {
        DEMAND: ShardState.Claiming,
        HANDOFF_IN: ShardState.Active,
      },
    },
    claiming: {
      entry: emit({ type: 'shard.claim' }),
      after: { claimResend: { target: ShardState.Claiming, reenter: true } },
      on: {
        CLAIM_GRANTED: ShardState.Active,
        CLAIM_BLOCKED: ShardState.Waiting,
        HANDOFF_IN: ShardState.Active,
        OWNER_ELSEWHERE: { target: ShardState.Remote, actions: emit({ type: 'shard.forwardBuffered' }) },
      },
    },
    waiting: {
      after: { claimRetry: ShardState.Claiming },
      on: {
        HANDOFF_IN: ShardState.Active,
        OWNER_ELSEWHERE: { target: ShardState.Remote, actions: emit({ type: 'shard.forwardBuffered' }) },
      },
    },
    active: {
      entry: emit({ type: 'shard.activate' }),
      on: {
        OWNER_ELSEWHERE: ShardState.HandingOff,
      },
    },
    handingOff: {
      entry: emit({ type: 'shard.stopEntities' }),
      on: {
        ENTITIES_STOPPED: { target: ShardState.Remote, actions: emit({ type: 'shard.handOff' }) },
      },
    },
  },
});
