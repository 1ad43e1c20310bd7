/**
 * The leader-election chart for one candidate campaigning for one group over a lease. Pure: time
 * arrives in events (`nowMs`, `sentAtMs`) and through `after` delays on the host's clock, and the
 * chart acts on the world only through named effects the host provides (`acquire`, `renew`,
 * `release`, `elected`, `deposed`).
 *
 *   idle ──CAMPAIGN──▶ candidate ──ACQUIRED──▶ leader ──RENEW_CONFLICT / lease deadline──▶ deposed
 *                        ▲   │                   │ ▲                                          │
 *                        │   └─TAKEN / FAILED─▶ follower ◀──────── after retryIntervalMs ─────┘
 *                        └── after retryIntervalMs / RELEASED ──┘
 *   any ──RESIGN──▶ resigned ──CAMPAIGN──▶ candidate
 *
 * `leader` is parallel: region `lease` holds the local lease deadline (`sentAtMs + ttlMs −
 * safetyMarginMs` of the last successful acquire or renew — measured from when the request was
 * SENT, so it can only err on the early side of the store's own expiry); region `renewal` renews
 * every `renewIntervalMs` and retries every `renewRetryMs` while the store does not answer. The
 * deadline is re-armed on every successful renew; when it passes first, the candidate deposes
 * itself without waiting for the store.
 *
 * Every effect carries the operation number `op` it was issued under; an answer is accepted only
 * when its `op` is the current one, so a late answer to an abandoned request changes nothing.
 */
import { assign, setup } from 'xstate';

/** What a candidate campaigns with (resolved options). */
export interface ElectionMachineInput {
  /** The group campaigned for. */
  group: string;
  /** This candidate's id (who holds the lease). */
  candidate: string;
  ttlMs: number;
  renewIntervalMs: number;
  renewRetryMs: number;
  safetyMarginMs: number;
  retryIntervalMs: number;
}

/** The chart's states as they reach logs, callbacks and the inspector. */
export const ElectionState = {
  Idle: 'idle',
  Follower: 'follower',
  Candidate: 'candidate',
  Leader: 'leader',
  Deposed: 'deposed',
  Resigned: 'resigned',
} as const;
export type ElectionStateName = (typeof ElectionState)[keyof typeof ElectionState];

/** Why a leadership ended. */
export const DeposeReason = {
  /** The local lease deadline passed before a renew succeeded (store slow/unreachable, or this process paused). */
  LeaseExpired: 'lease-expired',
  /** A renew lost its compare-and-set: the lease is no longer ours. */
  Lost: 'lost',
  /** `resign()`. */
  Resigned: 'resigned',
  /** The Raft node left the leader role (or its term changed). */
  RoleChange: 'role-change',
  /** The campaign was stopped (shutdown). */
  Stopped: 'stopped',
} as const;
export type DeposeReasonName = (typeof DeposeReason)[keyof typeof DeposeReason];

export interface ElectionContext extends ElectionMachineInput {
  /** Number of the current effect; answers with another number are stale. */
  op: number;
  /** The current (or last) leadership's epoch: the revision of the winning `create`. */
  epoch: number | undefined;
  /** The lease key's revision after our last successful write. */
  revision: number | undefined;
  /** Local clock time after which we no longer act as leader. */
  leaseDeadlineMs: number;
  /** When the last successful acquire/renew request was sent (local clock). */
  lastSentAtMs: number;
  /** Local clock time of the last timed event (what `after` delays are measured from). */
  nowMs: number;
  /** Who held the lease when we last lost a campaign, if the store said. */
  holder: string | undefined;
  /** Why the last leadership ended. */
  lastReason: string;
}

/** Events the host sends. */
export type ElectionEvent =
  | { type: 'CAMPAIGN'; nowMs: number }
  | { type: 'RESIGN'; nowMs: number }
  /** Our `create` won: `revision` is the epoch. */
  | { type: 'ACQUIRED'; op: number; revision: number; sentAtMs: number; nowMs: number }
  /** Our `create` lost: someone holds the lease. */
  | { type: 'TAKEN'; op: number; holder?: string; nowMs: number }
  /** Our `create` failed without an answer (store unavailable). */
  | { type: 'ACQUIRE_FAILED'; op: number; reason: string; nowMs: number }
  | { type: 'RENEWED'; op: number; revision: number; sentAtMs: number; nowMs: number }
  | { type: 'RENEW_CONFLICT'; op: number; reason: string; nowMs: number }
  | { type: 'RENEW_FAILED'; op: number; reason: string; nowMs: number }
  /** The lease key was deleted (a leader resigned): campaign now rather than at the next retry. */
  | { type: 'RELEASED'; nowMs: number };

type Answer = Extract<ElectionEvent, { op: number }>;
const current = ({ context, event }: { context: ElectionContext; event: ElectionEvent }): boolean =>
  (event as Answer).op === context.op;

