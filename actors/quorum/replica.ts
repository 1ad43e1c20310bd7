/**
 * A quorum replica: an actor holding key → versioned value(s), merging every version it is sent
 * with the rule in `versions.ts`. As a stand-in (sloppy quorum) it also keeps *hints* — versions
 * meant for an unreachable replica — apart from its own data, and hands them off to that replica
 * once it answers again:
 *
 *   QuorumStore / QuorumFetch are answered in every state (QuorumStored / QuorumFetched); the
 *   states are the hinted-handoff cycle:
 *
 *   idle ──hint stored──▶ waiting ──after handoffIntervalMs──▶ handingOff ──acked, none left──▶ idle
 *                            ▲                                   │  ▲   │
 *                            └──────── not acked (retry later) ──┘  └───┘ acked, more hints
 */
import { assign, setup } from 'xstate';
import { defineActor, hostActors, reply } from '../../framework/actor.ts';
import type { ActorSystem } from '../../framework/system.ts';
import type { ActorRef } from '../../framework/ref.ts';
import { messages, type Message, type QuorumStore } from './quorum.pb.ts';
import { mergeItems, type Item } from './versions.ts';

/** Default pause between hinted-handoff attempts. */
export const DEFAULT_HANDOFF_INTERVAL_MS = 1_000;
/** Default time a stand-in waits for the home replica to acknowledge a handoff. */
export const DEFAULT_HANDOFF_TIMEOUT_MS = 1_000;

/** Input of a replica (all optional). */
export interface QuorumReplicaInput {
  /** Pause between hinted-handoff attempts. @default 1000 */
  handoffIntervalMs?: number;
  /** How long one handoff attempt waits for the home replica's ack. @default 1000 */
  handoffTimeoutMs?: number;
}

/** Versions held for another replica until it is reachable again. */
export interface Hint {
  /** Address of the home replica the versions belong to. */
  readonly target: string;
  readonly key: string;
  readonly items: readonly Item[];
}

/** A replica's state (readable through `system.snapshotOf(ref).context`). */
export interface QuorumReplicaContext {
  /** key → versions held (siblings in version order, the latest last). Owned by the machine. */
  readonly data: Map<string, readonly Item[]>;
  /** Versions held as a stand-in, oldest first. */
  readonly hints: readonly Hint[];
  /** The hint being handed off (its items as sent). */
  readonly inFlight: Hint | undefined;
  /** Hints handed off so far. */
  readonly handedOff: number;
  readonly handoffIntervalMs: number;
  readonly handoffTimeoutMs: number;
}

const isHint = ({ event }: { event: Message }): boolean => event.type === 'QuorumStore' && event.hintFor !== '';

export const quorumReplicaMachine = setup({
  types: {
    context: {} as QuorumReplicaContext,
    events: {} as Message,
    input: {} as QuorumReplicaInput | undefined,
  },
  actors: { ...hostActors },
  actions: {
    stored: reply(({ event }) => ({ type: 'QuorumStored', key: (event as QuorumStore).key })),
    store: assign({
      // the map is updated in place: copying a large store on every write would cost O(keys)
      data: ({ context, event }) => {
        const e = event as QuorumStore;
        const held = context.data.get(e.key) ?? [];
        const merged = mergeItems(held, e.items);
        if (merged !== held) context.data.set(e.key, merged);
        return context.data;
      },
    }),
    /** Drop the hint just handed off — unless it gained versions meanwhile: then it goes again. */
    handedOff: assign(({ context }) => {
      const sent = context.inFlight!;
      const hints = context.hints.filter((h) => !(h.target === sent.target && h.key === sent.key && h.items === sent.items));
      return { hints, inFlight: undefined, handedOff: context.handedOff + (context.hints.length - hints.length) };
    }),
    storeHint: assign({
      hints: ({ context, event }) => {
        const e = event as QuorumStore;
        const i = context.hints.findIndex((h) => h.target === e.hintFor && h.key === e.key);
        if (i < 0) return [...context.hints, { target: e.hintFor, key: e.key, items: mergeItems([], e.items) }];
        const merged = mergeItems(context.hints[i]!.items, e.items);
        if (merged === context.hints[i]!.items) return context.hints;
        const next = [...context.hints];
        next[i] = { ...next[i]!, items: merged };
        return next;
      },
    }),
  },
  guards: {
    isHint,
    /** Hints are left once the one in flight is dropped (or it gained versions meanwhile). */
    hintsRemain: ({ context }) => context.hints.some((h) => h !== context.inFlight),
  },
  delays: {
    handoffInterval: ({ context }) => context.handoffIntervalMs,
  },
}).createMachine({
  id: 'quorumReplica',
  context: ({ input }) => ({
    data: new Map(), hints: [], inFlight: undefined, handedOff: 0,
    handoffIntervalMs: input?.handoffIntervalMs ?? DEFAULT_HANDOFF_INTERVAL_MS,
    handoffTimeoutMs: input?.handoffTimeoutMs ?? DEFAULT_HANDOFF_TIMEOUT_MS,
  }),
  // stores and fetches are served in every state; the states are the hinted-handoff cycle
  on: {
    QuorumStore: [
      { guard: 'isHint', actions: ['storeHint', 'stored'] },
      { actions: ['store', 'stored'] },
    ],
    QuorumFetch: {
      actions: reply(({ context, event }) => ({ type: 'QuorumFetched', key: event.key, items: [...(context.data.get(event.key) ?? [])] })),
    },
  },
  initial: 'idle',
  states: {
    idle: {
      on: { QuorumStore: [{ guard: 'isHint', target: 'waiting', actions: ['storeHint', 'stored'] }, { actions: ['store', 'stored'] }] },
    },
    waiting: { after: { handoffInterval: 'handingOff' } },
    handingOff: {
      entry: assign({ inFlight: ({ context }) => context.hints[0] }),
      invoke: {
        src: 'troupe.ask',
        input: ({ context }) => ({
          to: context.inFlight!.target,
          message: { type: 'QuorumStore', key: context.inFlight!.key, items: [...context.inFlight!.items], hintFor: '' },
          timeoutMs: context.handoffTimeoutMs,
        }),
        // the target answers again: hand the next hint off at once
        onDone: [
          { guard: 'hintsRemain', target: 'handingOff', reenter: true, actions: 'handedOff' },
          { target: 'idle', actions: 'handedOff' },
        ],
        onError: {
          target: 'waiting',
          // the next attempt tries another target first: one unreachable replica blocks no other
          actions: assign(({ context }) => ({ hints: [...context.hints.slice(1), context.hints[0]!], inFlight: undefined })),
        },
      },
    },
  },
});

/** The replica actor type. */
export const QuorumReplica = defineActor({ type: 'quorum-replica', machine: quorumReplicaMachine, messages });

/**
 * Start a replica on `system`. A bad option is a RangeError naming it.
 * @example
 * const r1 = spawnQuorumReplica(system, { name: 'replica-1' });
 */
export function spawnQuorumReplica(system: ActorSystem, options: { name: string } & QuorumReplicaInput): ActorRef<Message> {
  const { name, ...input } = options;
  for (const key of ['handoffIntervalMs', 'handoffTimeoutMs'] as const) {
    const v = input[key];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`quorum replica: ${key} must be a positive number of ms, got ${v}`);
  }
  return system.spawn(QuorumReplica, { name, input });
}
