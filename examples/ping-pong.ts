/**
 * ping-pong — two actors in one process, on the embedded in-process bus (no server needed).
 * A pinger plays a rally of pings against a ponger by tell; then the program asks the ponger
 * directly (request/reply) and watches the pinger stop when the rally is over.
 *
 * Run: npm start   (or: npx tsx framework/cli.ts run ping-pong)
 */
import { assign, setup } from 'xstate';
import { createSystem, defineActor, originOf, reply, tell, type ActorSystem, type InspectionSink } from '../framework/index.ts';
import { messages, type Message, type Pong } from './pingpong.pb.ts';

/** Answers every Ping: a reply when it was an ask, a Pong told back to the sender otherwise. */
export const pongerMachine = setup({
  types: { events: {} as Message, context: {} as { served: number } },
}).createMachine({
  id: 'ponger',
  context: { served: 0 },
  on: {
    Ping: [
      {
        guard: ({ event }) => originOf(event)?.correlationId !== undefined,
        actions: [assign({ served: ({ context }) => context.served + 1 }), reply(({ event }) => ({ type: 'Pong', n: event.n }))],
      },
      {
        actions: [
          assign({ served: ({ context }) => context.served + 1 }),
          tell(({ event }) => originOf(event)!.sender!, ({ event }) => ({ type: 'Pong', n: event.n })),
        ],
      },
    ],
  },
});

/** Plays `count` pings against a ponger, one at a time, then finishes. */
export const pingerMachine = setup({
  types: { events: {} as Message, context: {} as { ponger: string; count: number; received: number } },
}).createMachine({
  id: 'pinger',
  context: { ponger: '', count: 0, received: 0 },
  initial: 'idle',
  states: {
    idle: {
      on: {
        Start: {
          target: 'playing',
          actions: [
            assign({ ponger: ({ event }) => event.ponger, count: ({ event }) => event.count, received: 0 }),
            tell(({ event }) => event.ponger, { type: 'Ping', n: 1 }),
          ],
        },
      },
    },
    playing: {
      on: {
        Pong: [
          {
            guard: ({ context, event }) => event.n >= context.count,
            target: 'done',
            actions: assign({ received: ({ event }) => event.n }),
          },
          {
            actions: [
              assign({ received: ({ event }) => event.n }),
              tell(({ context }) => context.ponger, ({ event }) => ({ type: 'Ping', n: event.n + 1 })),
            ],
          },
        ],
      },
    },
    done: { type: 'final' },
  },
});

export const Ponger = defineActor({ type: 'ponger', machine: pongerMachine, messages });
export const Pinger = defineActor({ type: 'pinger', machine: pingerMachine, messages });

/** Runs the example on `system` (embedded by default); `say` prints a line. */
export async function main(options: { system?: ActorSystem; say?: (line: string) => void; rally?: number; inspect?: InspectionSink } = {}): Promise<{ rally: number; asked: number }> {
  const say = options.say ?? ((line: string) => console.log(line));
  const system = options.system ?? createSystem({ cluster: 'demo', node: 'local', logger: undefined, ...(options.inspect ? { inspect: options.inspect } : {}) });
  const rally = options.rally ?? 1000;
  try {
    const ponger = system.spawn(Ponger, { name: 'ponger' });
    const pinger = system.spawn(Pinger, { name: 'pinger' });
    say(`spawned ${ponger.address} and ${pinger.address} on node '${system.node}'`);
    const finished = system.watch(pinger);
    const started = system.clock.now();
    pinger.send({ type: 'Start', ponger: ponger.address, count: rally });
    say(`pinger: starting a rally of ${rally} pings (tell, one at a time)`);
    const end = await finished;
    const ms = Math.max(1, system.clock.now() - started);
    say(`pinger: rally over after ${rally} pongs in ${ms} ms (${Math.round((rally * 2 * 1000) / ms)} messages/s); it stopped (${end.reason})`);
    const pong = await system.ask<Pong>(ponger, { type: 'Ping', n: 42 }, { timeoutMs: 1_000 });
    say(`asked ponger Ping(42) → it replied Pong(${pong.n})`);
    const snap = system.snapshotOf(ponger);
    const served = (snap?.context as { served: number }).served;
    say(`ponger served ${served} pings in all; dead letters: ${system.deadLetters.count}`);
    return { rally, asked: pong.n };
  } finally {
    if (!options.system) await system.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