export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as ElectionMachineInput,
  },
  actions: {
    /** Host: `create` the lease key; answer ACQUIRED, TAKEN or ACQUIRE_FAILED with `op`. */
    acquire: () => undefined,
    /** Host: compare-and-set the lease key at `revision`; answer RENEWED, RENEW_CONFLICT or RENEW_FAILED. */
    renew: () => undefined,
    /** Host: best-effort compare-and-set delete of the lease key at the given revision. */
    release: (_, _params: { revision: number | undefined }) => undefined,
    /** Host: tell the application it leads, with `epoch`. */
    elected: () => undefined,
    /** Host: tell the application its leadership `epoch` ended. */
    deposed: (_, _params: { epoch: number | undefined; reason: DeposeReasonName }) => undefined,
    nextOp: assign({ op: ({ context }) => context.op + 1 }),
    tick: assign({ nowMs: ({ context, event }) => ('nowMs' in event ? event.nowMs : context.nowMs) }),
    /** A successful acquire or renew: the lease runs from when that request was sent. */
    holdLease: assign(({ context, event }) => {
      const e = event as Extract<ElectionEvent, { type: 'ACQUIRED' | 'RENEWED' }>;
      return {
        revision: e.revision,
        lastSentAtMs: e.sentAtMs,
        leaseDeadlineMs: e.sentAtMs + context.ttlMs - context.safetyMarginMs,
        nowMs: e.nowMs,
        ...(e.type === 'ACQUIRED' ? { epoch: e.revision, holder: context.candidate } : {}),
      };
    }),
  },
  guards: {
    current,
    /** An acquire answered so late that its lease is already over by our clock: treat it as lost. */
    acquiredInTime: ({ context, event }) =>
      current({ context, event }) && event.type === 'ACQUIRED' && event.sentAtMs + context.ttlMs - context.safetyMarginMs > event.nowMs,
  },
  delays: {
    retryInterval: ({ context }) => context.retryIntervalMs,
    renewRetry: ({ context }) => context.renewRetryMs,
    leaseRemaining: ({ context }) => Math.max(0, context.leaseDeadlineMs - context.nowMs),
    renewDue: ({ context }) => Math.max(0, context.lastSentAtMs + context.renewIntervalMs - context.nowMs),
  },
}).createMachine({
  id: 'election',
  context: ({ input }) => ({
    ...input,
    op: 0,
    epoch: undefined,
    revision: undefined,
    leaseDeadlineMs: 0,
    lastSentAtMs: 0,
    nowMs: 0,
    holder: undefined,
    lastReason: '',
  }),
  initial: 'idle',
  on: {
    RESIGN: { target: '.resigned', actions: 'tick' },
  },
  states: {
    idle: {
      on: { CAMPAIGN: { target: 'candidate', actions: 'tick' } },
    },
    candidate: {
      entry: ['nextOp', 'acquire'],
      on: {
        ACQUIRED: [
          { guard: 'acquiredInTime', target: 'leader', actions: 'holdLease' },
          // Won, but too late to use: give the lease back and try again later.
          { guard: 'current', target: 'follower', actions: ['tick', { type: 'release', params: ({ event }) => ({ revision: event.revision }) }] },
        ],
        TAKEN: { guard: 'current', target: 'follower', actions: ['tick', assign({ holder: ({ event }) => event.holder })] },
        ACQUIRE_FAILED: { guard: 'current', target: 'follower', actions: 'tick' },
        RESIGN: {
          target: 'resigned',
          actions: 'tick',
        },
      },
    },
    follower: {
      after: { retryInterval: 'candidate' },
      on: { RELEASED: { target: 'candidate', actions: 'tick' } },
    },
    leader: {
      type: 'parallel',
      entry: 'elected',
      on: {
        RENEW_CONFLICT: {
          guard: 'current',
          target: 'deposed',
          actions: ['tick', assign({ lastReason: DeposeReason.Lost }), { type: 'deposed', params: ({ context }) => ({ epoch: context.epoch, reason: DeposeReason.Lost }) }],
        },
        RESIGN: {
          target: 'resigned',
          actions: [
            'tick',
            assign({ lastReason: DeposeReason.Resigned }),
            { type: 'deposed', params: ({ context }) => ({ epoch: context.epoch, reason: DeposeReason.Resigned }) },
            { type: 'release', params: ({ context }) => ({ revision: context.revision }) },
            // a renew still in flight must not be taken for ours once resigned
            'nextOp',
          ],
        },
      },
      states: {
        lease: {
          initial: 'valid',
          states: {
            valid: {
              after: {
                leaseRemaining: {
                  target: '#election.deposed',
                  actions: [
                    assign({ lastReason: DeposeReason.LeaseExpired, nowMs: ({ context }) => context.leaseDeadlineMs }),
                    { type: 'deposed', params: ({ context }) => ({ epoch: context.epoch, reason: DeposeReason.LeaseExpired }) },
                    // The store may still hold our last write: hand it back so others need not wait out the TTL.
                    { type: 'release', params: ({ context }) => ({ revision: context.revision }) },
                  ],
                },
              },
              on: { RENEWED: { guard: 'current', target: 'valid', reenter: true, actions: 'holdLease' } },
            },
          },
        },
        renewal: {
          initial: 'waiting',
          states: {
            waiting: { after: { renewDue: 'renewing' } },
            renewing: {
              entry: ['nextOp', 'renew'],
              on: {
                RENEWED: { guard: 'current', target: 'waiting' },
                RENEW_FAILED: { guard: 'current', target: 'backoff', actions: 'tick' },
              },
            },
            backoff: { after: { renewRetry: 'renewing' } },
          },
        },
      },
    },
    deposed: {
      after: { retryInterval: 'candidate' },
      on: {
        // A renew we gave up on landed after all: the lease is ours again in the store; give it back.
        RENEWED: { guard: 'current', actions: { type: 'release', params: ({ event }) => ({ revision: event.revision }) } },
        RELEASED: { target: 'candidate', actions: 'tick' },
      },
    },
    resigned: {
      on: {
        CAMPAIGN: { target: 'candidate', actions: 'tick' },
        // A campaign that was in flight when we resigned won after all: give the lease back.
        ACQUIRED: { guard: 'current', actions: { type: 'release', params: ({ event }) => ({ revision: event.revision }) } },
      },
    },
  },
});
