/**
 * `FencedResource`: the documented way to make a lock-protected resource safe (Kleppmann, "How to
 * do distributed locking"). A lease can be lost without its holder noticing in time — a GC or VM
 * pause, a slow network — and then two clients believe they hold the lock. The resource itself
 * closes that gap: every write carries the writer's fencing token, and the resource refuses any
 * token lower than the highest it has accepted. Tokens of one lock only increase, so a stale holder
 * is refused as soon as a newer holder has written.
 *
 * The resource here is an append-only list (tests, the example, the simulator); a real one keeps
 * the same rule next to its own data (a column in the row, a header on the object store call).
 */
import { assign, setup } from 'xstate';
import { defineActor, reply } from '../../framework/actor.ts';
import { FencingTokenRejectedError } from '../../framework/errors.ts';
import type { ActorSystem, AskOptions } from '../../framework/system.ts';
import { addressOf, originOf, type RefLike } from '../../framework/ref.ts';
import { messages, type FencedState, type FencedWriteAccepted, type FencedWriteRejected, type Message } from './fenced.pb.ts';

/** What a fenced resource remembers. */
export interface FencedContext {
  /** The highest token accepted so far (0 before the first write). */
  highest: number;
  /** Accepted values, in acceptance order. */
  values: string[];
  /** The token of each accepted value. */
  tokens: number[];
  /** Writes refused for a stale token. */
  rejected: number;
}

/** The fenced resource's chart: one state; a write is accepted iff its token ≥ the highest accepted. */
export const fencedResourceMachine = setup({
  types: { context: {} as FencedContext, events: {} as Message },
  guards: {
    current: ({ context, event }) => event.type === 'FencedWrite' && event.token >= context.highest,
  },
}).createMachine({
  id: 'fencedResource',
  context: { highest: 0, values: [], tokens: [], rejected: 0 },
  on: {
    FencedWrite: [
      {
        guard: 'current',
        actions: [
          assign(({ context, event }) => ({
            highest: event.token,
            values: [...context.values, event.value],
            tokens: [...context.tokens, event.token],
          })),
          reply(({ context, event }) => ({ type: 'FencedWriteAccepted', token: (event as { token: number }).token, index: context.values.length - 1 })),
        ],
      },
      {
        actions: [
          assign({ rejected: ({ context }) => context.rejected + 1 }),
          reply(({ context, event }) => ({ type: 'FencedWriteRejected', token: (event as { token: number }).token, highest: context.highest })),
        ],
      },
    ],
    FencedRead: {
      guard: ({ event }) => originOf(event)?.correlationId !== undefined,
      actions: reply(({ context }) => ({ type: 'FencedState', highest: context.highest, values: context.values, tokens: context.tokens, rejected: context.rejected })),
    },
  },
});

/**
 * The fenced resource actor.
 * @example
 * const resource = system.spawn(FencedResource, { name: 'ledger' });
 * await fencedWrite(system, resource, lease.token, 'entry'); // FencingTokenRejectedError if stale
 */
export const FencedResource = defineActor({ type: 'fenced-resource', machine: fencedResourceMachine, messages });

/** The resource's message set: register it on systems that write to a remote resource (`createSystem({ messages })`). */
export { messages as fencedMessages };

/** What {@link fencedWrite} and {@link readFenced} need: an actor system (anything that can ask). */
export type Asker = Pick<ActorSystem, 'ask'>;

/**
 * Append `value` to a fenced resource under `token`; resolves to its index. Rejects with
 * `FencingTokenRejectedError` when the resource has accepted a higher token (the caller's lease is
 * stale: stop and give up the work), or with the ask's own errors (`AskTimeoutError`…).
 */
export async function fencedWrite(system: Asker, resource: RefLike, token: number, value: string, options?: AskOptions): Promise<number> {
  const res = await system.ask<FencedWriteAccepted | FencedWriteRejected>(resource, { type: 'FencedWrite', token, value }, options);
  if (res.type === 'FencedWriteRejected') throw new FencingTokenRejectedError(addressOf(resource), token, res.highest);
  return res.index;
}

/** Everything the resource has accepted. */
export async function readFenced(system: Asker, resource: RefLike, options?: AskOptions): Promise<FencedState> {
  return system.ask<FencedState>(resource, { type: 'FencedRead' }, options);
}
