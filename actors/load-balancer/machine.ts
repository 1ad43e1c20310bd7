/**
 * The load balancer's charts, pure: the pool's health (hosted so it shows in the inspector), and
 * the balancer actor's forwarding chart (its one effect, `lb.forward`, is carried out by the host).
 *
 * Pool:
 * ```
 * empty ⇄ serving ⇄ degraded ⇄ allEjected      (by the counts in each `pool.changed`)
 * ```
 * `serving`: every live backend is admitted; `degraded`: some are ejected by their breaker;
 * `allEjected`: backends exist but every breaker is open; `empty`: no backend registered.
 */
import { assign, emit, setup } from 'xstate';

/** The pool's counts after a change. */
export type PoolEvent = { readonly type: 'pool.changed'; readonly total: number; readonly admitted: number };

export interface PoolContext {
  readonly total: number;
  readonly admitted: number;
}

export const poolMachine = setup({
  types: { context: {} as PoolContext, events: {} as PoolEvent },
  actions: {
    record: assign(({ event }) => ({ total: event.total, admitted: event.admitted })),
  },
  guards: {
    isEmpty: ({ event }) => event.total === 0,
    allEjected: ({ event }) => event.total > 0 && event.admitted === 0,
    someEjected: ({ event }) => event.admitted > 0 && event.admitted < event.total,
  },
}).createMachine({
  id: 'load-balancer-pool',
  context: { total: 0, admitted: 0 },
  initial: 'empty',
  on: {
    'pool.changed': [
      { guard: 'isEmpty', target: '.empty', actions: 'record' },
      { guard: 'allEjected', target: '.allEjected', actions: 'record' },
      { guard: 'someEjected', target: '.degraded', actions: 'record' },
      { target: '.serving', actions: 'record' },
    ],
  },
  states: { empty: {}, serving: {}, degraded: {}, allEjected: {} },
});

/** The balancer actor's effect: forward this message (an ask when it carries an origin with a correlation id). */
export type ForwardEffect = { readonly type: 'lb.forward'; readonly message: { readonly type: string } };

/** The balancer actor: every message it accepts is forwarded; which backend is the host's choice. */
export const forwarderMachine = setup({}).createMachine({
  id: 'load-balancer',
  on: {
    '*': { actions: emit(({ event }) => ({ type: 'lb.forward', message: event }) as ForwardEffect) },
  },
});
