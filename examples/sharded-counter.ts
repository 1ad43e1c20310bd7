/**
 * The sharded counter entity used by examples/sharding.ts, the sharding tests and the
 * shard-routing bench: one counter per key, its total saved on Passivate (so it survives
 * passivation and hand-offs), an optional observer called for every Add it applies.
 */
import { assign, setup } from 'xstate';
import { entityMessages, saveState, type EntityInput } from '../actors/sharding/region.ts';
import type { Passivate } from '../actors/sharding/sharding.pb.ts';
import { defineActor } from '../framework/index.ts';
import { messages, type Add } from './sharded-counter.pb.ts';

export type { Add } from './sharded-counter.pb.ts';

const encodeTotal = (n: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n);
  return b;
};
const decodeTotal = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);

/** Called for every Add a counter applies, with the total after it. */
export type OnAdd = (key: string, add: Add, total: number) => void;

/** A counter entity definition; `onAdd` observes every applied Add (tests, the example). */
export function counterEntity(onAdd?: OnAdd) {
  const machine = setup({
    types: { context: {} as { key: string; total: number }, input: {} as EntityInput, events: {} as Add | Passivate },
  }).createMachine({
    id: 'counter',
    context: ({ input }) => ({ key: input.key, total: input.state ? decodeTotal(input.state) : 0 }),
    initial: 'running',
    states: {
      running: {
        on: {
          Add: {
            actions: [
              assign({ total: ({ context, event }) => context.total + event.n }),
              ({ context, event }) => onAdd?.(context.key, event, context.total),
            ],
          },
          Passivate: { target: 'stopped', actions: saveState(({ context }) => encodeTotal(context.total)) },
        },
      },
      stopped: { type: 'final' },
    },
  });
  return defineActor({ type: 'counter', machine, messages: [messages, entityMessages] });
}
