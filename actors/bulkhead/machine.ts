/**
 * The bulkhead's mode as a state chart: `open` (a slot is free) → `saturated` (every slot busy,
 * callers queue) → `full` (queue full too, callers are rejected) and back.
 *
 * The chart does not see individual calls — admitting a call must cost what cockatiel's bulkhead
 * costs, so the policy keeps the counters and sends `LOAD` only when a threshold is crossed. The
 * chart decides the mode from those counts with {@link bulkheadMode} (the policy uses the same
 * function to know when a threshold is crossed), keeps the latest counts in its context and emits
 * `bulkhead.state` on every mode change for the host to forward to listeners.
 */
import { assign, emit, setup } from 'xstate';

/** The modes, as they appear in logs and the inspector. */
export const BulkheadMode = {
  /** At least one execution slot is free: calls start at once. */
  Open: 'open',
  /** Every slot is busy and the queue has room: calls wait in the queue. */
  Saturated: 'saturated',
  /** Every slot and every queue place is taken: calls are rejected at once. */
  Full: 'full',
} as const;
export type BulkheadMode = (typeof BulkheadMode)[keyof typeof BulkheadMode];

/**
 * The mode for the given counts. With a queue capacity of 0 the bulkhead goes from `open`
 * straight to `full`.
 */
export function bulkheadMode(active: number, queued: number, limit: number, queueCapacity: number): BulkheadMode {
  if (active < limit) return BulkheadMode.Open;
  return queued < queueCapacity ? BulkheadMode.Saturated : BulkheadMode.Full;
}

/** What the chart remembers: the figures as of the latest mode change. */
export interface BulkheadContext {
  readonly name: string;
  readonly limit: number;
  readonly queueCapacity: number;
  /** Executions running at the latest transition. */
  active: number;
  /** Callers queued at the latest transition. */
  queued: number;
  /** Calls rejected (full or queue timeout) since the bulkhead was created, as of the latest transition. */
  rejected: number;
  /** Clock time of the latest transition (ms). */
  changedAtMs: number;
}

/** The one event the host sends: the counts right after a threshold was crossed. */
export interface BulkheadLoadEvent {
  readonly type: 'LOAD';
  readonly active: number;
  readonly queued: number;
  readonly rejected: number;
  readonly atMs: number;
}

/** Emitted on every mode change; the host forwards it to `on('state')` listeners. */
export interface BulkheadStateEffect {
  readonly type: 'bulkhead.state';
  readonly name: string;
  readonly state: BulkheadMode;
  readonly active: number;
  readonly queued: number;
  readonly limit: number;
  readonly queueCapacity: number;
  readonly rejected: number;
  readonly atMs: number;
}

/** Input of the chart: the bulkhead's fixed capacity figures. */
export interface BulkheadInput {
  readonly name: string;
  readonly limit: number;
  readonly queueCapacity: number;
  readonly nowMs: number;
}

const modeOfEvent = (context: BulkheadContext, event: BulkheadLoadEvent): BulkheadMode =>
  bulkheadMode(event.active, event.queued, context.limit, context.queueCapacity);

export const bulkheadMachine = setup({
  types: {
    context: {} as BulkheadContext,
    events: {} as BulkheadLoadEvent,
    input: {} as BulkheadInput,
    emitted: {} as BulkheadStateEffect,
  },
  guards: {
    toOpen: ({ context, event }) => modeOfEvent(context, event) === BulkheadMode.Open,
    toSaturated: ({ context, event }) => modeOfEvent(context, event) === BulkheadMode.Saturated,
    toFull: ({ context, event }) => modeOfEvent(context, event) === BulkheadMode.Full,
  },
  actions: {
    record: assign(({ event }) => ({ active: event.active, queued: event.queued, rejected: event.rejected, changedAtMs: event.atMs })),
    announce: emit(({ context }, params: { state: BulkheadMode }): BulkheadStateEffect => ({
      type: 'bulkhead.state',
      name: context.name,
      state: params.state,
      active: context.active,
      queued: context.queued,
      limit: context.limit,
      queueCapacity: context.queueCapacity,
      rejected: context.rejected,
      atMs: context.changedAtMs,
    })),
  },
}).createMachine({
  id: 'bulkhead',
  context: ({ input }) => ({
    name: input.name, limit: input.limit, queueCapacity: input.queueCapacity,
    active: 0, queued: 0, rejected: 0, changedAtMs: input.nowMs,
  }),
  initial: 'open',
  states: {
    open: {
      on: {
        LOAD: [
          { guard: 'toSaturated', target: 'saturated', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Saturated } }] },
          { guard: 'toFull', target: 'full', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Full } }] },
        ],
      },
    },
    saturated: {
      on: {
        LOAD: [
          { guard: 'toOpen', target: 'open', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Open } }] },
          { guard: 'toFull', target: 'full', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Full } }] },
        ],
      },
    },
    full: {
      on: {
        LOAD: [
          { guard: 'toOpen', target: 'open', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Open } }] },
          { guard: 'toSaturated', target: 'saturated', actions: ['record', { type: 'announce', params: { state: BulkheadMode.Saturated } }] },
        ],
      },
    },
  },
});
