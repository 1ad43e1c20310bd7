/**
 * replicated-cart — any XState machine as Raft's replicated state machine. Three nodes (three actor
 * systems on one in-process bus) run a Raft group; a shopping-cart chart is replicated through it:
 * every event is proposed to the log and every node's cart chart receives the committed events in
 * the same order. Mid-way the leader's node is shut down; a new leader is elected and the cart goes
 * on. At the end every surviving node's chart is in the same state with the same context.
 *
 * Run: npx tsx framework/cli.ts run replicated-cart
 */
import { assign, setup } from 'xstate';
import { memoryRaftStorage, startRaftNode, type RaftNodeHandle } from '../actors/raft/node.ts';
import { replicateMachine, type ReplicatedMachine } from '../actors/raft/replicate.ts';
import { createLogger, createMemoryBus, createRng, createSystem, NotLeaderError, realClock, type ActorSystem, type InspectionSink } from '../framework/index.ts';

type CartEvent = { type: 'AddItem'; sku: string; qty: number } | { type: 'RemoveItem'; sku: string } | { type: 'Checkout' } | { type: 'Pay'; amountCents: number };

/** A deterministic cart: its transitions depend only on its context and the events. */
export const cartMachine = setup({
  types: { context: {} as { items: Record<string, number>; paidCents: number }, events: {} as CartEvent },
}).createMachine({
  id: 'cart',
  context: { items: {}, paidCents: 0 },
  initial: 'shopping',
  states: {
    shopping: {
      on: {
        AddItem: { actions: assign({ items: ({ context, event }) => ({ ...context.items, [event.sku]: (context.items[event.sku] ?? 0) + event.qty }) }) },
        RemoveItem: { actions: assign({ items: ({ context, event }) => { const { [event.sku]: _gone, ...rest } = context.items; return rest; } }) },
        Checkout: { guard: ({ context }) => Object.keys(context.items).length > 0, target: 'checkingOut' },
      },
    },
    checkingOut: { on: { Pay: { target: 'paid', actions: assign({ paidCents: ({ event }) => event.amountCents }) } } },
    paid: { type: 'final' },
  },
});

/** `inspect`: an inspection sink for the three nodes (`troupe run replicated-cart --inspect`). */
export async function main(options: { say?: (line: string) => void; inspect?: InspectionSink } = {}): Promise<{ states: Record<string, unknown> }> {
  const say = options.say ?? ((line: string) => console.log(line));
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const names = ['n1', 'n2', 'n3'];
  const voters = names.map((n) => `${n}/cart-raft`);
  const systems = new Map<string, ActorSystem>();
  const nodes = new Map<string, RaftNodeHandle>();
  const carts = new Map<string, ReplicatedMachine<typeof cartMachine>>();
  const storages = new Map(names.map((n) => [n, memoryRaftStorage()]));
  const start = (name: string, seed: number): void => {
    const system = createSystem({
      cluster: 'cart', node: name, transport: bus.connect({ name }), clock, logger: createLogger({ level: 'error' }), ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    systems.set(name, system);
    const cart = replicateMachine(() => nodes.get(name)!, cartMachine, { clock });
    carts.set(name, cart);
    nodes.set(name, startRaftNode(system, {
      name: 'cart-raft', voters, rng: createRng(seed), storage: storages.get(name)!, tickMs: 10,
      onApply: (entries) => cart.apply(entries),
      // compact often, so a node that comes back after a while is sent a snapshot of the cart
      snapshots: {
        everyEntries: 4, take: () => cart.snapshot(),
        restore: (data, index) => {
          cart.restore(data);
          say(`  ⤓ ${name} restored a snapshot of the cart at log index ${index}`);
        },
      },
      onRole: (role, term) => { if (role === 'leader') say(`  ★ ${name} leads term ${term}`); },
    }));
  };
  for (const [i, name] of names.entries()) start(name, 100 + i);
  const alive = (): string[] => names.filter((n) => systems.has(n));
  const leaderName = (): string | undefined => alive().find((n) => nodes.get(n)!.role() === 'leader');
  const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 500 && !pred(); i++) await new Promise<void>((r) => clock.setTimeout(r, 10));
    if (!pred()) throw new Error(`timed out waiting for ${what}`);
  };
  /** Send through whoever leads, retrying across a leader change. */
  const send = async (event: CartEvent): Promise<void> => {
    for (let attempt = 0; attempt < 50; attempt++) {
      await waitFor(() => leaderName() !== undefined, 'a leader');
      try {
        await carts.get(leaderName()!)!.send(event, 500);
        say(`  → ${event.type}${'sku' in event ? ` ${event.sku}` : ''} committed (leader ${leaderName()})`);
        return;
      } catch (err) {
        if (!(err instanceof NotLeaderError)) say(`  … ${event.type}: ${(err as Error).name}, retrying`);
        await new Promise<void>((r) => clock.setTimeout(r, 20));
      }
    }
    throw new Error(`could not commit ${event.type}`);
  };
  const show = (): void => {
    for (const n of alive()) {
      const s = carts.get(n)!.actor.getSnapshot();
      say(`  ${n}: cart is '${String(s.value)}' with ${JSON.stringify(s.context.items)}${s.context.paidCents ? `, paid ${s.context.paidCents} ¢` : ''}`);
    }
  };
  try {
    say('three nodes elect a leader…');
    await waitFor(() => leaderName() !== undefined, 'a leader');
    await send({ type: 'AddItem', sku: 'tea', qty: 2 });
    await send({ type: 'AddItem', sku: 'cups', qty: 4 });
    const old = leaderName()!;
    say(`shutting down ${old}, the leader's node…`);
    await systems.get(old)!.shutdown();
    systems.delete(old);
    await send({ type: 'RemoveItem', sku: 'cups' });
    await send({ type: 'AddItem', sku: 'honey', qty: 1 });
    await send({ type: 'Checkout' });
    await send({ type: 'Pay', amountCents: 1_850 });
    await waitFor(() => alive().every((n) => carts.get(n)!.actor.getSnapshot().value === 'paid'), 'every replica to apply Pay');
    say(`${old} comes back with its log; the entries it missed are compacted away, so the leader sends a snapshot…`);
    start(old, 200);
    await waitFor(() => carts.get(old)!.actor.getSnapshot().value === 'paid', `${old} to catch up`);
    say('every replica ran the same chart:');
    show();
    return { states: Object.fromEntries(alive().map((n) => [n, carts.get(n)!.actor.getSnapshot().context])) };
  } finally {
    for (const s of systems.values()) await s.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
