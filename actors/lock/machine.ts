/**
 * The lifecycle of one lock lease, as a state chart. Pure: every store call is an effect NAMED
 * here and supplied by the host (`machine.provide({ actors })`), every effect resolves to a
 * discriminated outcome (it never rejects), and time arrives in those outcomes (`atMs`) and
 * through `after` delays on the host's clock.
 *
 *   idle ──ACQUIRE──▶ pending ─────────────────────────────────────────────▶ held ⇄ renewing
 *                     │ acquiring ──taken──▶ waiting (enqueuing → queued ⇄ renewingTicket   │  │
 *                     │    │unknown              ▲                  │TURN                  │  │
 *                     │    ▼                     └──taken── claiming ◀┘                      │  │
 *                     │ reconciling (is the lease ours after all? by lease id)               │  │
 *                     └─ waitMs / ABORT ─▶ failed                       RELEASE ─▶ releasing ─▶ released
 *                                    renewal or release refused, or unconfirmed past expiry ─▶ lost
 *
 * The lease is valid until `confirmedAtMs + ttlMs`, where `confirmedAtMs` is when the last write
 * that succeeded (create or renew) was STARTED: the store's expiry clock started no earlier.
 * The host sends `EXPIRY` when that time comes on its clock; in `held`/`renewing` it means `lost`.
 */
import { assign, fromPromise, setup } from 'xstate';

/** The machine's states as they reach logs and the inspector. */
export const LeaseState = {
  Idle: 'idle',
  Pending: 'pending',
  Held: 'held',
  Renewing: 'renewing',
  Releasing: 'releasing',
  Released: 'released',
  Lost: 'lost',
  Failed: 'failed',
} as const;
export type LeaseStateName = (typeof LeaseState)[keyof typeof LeaseState];

/** Outcome of writing the lease key (`create`). `unknown`: the store did not answer; it may have been written. */
export type CreateOutcome =
  | { readonly kind: 'created'; readonly revision: number; readonly atMs: number }
  | { readonly kind: 'taken' }
  | { readonly kind: 'unknown'; readonly atMs: number; readonly reason: string };

/** Outcome of reading the lease key after an `unknown` create: is it ours (same lease id)? */
export type ReconcileOutcome =
  | { readonly kind: 'mine'; readonly token: number; readonly revision: number }
  | { readonly kind: 'taken' }
  | { readonly kind: 'free' }
  | { readonly kind: 'unknown'; readonly reason: string };

/** Outcome of creating (or renewing) this lease's place in the wait queue. */
export type TicketOutcome =
  | { readonly kind: 'queued'; readonly ticket: number; readonly revision: number }
  | { readonly kind: 'unknown'; readonly reason: string };

/** Outcome of a revision-checked renewal of the lease key. */
export type RenewOutcome =
  | { readonly kind: 'renewed'; readonly revision: number; readonly atMs: number }
  | { readonly kind: 'lost'; readonly reason: string }
  | { readonly kind: 'unknown'; readonly atMs: number; readonly reason: string };

/** Outcome of deleting the lease key. */
export type ReleaseOutcome =
  | { readonly kind: 'released' }
  | { readonly kind: 'lost'; readonly reason: string }
  | { readonly kind: 'unknown'; readonly atMs: number; readonly reason: string };

/** What every effect is given. */
export interface LeaseEffectInput {
  readonly name: string;
  readonly leaseId: string;
  readonly token: number | undefined;
  readonly revision: number | undefined;
  readonly ticket: number | undefined;
  readonly ticketRevision: number | undefined;
}

/** Input of the machine. */
export interface LeaseMachineInput {
  name: string;
  owner: string;
  leaseId: string;
  ttlMs: number;
  renewIntervalMs: number;
  /** Pause before retrying a store call that got no answer. */
  retryDelayMs: number;
  /** Give up acquiring after this long (Infinity: never). */
  waitMs: number;
}

