/**
 * The lifecycle of one member as one node sees it: a small pure chart, one running per observed
 * node (and one for the node itself).
 *
 * ```
 * joining ──announced up──▶ up ──φ ≥ threshold──▶ suspect ──downAfterMs──▶ down (final)
 *    │  ▲                    ▲                       │
 *    │  └───heartbeat (joining)──────────────────────┤
 *    │                       └──heartbeat (up)───────┘
 *    └──────── leave (from any live state) ─────────────────────────────▶ left (final)
 * ```
 *
 * `down` and `left` are final for an incarnation: a node that was marked down must restart (a new
 * incarnation, a new chart) to be seen again, so a node that others have given up on can never
 * quietly return with work they have already moved elsewhere.
 */
import { setup } from 'xstate';

/** Input of {@link memberMachine}. */
export interface MemberInput {
  readonly node: string;
  /** How long a member stays suspect (no heartbeat) before it is marked down. */
  readonly downAfterMs: number;
}

/** Events of {@link memberMachine}. */
export type MemberEvent =
  /** A heartbeat from the member; `up` is what it announces about itself. */
  | { readonly type: 'heartbeat'; readonly up: boolean }
  /** The failure detector's φ crossed the threshold. */
  | { readonly type: 'suspect' }
  /** The member announced a graceful leave. */
  | { readonly type: 'leave' }
  /** Mark the member down now (an operator's decision, or the node downing itself). */
  | { readonly type: 'down' };

export const memberMachine = setup({
  types: {
    context: {} as MemberInput,
    input: {} as MemberInput,
    events: {} as MemberEvent,
  },
  delays: {
    downAfter: ({ context }) => context.downAfterMs,
  },
  guards: {
    announcesUp: ({ event }) => event.type === 'heartbeat' && event.up,
  },
}).createMachine({
  id: 'member',
  context: ({ input }) => input,
  initial: 'joining',
  on: {
    leave: '.left',
    down: '.down',
  },
  states: {
    joining: {
      on: {
        heartbeat: { guard: 'announcesUp', target: 'up' },
        suspect: 'suspect',
      },
    },
    up: {
      on: { suspect: 'suspect' },
    },
    suspect: {
      on: {
        heartbeat: [{ guard: 'announcesUp', target: 'up' }, { target: 'joining' }],
      },
      after: { downAfter: 'down' },
    },
    down: { type: 'final' },
    left: { type: 'final' },
  },
});
