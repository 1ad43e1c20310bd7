/**
 * The role chart of one replica of a replicated actor. Pure: the host (./replicated.ts) owns the
 * log and the network and carries out the NAMED effects (`recover`, `serve`, `stepDown`,
 * `announce`) supplied through `provide()`.
 *
 *   backup ──ELECTED──▶ recovering.gathering ──RECOVERED──▶ primary
 *                          │   ▲                              │
 *             RECOVERY_FAILED  after recoveryRetryMs          │
 *                          ▼   │                              │
 *                       recovering.backoff                    │
 *   recovering / primary ──DEPOSED (lease lost) | FENCED (a larger epoch seen)──▶ backup
 *   any ──STOP──▶ stopped
 *
 * `recovering` is where a newly elected primary promises its epoch to the other replicas (they
 * then refuse anything from a smaller epoch) and adopts the most advanced log among those that
 * answer; it accepts no writes until `RECOVERED`.
 */
import { assign, emit, setup } from 'xstate';

/** Roles as they reach logs, status and the wire. */
export const ReplicaRole = {
  Backup: 'backup',
  Recovering: 'recovering',
  Primary: 'primary',
  Stopped: 'stopped',
} as const;
export type ReplicaRoleName = (typeof ReplicaRole)[keyof typeof ReplicaRole];

export interface ReplicaMachineInput {
  /** This replica's node. */
  node: string;
  /** Wait this long before gathering again after a failed recovery. */
  recoveryRetryMs: number;
}

export interface ReplicaContext extends ReplicaMachineInput {
  /** The epoch of this replica's current (or last) leadership; 0 if it never led. */
  epoch: number;
  /** Recovery attempts in the current leadership. */
  attempts: number;
  /** Why the role last changed, in plain words. */
  lastReason: string;
}

/** Events the host sends. */
export type ReplicaEvent =
  | { type: 'ELECTED'; epoch: number }
  | { type: 'RECOVERED'; epoch: number; detail: string }
  | { type: 'RECOVERY_FAILED'; epoch: number; reason: string }
  | { type: 'DEPOSED'; epoch: number; reason: string }
  | { type: 'FENCED'; epoch: number; by: number }
  | { type: 'STOP' };

/** Emitted on every role change. */
export interface ReplicaTransition {
  readonly type: 'replica.transition';
  readonly to: ReplicaRoleName;
  readonly epoch: number;
  readonly reason: string;
}

const sameEpoch = ({ context, event }: { context: ReplicaContext; event: ReplicaEvent }): boolean =>
  'epoch' in event && event.epoch === context.epoch;

export const replicaMachine = setup({
  types: {
    context: {} as ReplicaContext,
    events: {} as ReplicaEvent,
    input: {} as ReplicaMachineInput,
    emitted: {} as ReplicaTransition,
  },
  actions: {
    /** Effect: promise the epoch to the other replicas and adopt the most advanced log. */
    recover: () => undefined,
    /** Effect: start shipping the log and accepting writes. */
    serve: () => undefined,
    /** Effect: stop accepting writes; fail the writes still waiting for acknowledgements. */
    stepDown: () => undefined,
    note: assign((_, params: { reason: string }) => ({ lastReason: params.reason })),
    adoptEpoch: assign(({ event }) => (event.type === 'ELECTED' ? { epoch: event.epoch, attempts: 0 } : {})),
    announce: emit(({ context }, params: { to: ReplicaRoleName; reason: string }) => ({
      type: 'replica.transition' as const, to: params.to, epoch: context.epoch, reason: params.reason,
    })),
  },
  guards: {
    /** Elected again with a newer epoch without a deposal in between. */
    newerElection: ({ context, event }) => event.type === 'ELECTED' && event.epoch > context.epoch,
    /** A larger epoch than ours was seen: another leadership exists. */
    largerEpoch: ({ context, event }) => event.type === 'FENCED' && event.by > context.epoch,
    /** The event is about our current leadership. */
    sameEpoch,
  },
  delays: {
    recoveryRetry: ({ context }) => context.recoveryRetryMs,
  },
}).createMachine({
  id: 'replica',
  context: ({ input }) => ({ ...input, epoch: 0, attempts: 0, lastReason: 'started' }),
  initial: 'backup',
  on: {
    STOP: { target: '.stopped', actions: [{ type: 'stepDown' }, { type: 'announce', params: { to: 'stopped', reason: 'stopped' } }] },
  },
  states: {
    backup: {
      on: {
        ELECTED: {
          target: 'recovering',
          actions: [
            assign({ epoch: ({ event }) => event.epoch, attempts: 0 }),
            { type: 'note', params: ({ event }) => ({ reason: `elected with epoch ${event.epoch}` }) },
            { type: 'announce', params: ({ event }) => ({ to: 'recovering', reason: `elected with epoch ${event.epoch}` }) },
          ],
        },
      },
    },
    recovering: {
      initial: 'gathering',
      on: {
        ELECTED: { guard: 'newerElection', target: '#replica.recovering', reenter: true, actions: 'adoptEpoch' },
        DEPOSED: {
          guard: 'sameEpoch', target: 'backup',
          actions: [{ type: 'note', params: ({ event }) => ({ reason: event.reason }) }, { type: 'announce', params: ({ event }) => ({ to: 'backup', reason: event.reason }) }],
        },
        FENCED: {
          guard: 'largerEpoch', target: 'backup',
          actions: [
            { type: 'note', params: ({ event }) => ({ reason: `fenced by epoch ${event.by}` }) },
            { type: 'announce', params: ({ event }) => ({ to: 'backup', reason: `fenced by epoch ${event.by}` }) },
          ],
        },
      },
      states: {
        gathering: {
          entry: [assign({ attempts: ({ context }) => context.attempts + 1 }), 'recover'],
          on: {
            RECOVERED: {
              guard: 'sameEpoch', target: '#replica.primary',
              actions: [{ type: 'note', params: ({ event }) => ({ reason: event.detail }) }, { type: 'announce', params: ({ event }) => ({ to: 'primary', reason: event.detail }) }],
            },
            RECOVERY_FAILED: { guard: 'sameEpoch', target: 'backoff', actions: { type: 'note', params: ({ event }) => ({ reason: event.reason }) } },
          },
        },
        backoff: {
          after: { recoveryRetry: 'gathering' },
        },
      },
    },
    primary: {
      entry: 'serve',
      exit: 'stepDown',
      on: {
        ELECTED: { guard: 'newerElection', target: '#replica.recovering', reenter: true, actions: 'adoptEpoch' },
        DEPOSED: {
          guard: 'sameEpoch', target: 'backup',
          actions: [{ type: 'note', params: ({ event }) => ({ reason: event.reason }) }, { type: 'announce', params: ({ event }) => ({ to: 'backup', reason: event.reason }) }],
        },
        FENCED: {
          guard: 'largerEpoch', target: 'backup',
          actions: [
            { type: 'note', params: ({ event }) => ({ reason: `fenced by epoch ${event.by}` }) },
            { type: 'announce', params: ({ event }) => ({ to: 'backup', reason: `fenced by epoch ${event.by}` }) },
          ],
        },
      },
    },
    stopped: { type: 'final' },
  },
});
