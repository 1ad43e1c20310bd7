/**
 * The supervisor is itself a state chart: it keeps each child's restart history, asks the pure
 * `decide()` what to do on a failure, and emits the directive for the host to carry out.
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
  /** Live children, in start order. */
  children: string[];
  policies: Record<string, SupervisionPolicy>;
  stats: Record<string, RestartStats>;
  failures: number;
  /** The most recent decision, as emitted. */
  lastDecision?: DirectiveEffect;
}

/** Events the host sends to a supervisor. */
export type SupervisorEvent =
  | { type: 'ChildStarted'; child: string; policy: SupervisionPolicy }
  | { type: 'ChildStopped'; child: string }
  | { type: 'ChildFailed'; child: string; error: unknown; nowMs: number };

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
  context: ({ input }) => ({ strategy: input.strategy, root: input.root ?? false, children: [], policies: {}, stats: {}, failures: 0 }),
  initial: 'supervising',
  states: {
    supervising: {
      on: {
        ChildStarted: {
          actions: assign(({ context, event }) => ({
            children: context.children.includes(event.child) ? context.children : [...context.children, event.child],
            policies: { ...context.policies, [event.child]: event.policy },
          })),
        },
        ChildStopped: {
          actions: assign(({ context, event }) => {
            const { [event.child]: _p, ...policies } = context.policies;
            const { [event.child]: _s, ...stats } = context.stats;
            return { children: context.children.filter((c) => c !== event.child), policies, stats };
          }),
        },
        ChildFailed: {
          actions: [
            assign(({ context, event }) => {
              const policy = context.policies[event.child];
              if (!policy) {
                const unknown: DirectiveEffect = {
                  type: 'troupe.directive', directive: 'escalate', child: event.child, children: [event.child],
                  delayMs: 0, reason: 'failure of a child this supervisor does not know', error: describe(event.error),
                };
                return { failures: context.failures + 1, lastDecision: unknown };
              }
              const d = decide(event.error, context.stats[event.child] ?? NO_RESTARTS, event.nowMs, policy);
              const children = d.directive === 'restart' || d.directive === 'stop'
                ? affectedChildren(context.strategy, event.child, context.children)
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
