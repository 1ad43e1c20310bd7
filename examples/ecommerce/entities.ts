/**
 * The sharded entities of the e-commerce case study. Each answers every request with an
 * `EntityReply` told to the request's sender — the asking node's inbox (see node.ts): sharding
 * is tell-only, so the inbox turns those replies back into answered promises.
 *
 *   cart     one per cart id, in its home region: the SKUs added (replicated copies too).
 *   catalog  one per SKU, in every region: the product's price (static data).
 *   stock    one per SKU: reserves a unit for an order by a read-check-write on the inventory
 *            quorum group. The entity is the SKU's single writer and runs one reservation at a
 *            time (others queue), so with W + R > N every reservation reads the previous one's
 *            write: no unit is sold twice. With W + R ≤ N, or with one stock entity per region
 *            (the 'available' setting), that no longer holds — the report counts what it costs.
 */
import { assign, fromPromise, setup } from 'xstate';
import { entityMessages, type EntityInput } from '../../actors/sharding/region.ts';
import type { Passivate } from '../../actors/sharding/sharding.pb.ts';
import { defineActor, originOf, tell } from '../../framework/index.ts';
import { messages, type CartAdd, type CartClear, type CartGet, type EntityReply, type ProductGet, type StockReserve, type StockVersion } from './shop.pb.ts';

type Reply = Omit<EntityReply, 'type' | 'requestId'>;
const answer = (event: { requestId: string; origin?: unknown }, body: Partial<Reply>): EntityReply =>
  ({ type: 'EntityReply', requestId: event.requestId, skus: [], priceCents: 0, error: '', ...body });
const senderOf = (event: unknown): string => originOf(event)?.sender ?? '';

/** A cart: the SKUs in it. Replicated adds come from the other region and are answered like any other. */
export function cartEntity() {
  const machine = setup({
    types: { context: {} as { skus: string[] }, input: {} as EntityInput, events: {} as CartAdd | CartGet | CartClear | Passivate },
  }).createMachine({
    id: 'cart',
    context: { skus: [] },
    initial: 'open',
    states: {
      open: {
        on: {
          CartAdd: { actions: [assign({ skus: ({ context, event }) => [...context.skus, event.sku] }), tell(({ event }) => senderOf(event), ({ event }) => answer(event as CartAdd, {}))] },
          CartGet: { actions: tell(({ event }) => senderOf(event), ({ event, context }) => answer(event as CartGet, { skus: [...context.skus] })) },
          CartClear: { actions: [assign({ skus: [] }), tell(({ event }) => senderOf(event), ({ event }) => answer(event as CartClear, {}))] },
          Passivate: 'closed',
        },
      },
      closed: { type: 'final' },
    },
  });
  return defineActor({ type: 'cart', machine, messages: [messages, entityMessages] });
}

/** A catalog entry: a price derived from the SKU (the catalog is static, so every region has it). */
export function catalogEntity() {
  const priceOf = (sku: string): number => 500 + (Number(sku.replace(/\D/g, '')) % 20) * 125;
  const machine = setup({
    types: { context: {} as { sku: string }, input: {} as EntityInput, events: {} as ProductGet | Passivate },
  }).createMachine({
    id: 'catalog',
    context: ({ input }) => ({ sku: input.key }),
    initial: 'listed',
    states: {
      listed: {
        on: {
          ProductGet: { actions: tell(({ event }) => senderOf(event), ({ event, context }) => answer(event as ProductGet, { skus: [context.sku], priceCents: priceOf(context.sku) })) },
          Passivate: 'gone',
        },
      },
      gone: { type: 'final' },
    },
  });
  return defineActor({ type: 'catalog', machine, messages: [messages, entityMessages] });
}

/** Why a reservation failed, as the reply's `error`. */
export type ReserveFailure = 'out-of-stock' | 'unavailable';

/** What a stock entity needs from its node: one reservation (read-check-write on the quorum group). */
export type Reserve = (sku: string, orderId: string) => Promise<Omit<StockVersion, 'type'>>;

interface StockContext {
  readonly sku: string;
  readonly queue: readonly StockReserve[];
}

/**
 * A SKU's stock: reservations run one at a time, in arrival order. `reserve` rejects with an
 * Error whose message is a {@link ReserveFailure}.
 */
export function stockEntity(reserve: Reserve) {
  const machine = setup({
    types: { context: {} as StockContext, input: {} as EntityInput, events: {} as StockReserve | Passivate },
    actors: {
      reserve: fromPromise<Omit<StockVersion, 'type'>, { sku: string; orderId: string }>(({ input }) => reserve(input.sku, input.orderId)),
    },
    guards: { queued: ({ context }) => context.queue.length > 0 },
  }).createMachine({
    id: 'stock',
    context: ({ input }) => ({ sku: input.key, queue: [] }),
    initial: 'idle',
    on: { StockReserve: { actions: assign({ queue: ({ context, event }) => [...context.queue, event] }) } },
    states: {
      idle: {
        always: { guard: 'queued', target: 'reserving' },
        on: { Passivate: 'stopped' },
      },
      // a Passivate here waits: stopping mid-reservation could let a second owner race this one
      reserving: {
        invoke: {
          src: 'reserve',
          input: ({ context }) => ({ sku: context.sku, orderId: context.queue[0]!.orderId }),
          onDone: {
            target: 'idle',
            actions: [
              tell(({ context }) => senderOf(context.queue[0]), ({ context, event }) => answer(context.queue[0]!, { skus: [context.sku], version: { type: 'StockVersion', ...event.output } })),
              assign({ queue: ({ context }) => context.queue.slice(1) }),
            ],
          },
          onError: {
            target: 'idle',
            actions: [
              tell(({ context }) => senderOf(context.queue[0]), ({ context, event }) => answer(context.queue[0]!, { error: event.error instanceof Error ? event.error.message : 'unavailable' })),
              assign({ queue: ({ context }) => context.queue.slice(1) }),
            ],
          },
        },
      },
      stopped: { type: 'final' },
    },
  });
  return defineActor({ type: 'stock', machine, messages: [messages, entityMessages] });
}