export interface LeaseContext extends LeaseMachineInput {
  /** Fencing token: the revision of the `create` that granted the lease. */
  token: number | undefined;
  /** The lease key's current revision (what the next renewal expects). */
  revision: number | undefined;
  /** When the last successful write of the lease was started (clock ms). */
  confirmedAtMs: number;
  /** When the last create of unknown outcome was started (-1: none): the lease, if ours, dates from then. */
  attemptAtMs: number;
  /** Position in the wait queue (revision of the queue entry's create), while waiting. */
  ticket: number | undefined;
  ticketRevision: number | undefined;
  /** Why the lease ended in `lost` or `failed`. */
  reason: string;
  /** How `failed` came about. */
  failure: 'timeout' | 'aborted' | undefined;
  /** Numbers the `createLease` / `releaseLease` actions, so that a late outcome of an abandoned one is ignored. */
  attempt: number;
}

/** Events the host sends. */
export type LeaseEvent =
  /** Start acquiring; `contended`: the host already knows the lock is held or has waiters (go straight to the queue). */
  | { type: 'ACQUIRE'; contended: boolean }
  /** This lease is first in the queue and the lock looks free: try to take it. */
  | { type: 'TURN' }
  | { type: 'RELEASE' }
  | { type: 'ABORT'; reason: string }
  /** The host's timer for `confirmedAtMs + ttlMs` fired: lost, unless a renewal moved the expiry meanwhile. */
  | { type: 'EXPIRY'; nowMs: number }
  /** Outcome of the `createLease` action started as attempt `attempt`. */
  | { type: 'CREATE_RESULT'; attempt: number; outcome: CreateOutcome }
  /** Outcome of the `releaseLease` action started as attempt `attempt`. */
  | { type: 'RELEASE_RESULT'; attempt: number; outcome: ReleaseOutcome };

/** The longest delay a Node timer can take. */
const MAX_TIMER_MS = 2_147_483_647;

const effectInput = ({ context }: { context: LeaseContext }): LeaseEffectInput => ({
  name: context.name,
  leaseId: context.leaseId,
  token: context.token,
  revision: context.revision,
  ticket: context.ticket,
  ticketRevision: context.ticketRevision,
});

/** Placeholder effects: the host provides the real ones. */
const unprovided = <T>(name: string) => fromPromise<T, LeaseEffectInput>(() => Promise.reject(new Error(`lock effect '${name}' was not provided`)));

/**
 * A state that writes the lease (`create`) and moves on its outcome: held when created, to
 * `whenTaken` when someone else holds it, to reconciling when the answer never came.
 */
const createLeaseState = (whenTaken: string) => ({
  entry: ['nextAttempt', 'createLease'],
  on: {
    CREATE_RESULT: [
      { guard: 'created', target: '#lockLease.held', actions: 'granted' },
      { guard: 'taken', target: whenTaken },
      { guard: 'current', target: '#lockLease.pending.reconciling', actions: 'unknownCreate' },
    ],
  },
}) as const;

