/**
 * The quorum coordinator's state chart: one request (a write or a read) to a replica group.
 * Pure — it reaches replicas only by emitting a `quorum.scatter` effect at the start of each phase;
 * the host (the group, or a test) sends every request and feeds each outcome back as a
 * `quorum.reply` / `quorum.noReply` event tagged with the phase's `round` (answers of an earlier
 * phase are ignored).
 *
 *   gathering ──W acks (a write)─────────────────────────────────────────────▶ done
 *       │  └──R replies (a read)──▶ resolving ──already on N−R+1 replicas──▶ done
 *       │                              │ on fewer
 *       │                              ▼
 *       │                          repairing ──N−R+1 replicas hold it──▶ done
 *       │                              └──they cannot be reached──▶ failed
 *       │ a home replica fails a write, a stand-in is free (sloppy quorum)
 *       ├──▶ standingIn ──W acks, stand-ins' hints counted──▶ done
 *       │        └──(each further failure: the next stand-in) — W out of reach──▶ failed
 *       └──W or R out of reach──▶ failed
 *
 * A request ends in `done` only when its quorum was met: a write when `needed` replicas
 * acknowledged it, a read when `needed` replicas answered *and* the versions it returns are held
 * by at least `repairNeeded` replicas (blocking read repair: a later quorum read cannot miss them).
 * Otherwise it ends in `failed` — never a partial success.
 */
import { assign, emit, enqueueActions, setup } from 'xstate';
import type { MessageObject } from '../../framework/codec/messages.ts';
import type { QuorumFetch, QuorumStore } from './quorum.pb.ts';
import { covers, mergeItems, type Item } from './versions.ts';

/** One request of a scatter: a message to one replica. */
export interface ScatterRequest {
  readonly to: string;
  readonly message: QuorumStore | QuorumFetch;
}

/** The effect a phase starts with: send every request, report each outcome as an event of `round`. */
export interface ScatterEffect {
  readonly type: 'quorum.scatter';
  readonly round: number;
  readonly requests: readonly ScatterRequest[];
  readonly timeoutMs: number;
}

/** What the host sends back, exactly one per request. */
export type ScatterEvent =
  | { readonly type: 'quorum.reply'; readonly round: number; readonly replica: string; readonly message: MessageObject }
  | { readonly type: 'quorum.noReply'; readonly round: number; readonly replica: string; readonly error: string };

/** Which phase a request failed in. */
export type QuorumPhase = 'write' | 'read' | 'repair';

/** Input of one coordinator run. */
export interface CoordinatorInput {
  readonly op: 'write' | 'read';
  readonly key: string;
  /** The versions to write (writes only). */
  readonly items: readonly Item[];
  /** Addresses of the home replicas (N of them). */
  readonly replicas: readonly string[];
  /** Addresses of stand-ins for a sloppy quorum ([] — a strict quorum). */
  readonly standIns: readonly string[];
  /** W for a write, R for a read. */
  readonly needed: number;
  /** Replicas that must hold a read's versions before it returns: N − R + 1. */
  readonly repairNeeded: number;
  /** How long each replica has to answer, per phase. */
  readonly timeoutMs: number;
}

/** How a coordinator run ended (its machine's `output`). */
export type CoordinatorOutput =
  | {
    readonly outcome: 'ok';
    /** Replicas that acknowledged the write (stand-ins included) or answered the read. */
    readonly acks: number;
    /** Stand-ins that acknowledged a hinted write. */
    readonly hinted: number;
    /** Reads: the resolved versions (siblings, latest last); writes: the versions written. */
    readonly items: readonly Item[];
    /** Reads: replicas repaired before returning. */
    readonly repaired: number;
  }
  | {
    readonly outcome: 'unreachable';
    readonly phase: QuorumPhase;
    readonly acks: number;
    readonly needed: number;
    /** Why each replica that failed did not count, e.g. `n2/replica: ask timed out`. */
    readonly failures: readonly string[];
  };

