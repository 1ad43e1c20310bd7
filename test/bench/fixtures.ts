/**
 * The machines, actor definitions and system set-up the benches share. Machines are the smallest
 * that do the work, so what a bench measures is the runtime around them.
 */
import { assign, enqueueActions, setup } from 'xstate';
import { connectNats, createSystem, defineActor, reply, silentLogger, tell, type ActorSystem } from '../../framework/index.ts';
import { messages, type Message } from './bench.pb.ts';

/** Counts `Inc` and `Payload` events. The same machine runs hosted (troupe) and bare (createActor). */
export const counterMachine = setup({
  types: { context: {} as { count: number }, events: {} as Message },
}).createMachine({
  id: 'counter',
  context: { count: 0 },
  on: {
    Inc: { actions: assign({ count: ({ context }) => context.count + 1 }) },
    Payload: { actions: assign({ count: ({ context }) => context.count + 1 }) },
  },
});

/** Forwards every `Payload` to the actor at `input.to` (an actor-to-actor tell). */
export const forwarderMachine = setup({
  types: { context: {} as { to: string }, events: {} as Message, input: {} as { to: string } },
}).createMachine({
  id: 'forwarder',
  context: ({ input }) => ({ to: input.to }),
  on: {
    Payload: {
      actions: tell(({ context }) => (context as { to: string }).to, ({ event }) => {
        const e = event as Extract<Message, { type: 'Payload' }>;
        return { type: 'Payload', data: e.data, seq: e.seq };
      }),
    },
  },
});

/**
 * On `Burst { count, first, data }`, tells `count` Payloads to the actor at `input.to` — a producer
 * actor streaming to another actor, one `tell` effect per message.
 */
export const producerMachine = setup({
  types: { context: {} as { to: string }, events: {} as Message, input: {} as { to: string } },
}).createMachine({
  id: 'producer',
  context: ({ input }) => ({ to: input.to }),
  on: {
    Burst: {
      actions: enqueueActions(({ context, event, enqueue }) => {
        const { count, first, data } = event as Extract<Message, { type: 'Burst' }>;
        for (let i = 0; i < count; i++) enqueue(tell(context.to, { type: 'Payload', data, seq: first + i }));
      }),
    },
  },
});

/** Answers every `Echo` ask with an `EchoReply` carrying the same bytes. */
export const echoMachine = setup({ types: { events: {} as Message } }).createMachine({
  id: 'echo',
  on: {
    Echo: { actions: reply(({ event }) => ({ type: 'EchoReply', data: (event as Extract<Message, { type: 'Echo' }>).data })) },
  },
});

export const Counter = defineActor({ type: 'counter', machine: counterMachine, messages });
export const Producer = defineActor({ type: 'producer', machine: producerMachine, messages });
export const Forwarder = defineActor({ type: 'forwarder', machine: forwarderMachine, messages });
export const Echo = defineActor({ type: 'echo', machine: echoMachine, messages });

/** `n` bytes of a repeating pattern. */
export function bytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 97 + (i % 26);
  return b;
}

/** The count of a local counter actor (0 when it is not there). */
export function countOf(system: ActorSystem, address: string): number {
  return (system.snapshotOf(address)?.context as { count?: number } | undefined)?.count ?? 0;
}

/**
 * Two systems on one cluster, each with its own NATS connection to `url` — as two processes would
 * have — both subscribed before this resolves. Both know the bench messages, so either can ask from
 * outside any actor.
 */
export async function natsPair(url: string, cluster: string): Promise<{ a: ActorSystem; b: ActorSystem; close(): Promise<void> }> {
  const system = async (node: string): Promise<ActorSystem> => createSystem({
    cluster, node, logger: silentLogger(), messages: [messages], transport: await connectNats({ servers: url, name: `${cluster}-${node}` }),
  });
  const a = await system('a');
  const b = await system('b');
  await a.ready();
  await b.ready();
  return {
    a, b,
    close: async () => {
      await Promise.all([a.shutdown(), b.shutdown()]);
    },
  };
}