export const leaseMachine = setup({
  types: {
    context: {} as LeaseContext,
    events: {} as LeaseEvent,
    input: {} as LeaseMachineInput,
  },
  actors: {
    reconcileLease: unprovided<ReconcileOutcome>('reconcileLease'),
    enqueue: unprovided<TicketOutcome>('enqueue'),
    renewTicket: unprovided<TicketOutcome>('renewTicket'),
    renewLease: unprovided<RenewOutcome>('renewLease'),
  },
  actions: {
    /**
     * Write the lease key (`create`) and send back `CREATE_RESULT` with `context.attempt`. An action
     * rather than an invoked actor: it is on every acquire's path, and an invocation costs more.
     */
    createLease: () => undefined,
    /** Delete the lease key and send back `RELEASE_RESULT` with `context.attempt`. */
    releaseLease: () => undefined,
    nextAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    expire: assign({ reason: ({ context }) => context.reason || 'not renewed before the lease expired' }),
    granted: assign(({ event }) => {
      const o = (event as Extract<LeaseEvent, { type: 'CREATE_RESULT' }>).outcome as Extract<CreateOutcome, { kind: 'created' }>;
      return { token: o.revision, revision: o.revision, confirmedAtMs: o.atMs };
    }),
    unknownCreate: assign(({ event }) => {
      const o = (event as Extract<LeaseEvent, { type: 'CREATE_RESULT' }>).outcome as Extract<CreateOutcome, { kind: 'unknown' }>;
      return { attemptAtMs: o.atMs, reason: o.reason };
    }),
    /** Remember the wait-queue entry an enqueue or ticket renewal reported. */
    keepTicket: assign(({ event }) => {
      const o = (event as unknown as { output: Extract<TicketOutcome, { kind: 'queued' }> }).output;
      return { ticket: o.ticket, ticketRevision: o.revision };
    }),
    /** Leave the wait queue (fire and forget; the entry's TTL is the backstop). */
    dropTicket: () => undefined,
    /** Gave up after a create of unknown outcome: delete the lease if it turns out to be ours. */
    abandon: () => undefined,
  },
  delays: {
    renewInterval: ({ context }) => context.renewIntervalMs,
    retryDelay: ({ context }) => context.retryDelayMs,
    // timers cannot be longer than 2^31-1 ms; an infinite wait's timer fires then and is ignored
    waitLimit: ({ context }) => Math.min(context.waitMs, MAX_TIMER_MS),
  },
  guards: {
    expired: ({ context, event }) => event.type === 'EXPIRY' && event.nowMs >= context.confirmedAtMs + context.ttlMs,
    current: ({ context, event }) => (event.type === 'CREATE_RESULT' || event.type === 'RELEASE_RESULT') && event.attempt === context.attempt,
    created: ({ context, event }) => event.type === 'CREATE_RESULT' && event.attempt === context.attempt && event.outcome.kind === 'created',
    taken: ({ context, event }) => event.type === 'CREATE_RESULT' && event.attempt === context.attempt && event.outcome.kind === 'taken',
    contended: ({ event }) => event.type === 'ACQUIRE' && event.contended,
    finiteWait: ({ context }) => Number.isFinite(context.waitMs),
    /** An enqueue or ticket renewal answered: the entry is in the queue. */
    ticketQueued: ({ event }) => (event as { output?: TicketOutcome }).output?.kind === 'queued',
  },
}).createMachine({
  id: 'lockLease',
  context: ({ input }) => ({
    ...input,
    token: undefined,
    revision: undefined,
    confirmedAtMs: 0,
    attemptAtMs: -1,
    ticket: undefined,
    ticketRevision: undefined,
    reason: '',
    failure: undefined,
    attempt: 0,
  }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        ACQUIRE: [
          { guard: 'contended', target: 'pending.waiting' },
          { target: 'pending.acquiring' },
        ],
      },
    },
    pending: {
      initial: 'acquiring',
      after: {
        waitLimit: { guard: 'finiteWait', target: 'failed', actions: assign({ failure: 'timeout', reason: ({ context }) => `not granted within ${context.waitMs} ms` }) },
      },
      on: {
        ABORT: { target: 'failed', actions: assign({ failure: 'aborted', reason: ({ event }) => event.reason }) },
      },
      exit: ['dropTicket'],
      states: {
        acquiring: {
          ...createLeaseState('#lockLease.pending.waiting'),
        },
        /** A create got no answer: read the lock and look for our own lease id. */
        reconciling: {
          initial: 'reading',
          states: {
            reading: {
              invoke: {
                src: 'reconcileLease',
                input: effectInput,
                onDone: [
                  {
                    guard: ({ event }) => event.output.kind === 'mine',
                    target: '#lockLease.held',
                    actions: assign(({ context, event }) => {
                      const o = event.output as Extract<ReconcileOutcome, { kind: 'mine' }>;
                      return { token: o.token, revision: o.revision, confirmedAtMs: context.attemptAtMs };
                    }),
                  },
                  { guard: ({ event }) => event.output.kind === 'taken', target: '#lockLease.pending.waiting' },
                  { guard: ({ event }) => event.output.kind === 'free', target: '#lockLease.pending.acquiring' },
                  { target: 'backoff' },
                ],
              },
            },
            backoff: { after: { retryDelay: 'reading' } },
          },
        },
        waiting: {
          initial: 'enqueuing',
          states: {
            enqueuing: {
              invoke: {
                src: 'enqueue',
                input: effectInput,
                onDone: [
                  { guard: 'ticketQueued', target: 'queued', actions: 'keepTicket' },
                  { target: 'enqueueBackoff' },
                ],
              },
            },
            enqueueBackoff: { after: { retryDelay: 'enqueuing' } },
            queued: {
              after: { renewInterval: 'renewingTicket' },
              on: { TURN: 'claiming' },
            },
            renewingTicket: {
              invoke: {
                src: 'renewTicket',
                input: effectInput,
                onDone: [
                  { guard: 'ticketQueued', target: 'queued', actions: 'keepTicket' },
                  { target: 'queued' },
                ],
              },
            },
            claiming: {
              ...createLeaseState('#lockLease.pending.waiting.queued'),
            },
          },
        },
      },
    },
    held: {
      after: { renewInterval: 'renewing' },
      on: { RELEASE: 'releasing', EXPIRY: { guard: 'expired', target: 'lost', actions: 'expire' } },
    },
    renewing: {
      initial: 'writing',
      on: { RELEASE: 'releasing', EXPIRY: { guard: 'expired', target: 'lost', actions: 'expire' } },
      states: {
        writing: {
          invoke: {
            src: 'renewLease',
            input: effectInput,
            onDone: [
              {
                guard: ({ event }) => event.output.kind === 'renewed',
                target: '#lockLease.held',
                actions: assign(({ event }) => {
                  const o = event.output as Extract<RenewOutcome, { kind: 'renewed' }>;
                  return { revision: o.revision, confirmedAtMs: o.atMs };
                }),
              },
              {
                guard: ({ event }) => event.output.kind === 'lost',
                target: '#lockLease.lost',
                actions: assign({ reason: ({ event }) => (event.output as Extract<RenewOutcome, { kind: 'lost' }>).reason }),
              },
              {
                // no answer, and the lease may already have expired: it must be presumed lost
                guard: ({ context, event }) => (event.output as Extract<RenewOutcome, { kind: 'unknown' }>).atMs >= context.confirmedAtMs + context.ttlMs,
                target: '#lockLease.lost',
                actions: assign({ reason: ({ event }) => `renewal unconfirmed before expiry: ${(event.output as Extract<RenewOutcome, { kind: 'unknown' }>).reason}` }),
              },
              { target: 'backoff' },
            ],
          },
        },
        backoff: { after: { retryDelay: 'writing' } },
      },
    },
    releasing: {
      initial: 'deleting',
      states: {
        deleting: {
          entry: ['nextAttempt', 'releaseLease'],
          on: {
            RELEASE_RESULT: [
              { guard: ({ context, event }) => event.attempt === context.attempt && event.outcome.kind === 'released', target: '#lockLease.released' },
              {
                guard: ({ context, event }) => event.attempt === context.attempt && event.outcome.kind === 'lost',
                target: '#lockLease.lost',
                actions: assign({ reason: ({ event }) => (event.outcome as Extract<ReleaseOutcome, { kind: 'lost' }>).reason }),
              },
              {
                // no answer, and the lease may have lapsed meanwhile: whether it was held until the
                // release cannot be known, so the caller is told it was lost (the lock is free either way)
                guard: ({ context, event }) => event.attempt === context.attempt
                  && (event.outcome as Extract<ReleaseOutcome, { kind: 'unknown' }>).atMs >= context.confirmedAtMs + context.ttlMs,
                target: '#lockLease.lost',
                actions: assign({ reason: ({ event }) => `release unconfirmed before the lease expired: ${(event.outcome as Extract<ReleaseOutcome, { kind: 'unknown' }>).reason}` }),
              },
              { guard: 'current', target: 'backoff' },
            ],
          },
        },
        backoff: { after: { retryDelay: 'deleting' } },
      },
    },
    released: { type: 'final' },
    lost: { type: 'final' },
    failed: {
      type: 'final',
      entry: [{ type: 'abandon' }],
    },
  },
});