interface CoordinatorContext extends CoordinatorInput {
  phase: QuorumPhase;
  /** The current phase's number: answers carry it. */
  round: number;
  /** Acknowledgements counted toward `needed` (write/read) or holders (repair). */
  acks: number;
  hinted: number;
  /** Requests of the current phase not answered yet. */
  outstanding: number;
  /** Stand-ins given a hint so far. */
  standInsUsed: number;
  failures: string[];
  /** Reads: what each responder holds. */
  fetched: Array<{ replica: string; items: readonly Item[] }>;
  resolved: readonly Item[];
  repaired: number;
  /** Set on entering `done`. */
  succeeded: boolean;
}

type Ctx = { context: CoordinatorContext };

const storeTo = (to: string, c: CoordinatorInput, items: readonly Item[], hintFor = ''): ScatterRequest =>
  ({ to, message: { type: 'QuorumStore', key: c.key, items: [...items], hintFor } });

/** The target count of the current phase. */
const target = (c: CoordinatorContext): number => (c.phase === 'repair' ? c.repairNeeded : c.needed);

export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as ScatterEvent,
    input: {} as CoordinatorInput,
    output: {} as CoordinatorOutput,
    emitted: {} as ScatterEffect,
  },
  actions: {
    scatter: emit((_, params: { round: number; requests: readonly ScatterRequest[]; timeoutMs: number }) => ({ type: 'quorum.scatter' as const, ...params })),
    recordReply: assign(({ context, event }) => {
      const e = event as Extract<ScatterEvent, { type: 'quorum.reply' }>;
      const fromStandIn = !context.replicas.includes(e.replica);
      const fetched = e.message.type === 'QuorumFetched'
        ? [...context.fetched, { replica: e.replica, items: (e.message as unknown as { items: Item[] }).items }]
        : context.fetched;
      return {
        acks: context.acks + 1,
        hinted: context.hinted + (fromStandIn ? 1 : 0),
        outstanding: context.outstanding - 1,
        repaired: context.repaired + (context.phase === 'repair' ? 1 : 0),
        fetched,
      };
    }),
    recordNoReply: assign(({ context, event }) => {
      const e = event as Extract<ScatterEvent, { type: 'quorum.noReply' }>;
      return {
        outstanding: context.outstanding - 1,
        failures: [...context.failures, `${e.replica}: ${e.error}`],
      };
    }),
    /** Send the write to the next stand-in as a hint for the home replica that just failed. */
    standIn: enqueueActions(({ context, event, enqueue }) => {
      const standIn = context.standIns[context.standInsUsed]!;
      enqueue.assign({ standInsUsed: context.standInsUsed + 1, outstanding: context.outstanding + 1 });
      enqueue.emit({
        type: 'quorum.scatter', round: context.round, timeoutMs: context.timeoutMs,
        requests: [storeTo(standIn, context, context.items, event.replica)],
      });
    }),
    resolve: assign(({ context }) => {
      let resolved: readonly Item[] = [];
      for (const f of context.fetched) resolved = mergeItems(resolved, f.items);
      const holders = context.fetched.filter((f) => covers(f.items, resolved)).length;
      return { resolved, acks: holders };
    }),
  },
  guards: {
    /** An answer of an earlier phase: a straggler, ignored. */
    stale: ({ context, event }) => event.round !== context.round,
    // decisions are taken on the answer that settles them (each request yields exactly one answer)
    metByThis: ({ context }: Ctx) => context.acks + 1 >= target(context),
    writeMetByThis: ({ context }: Ctx) => context.op === 'write' && context.acks + 1 >= context.needed,
    lostByThis: ({ context }: Ctx) => context.acks + context.outstanding - 1 < target(context),
    /** A home replica failed a write and a stand-in is still unused. */
    canStandIn: ({ context, event }) =>
      context.op === 'write' && context.standInsUsed < context.standIns.length && context.replicas.includes(event.replica),
    nothingToRepair: ({ context }: Ctx) => context.resolved.length === 0 || context.acks >= context.repairNeeded,
  },
}).createMachine({
  id: 'quorumCoordinator',
  context: ({ input }) => ({
    ...input, phase: input.op, acks: 0, hinted: 0, outstanding: input.replicas.length, standInsUsed: 0, failures: [],
    fetched: [], resolved: [], repaired: 0, succeeded: false, round: 0,
  }),
  initial: 'gathering',
  states: {
    /** Scatter to every home replica; gather until `needed` answered or that can no longer happen. */
    gathering: {
      entry: {
        type: 'scatter',
        params: ({ context }) => ({
          round: context.round,
          timeoutMs: context.timeoutMs,
          requests: context.replicas.map((to) => (context.op === 'write'
            ? storeTo(to, context, context.items)
            : { to, message: { type: 'QuorumFetch' as const, key: context.key } })),
        }),
      },
      on: {
        'quorum.reply': [
          { guard: 'stale' },
          { guard: 'writeMetByThis', target: 'done', actions: 'recordReply' },
          { guard: 'metByThis', target: 'resolving', actions: 'recordReply' },
          { actions: 'recordReply' },
        ],
        'quorum.noReply': [
          { guard: 'stale' },
          { guard: 'canStandIn', target: 'standingIn', actions: ['recordNoReply', 'standIn'] },
          { guard: 'lostByThis', target: 'failed', actions: 'recordNoReply' },
          { actions: 'recordNoReply' },
        ],
      },
    },
    /**
     * Sloppy quorum: each home replica that fails before W acks are in is replaced by the next
     * stand-in, which gets the write as a hint for it. Late home acks still count.
     */
    standingIn: {
      on: {
        'quorum.reply': [
          { guard: 'stale' },
          { guard: 'metByThis', target: 'done', actions: 'recordReply' },
          { actions: 'recordReply' },
        ],
        'quorum.noReply': [
          { guard: 'stale' },
          { guard: 'canStandIn', actions: ['recordNoReply', 'standIn'] },
          { guard: 'lostByThis', target: 'failed', actions: 'recordNoReply' },
          { actions: 'recordNoReply' },
        ],
      },
    },
    /** Merge what the responders hold; count those that already hold all of it. */
    resolving: {
      entry: 'resolve',
      always: [
        { guard: 'nothingToRepair', target: 'done' },
        { target: 'repairing' },
      ],
    },
    /** Blocking read repair: write the resolved versions until N − R + 1 replicas hold them. */
    repairing: {
      entry: [
        assign(({ context }) => {
          const holders = new Set(context.fetched.filter((f) => covers(f.items, context.resolved)).map((f) => f.replica));
          return { phase: 'repair' as const, outstanding: context.replicas.filter((r) => !holders.has(r)).length, round: context.round + 1 };
        }),
        {
          type: 'scatter',
          params: ({ context }) => {
            const holders = new Set(context.fetched.filter((f) => covers(f.items, context.resolved)).map((f) => f.replica));
            return {
              round: context.round,
              timeoutMs: context.timeoutMs,
              requests: context.replicas.filter((r) => !holders.has(r)).map((to) => storeTo(to, context, context.resolved)),
            };
          },
        },
      ],
      on: {
        'quorum.reply': [
          { guard: 'stale' },
          { guard: 'metByThis', target: 'done', actions: 'recordReply' },
          { actions: 'recordReply' },
        ],
        'quorum.noReply': [
          { guard: 'stale' },
          { guard: 'lostByThis', target: 'failed', actions: 'recordNoReply' },
          { actions: 'recordNoReply' },
        ],
      },
    },
    done: { type: 'final', entry: assign({ succeeded: true }) },
    failed: { type: 'final' },
  },
  output: ({ context }): CoordinatorOutput => {
    if (context.succeeded) {
      return {
        outcome: 'ok', acks: context.op === 'read' ? context.fetched.length : context.acks, hinted: context.hinted,
        items: context.op === 'write' ? context.items : context.resolved, repaired: context.repaired,
      };
    }
    return { outcome: 'unreachable', phase: context.phase, acks: context.acks, needed: target(context), failures: context.failures };
  },
});
