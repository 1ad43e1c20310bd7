/**
 * The circuit breaker's state chart. Pure: time arrives in events (`nowMs`) and through XState
 * `after` delays on the host's clock; the host decides *when* a trip rule fires (it owns the
 * sliding window) and sends `TRIP`. States:
 *
 *   closed ──TRIP──▶ open ──after openDuration──▶ halfOpen ──trials all succeed──▶ closed
 *                     ▲                              │
 *                     └────────── TRIAL_FAILED ──────┘
 *   any ──ISOLATE──▶ isolated ──RESET──▶ closed          any ──DISABLE──▶ disabled ──ENABLE──▶ closed
 *
 * The open duration backs off exponentially with consecutive trips (`openMs · factor^(trips-1)`,
 * capped at `maxOpenMs`); a successful close resets the count.
 */
import { assign, emit, setup } from 'xstate';

export interface BreakerMachineInput {
  /** Base open duration before the first half-open trial. */
  openMs: number;
  /** Backoff factor for consecutive trips (1 = constant). */
  backoffFactor: number;
  /** Cap of the open duration. */
  maxOpenMs: number;
  /** Trial calls that must all succeed in half-open to close. */
  halfOpenTrials: number;
  /** Restored context (from `breaker.snapshot()`), if any. */
  restore?: Partial<BreakerContext>;
}

export interface BreakerContext extends Omit<BreakerMachineInput, 'restore'> {
  /** Consecutive trips without a successful close (drives the backoff). */
  trips: number;
  /** Clock time the circuit last opened. */
  openedAtMs: number;
  /** Clock time the current open period ends (first trial allowed). */
  retryAtMs: number;
  /** Trials that succeeded in the current half-open period. */
  trialSuccesses: number;
  /** Why the circuit last opened, in plain words. */
  lastReason: string;
  /** Transitions into open, ever. */
  totalTrips: number;
}

/** Events the host sends. */
export type BreakerEvent =
  | { type: 'TRIP'; nowMs: number; reason: string }
  | { type: 'TRIAL_SUCCEEDED'; nowMs: number }
  | { type: 'TRIAL_FAILED'; nowMs: number; reason: string }
  | { type: 'ISOLATE'; nowMs: number }
  | { type: 'RESET'; nowMs: number }
  | { type: 'DISABLE'; nowMs: number }
  | { type: 'ENABLE'; nowMs: number }
  /** Another node opened the circuit (cluster-wide sharing); `retryAtMs` is that node's. */
  | { type: 'REMOTE_OPEN'; nowMs: number; retryAtMs: number; reason: string }
  /** Another node closed it after a successful trial. */
  | { type: 'REMOTE_CLOSE'; nowMs: number };

/** Emitted on every state change. */
export interface BreakerTransition {
  readonly type: 'breaker.transition';
  readonly to: BreakerStateName;
  readonly reason: string;
}

/** The breaker's states as they reach logs and the wire. */
export const BreakerState = {
  Closed: 'closed',
  Open: 'open',
  HalfOpen: 'halfOpen',
  Isolated: 'isolated',
  Disabled: 'disabled',
} as const;
export type BreakerStateName = (typeof BreakerState)[keyof typeof BreakerState];

const openDurationMs = (c: Pick<BreakerContext, 'openMs' | 'backoffFactor' | 'maxOpenMs'>, trips: number): number =>
  Math.min(c.maxOpenMs, c.openMs * c.backoffFactor ** Math.max(0, trips - 1));

export const breakerMachine = setup({
  types: {
    context: {} as BreakerContext,
    events: {} as BreakerEvent,
    input: {} as BreakerMachineInput,
    emitted: {} as BreakerTransition,
  },
  actions: {
    /** Enter open: count the trip and fix when the open period ends. */
    opening: assign(({ context, event }) => {
      const trips = context.trips + 1;
      const retryAtMs = event.type === 'REMOTE_OPEN' ? event.retryAtMs : event.nowMs + openDurationMs(context, trips);
      const reason = 'reason' in event ? event.reason : event.type;
      return { trips, openedAtMs: event.nowMs, retryAtMs, lastReason: reason, totalTrips: context.totalTrips + 1 };
    }),
    announce: emit((_, params: { to: BreakerStateName; reason: string }) => ({ type: 'breaker.transition' as const, ...params })),
  },
  delays: {
    // time left in the open period, measured from when the state was entered
    openRemaining: ({ context }) => Math.max(0, context.retryAtMs - context.openedAtMs),
  },
}).createMachine({
  id: 'circuitBreaker',
  context: ({ input }) => ({
    openMs: input.openMs, backoffFactor: input.backoffFactor, maxOpenMs: input.maxOpenMs, halfOpenTrials: input.halfOpenTrials,
    trips: 0, openedAtMs: 0, retryAtMs: 0, trialSuccesses: 0, lastReason: '', totalTrips: 0,
    ...input.restore,
  }),
  initial: 'closed',
  on: {
    ISOLATE: { target: '.isolated', actions: { type: 'announce', params: () => ({ to: 'isolated', reason: 'isolated by hand' }) } },
    DISABLE: { target: '.disabled', actions: { type: 'announce', params: () => ({ to: 'disabled', reason: 'disabled by hand' }) } },
  },
  states: {
    closed: {
      entry: assign({ trips: 0, trialSuccesses: 0 }),
      on: {
        TRIP: { target: 'open', actions: ['opening', { type: 'announce', params: ({ event }) => ({ to: 'open', reason: event.reason }) }] },
        REMOTE_OPEN: { target: 'open', actions: ['opening', { type: 'announce', params: ({ event }) => ({ to: 'open', reason: `remote: ${event.reason}` }) }] },
      },
    },
    open: {
      after: { openRemaining: { target: 'halfOpen', actions: { type: 'announce', params: () => ({ to: 'halfOpen', reason: 'open period over: letting trial calls through' }) } } },
      on: {
        REMOTE_CLOSE: { target: 'closed', actions: { type: 'announce', params: () => ({ to: 'closed', reason: 'remote: a trial succeeded on another node' }) } },
      },
    },
    halfOpen: {
      entry: assign({ trialSuccesses: 0 }),
      on: {
        TRIAL_SUCCEEDED: [
          {
            guard: ({ context }) => context.trialSuccesses + 1 >= context.halfOpenTrials,
            target: 'closed',
            actions: { type: 'announce', params: ({ context }) => ({ to: 'closed', reason: `${context.halfOpenTrials} trial call(s) succeeded` }) },
          },
          { actions: assign({ trialSuccesses: ({ context }) => context.trialSuccesses + 1 }) },
        ],
        TRIAL_FAILED: { target: 'open', actions: ['opening', { type: 'announce', params: ({ event }) => ({ to: 'open', reason: `trial failed: ${event.reason}` }) }] },
        REMOTE_OPEN: { target: 'open', actions: ['opening', { type: 'announce', params: ({ event }) => ({ to: 'open', reason: `remote: ${event.reason}` }) }] },
        REMOTE_CLOSE: { target: 'closed', actions: { type: 'announce', params: () => ({ to: 'closed', reason: 'remote: a trial succeeded on another node' }) } },
      },
    },
    /** Forced open until RESET (maintenance, a known-bad dependency). */
    isolated: {
      on: { RESET: { target: 'closed', actions: { type: 'announce', params: () => ({ to: 'closed', reason: 'reset by hand' }) } } },
    },
    /** Every call passes and nothing is recorded, until ENABLE. */
    disabled: {
      on: { ENABLE: { target: 'closed', actions: { type: 'announce', params: () => ({ to: 'closed', reason: 'enabled by hand' }) } } },
    },
  },
});
