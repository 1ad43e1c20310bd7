/**
 * The supervisor is itself a state chart: it keeps the restart history of children that failed,
 * asks the pure `decide()` what to do on a failure, and emits the directive for the host to carry
 * out. The host owns the children (their order and policies) and sends them along with a failure,
 * so supervising 100k children costs nothing until one fails.
 */
import { assign, emit, setup } from 'xstate';
import {
  affectedChildren, decide, NO_RESTARTS, type Directive, type RestartStats, type Strategy, type SupervisionPolicy,
} from './supervision.ts';

/** Emitted by the supervisor; the host applies it to the named children. */
export interface DirectiveEffect {
  readonly type: 'troupe.directive';
  readonly directive: Directive;
  /** The child that failed. */
  readonly child: string;
  /** Children the directive applies to, in start order. */
  readonly children: readonly string[];
  readonly delayMs: number;
  readonly reason: string;
  readonly error: string;
}

export interface SupervisorContext {
  strategy: Strategy;
  /** True for a system's root guardian. */
  root: boolean;
  /** Restart history of children that have failed (cleared when a child stops). */
  stats: Record<string, RestartStats>;
  failures: number;
  /** The most recent decision, as emitted. */
  lastDecision?: DirectiveEffect;
}

/** Events the host sends to a supervisor. */
export type SupervisorEvent =
  | {
      type: 'ChildFailed';
      child: string;
      error: unknown;
      nowMs: number;
      policy: SupervisionPolicy;
      /** All children in start order (needed by one-for-all and rest-for-one; may be empty for one-for-one). */
      siblings: readonly string[];
    }
  | { type: 'ChildStopped'; child: string };

const describe = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as { strategy: Strategy; root?: boolean },
    emitted: {} as DirectiveEffect,
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({ strategy: input.strategy, root: input.root ?? false, stats: {}, failures: 0 }),
  initial: 'supervising',
  states: {
    supervising: {
      on: {
        ChildStopped: {
          guard: ({ context, event }) => event.child in context.stats,
          actions: assign(({ context, event }) => {
            const { [event.child]: _gone, ...stats } = context.stats;
            return { stats };
          }),
        },
        ChildFailed: {
          actions: [
            assign(({ context, event }) => {
              const d = decide(event.error, context.stats[event.child] ?? NO_RESTARTS, event.nowMs, event.policy);
              const children = d.directive === 'restart' || d.directive === 'stop'
                ? affectedChildren(context.strategy, event.child, event.siblings)
                : [event.child];
              const decision: DirectiveEffect = {
                type: 'troupe.directive', directive: d.directive, child: event.child, children,
                delayMs: d.delayMs, reason: d.reason, error: describe(event.error),
              };
              return { stats: { ...context.stats, [event.child]: d.stats }, failures: context.failures + 1, lastDecision: decision };
            }),
            emit(({ context }) => context.lastDecision!),
          ],
        },
      },
      // The root has no supervisor to escalate to: it stops the child and goes on supervising.
      always: { guard: ({ context }) => !context.root && context.lastDecision?.directive === 'escalate', target: 'escalated' },
    },
    /** A failure beyond what this supervisor may handle; its own supervisor decides next. */
    escalated: {},
  },
});
