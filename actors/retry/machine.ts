/**
 * One execution's retries as a state chart: `attempting` → `waiting` (an `after` delay on the
 * actor's clock, computed by the backoff) → `attempting` … → `succeeded` | `failed` | `aborted` |
 * `budgetExhausted`.
 *
 * A run starts only when an execution's first attempt has failed (a first-attempt success never
 * touches XState), so it starts in `attempting` with attempt 1 and expects that attempt's outcome.
 * The chart runs no calls itself: it emits `retry.attempt` and the host runs the attempt and sends
 * back `ATTEMPT_SUCCEEDED` or `ATTEMPT_FAILED` with the facts the decision needs (is the error
 * retryable, does the budget have a token, has the caller aborted, a uniform random number for
 * jitter). Entering `waiting` emits `retry.wait` (the host takes the budget token then); every
 * final state emits `retry.done`.
 */
import { assign, emit, setup } from 'xstate';
import { nextDelayMs, type ResolvedBackoff } from './backoff.ts';

/** Why a run gave up without a success. */
export const GiveUpReason = {
  /** The predicate said the error is not worth retrying. */
  NotRetryable: 'not-retryable',
  /** `maxAttempts` attempts have failed. */
  AttemptsExhausted: 'attempts-exhausted',
  /** The target's retry budget had no token left. */
  BudgetExhausted: 'budget-exhausted',
  /** The caller's signal aborted. */
  Aborted: 'aborted',
} as const;
export type GiveUpReason = (typeof GiveUpReason)[keyof typeof GiveUpReason];

/** How a run ended: the name of its final state. */
export type RetryOutcome = 'succeeded' | 'failed' | 'aborted' | 'budgetExhausted';

export interface RetryInput {
  /** The retry policy's name (the target). */
  readonly name: string;
  readonly maxAttempts: number;
  readonly backoff: ResolvedBackoff;
}

export interface RetryContext {
  readonly name: string;
  readonly maxAttempts: number;
  readonly backoff: ResolvedBackoff;
  /** The attempt running now, or the last one (1-based). */
  attempt: number;
  /** The current (or last) wait before a retry, 0 before the first wait. */
  delayMs: number;
  /** Every wait so far, in order. */
  delaysMs: number[];
  /** Description of the last failure. */
  lastError: string | undefined;
  reason: GiveUpReason | undefined;
}

/** What the host sends. */
export type RetryEvent =
  | { readonly type: 'ATTEMPT_SUCCEEDED' }
  | {
      readonly type: 'ATTEMPT_FAILED';
      /** Description of the error (the host keeps the error itself). */
      readonly error: string;
      readonly retryable: boolean;
      /** The retry budget holds at least one token (always true without a budget). */
      readonly budgetAvailable: boolean;
      /** The caller's signal had aborted when the attempt failed. */
      readonly aborted: boolean;
      /** Uniform in [0, 1), drawn by the host from its seeded Rng, for jitter. */
      readonly random: number;
    }
  /** The caller's signal aborted; honoured while waiting (a running attempt is not abandoned). */
  | { readonly type: 'ABORT' };

/** What the chart emits for the host to carry out. */
export type RetryEffect =
  /** Run attempt number `attempt` now. */
  | { readonly type: 'retry.attempt'; readonly attempt: number }
  /** Attempt `attempt` failed and retry `attempt` waits `delayMs`; the host takes a budget token. */
  | { readonly type: 'retry.wait'; readonly attempt: number; readonly delayMs: number }
  /** The run is over. */
  | { readonly type: 'retry.done'; readonly outcome: RetryOutcome; readonly attempts: number; readonly reason: GiveUpReason | undefined };

type Failed = Extract<RetryEvent, { type: 'ATTEMPT_FAILED' }>;
const failed = (e: RetryEvent): Failed => e as Failed;

export const retryMachine = setup({
  types: {
    context: {} as RetryContext,
    events: {} as RetryEvent,
    input: {} as RetryInput,
    emitted: {} as RetryEffect,
  },
  guards: {
    callerAborted: ({ event }) => failed(event).aborted,
    notRetryable: ({ event }) => !failed(event).retryable,
    attemptsExhausted: ({ context }) => context.attempt >= context.maxAttempts,
    budgetEmpty: ({ event }) => !failed(event).budgetAvailable,
  },
  delays: {
    backoff: ({ context }) => context.delayMs,
  },
  actions: {
    recordError: assign({ lastError: ({ event }) => failed(event).error }),
    giveUp: assign((_, params: { reason: GiveUpReason }) => ({ reason: params.reason })),
    planWait: assign(({ context, event }) => {
      const delayMs = nextDelayMs(context.backoff, context.attempt, context.delayMs, failed(event).random);
      return { delayMs, delaysMs: [...context.delaysMs, delayMs] };
    }),
    announceWait: emit(({ context }): RetryEffect => ({ type: 'retry.wait', attempt: context.attempt, delayMs: context.delayMs })),
    nextAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    announceAttempt: emit(({ context }): RetryEffect => ({ type: 'retry.attempt', attempt: context.attempt })),
    announceDone: emit(({ context }, params: { outcome: RetryOutcome }): RetryEffect => ({
      type: 'retry.done', outcome: params.outcome, attempts: context.attempt, reason: context.reason,
    })),
  },
}).createMachine({
  id: 'retry',
  context: ({ input }) => ({
    name: input.name, maxAttempts: input.maxAttempts, backoff: input.backoff,
    attempt: 1, delayMs: 0, delaysMs: [], lastError: undefined, reason: undefined,
  }),
  initial: 'attempting',
  states: {
    attempting: {
      on: {
        ATTEMPT_SUCCEEDED: { target: 'succeeded' },
        ATTEMPT_FAILED: [
          { guard: 'callerAborted', target: 'aborted', actions: ['recordError', { type: 'giveUp', params: { reason: GiveUpReason.Aborted } }] },
          { guard: 'notRetryable', target: 'failed', actions: ['recordError', { type: 'giveUp', params: { reason: GiveUpReason.NotRetryable } }] },
          { guard: 'attemptsExhausted', target: 'failed', actions: ['recordError', { type: 'giveUp', params: { reason: GiveUpReason.AttemptsExhausted } }] },
          { guard: 'budgetEmpty', target: 'budgetExhausted', actions: ['recordError', { type: 'giveUp', params: { reason: GiveUpReason.BudgetExhausted } }] },
          { target: 'waiting', actions: ['recordError', 'planWait'] },
        ],
      },
    },
    waiting: {
      entry: 'announceWait',
      after: {
        backoff: { target: 'attempting', actions: ['nextAttempt', 'announceAttempt'] },
      },
      on: {
        ABORT: { target: 'aborted', actions: { type: 'giveUp', params: { reason: GiveUpReason.Aborted } } },
      },
    },
    succeeded: { type: 'final', entry: { type: 'announceDone', params: { outcome: 'succeeded' } } },
    failed: { type: 'final', entry: { type: 'announceDone', params: { outcome: 'failed' } } },
    aborted: { type: 'final', entry: { type: 'announceDone', params: { outcome: 'aborted' } } },
    budgetExhausted: { type: 'final', entry: { type: 'announceDone', params: { outcome: 'budgetExhausted' } } },
  },
  output: ({ context }) => ({ attempts: context.attempt, reason: context.reason, delaysMs: context.delaysMs }),
});
