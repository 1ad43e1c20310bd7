/**
 * load-balancer — four workers on four nodes, found through the receptionist, behind a
 * power-of-two-choices balancer. One worker turns slow: P2C steers away from it. One starts
 * failing: its circuit breaker ejects it, and half-open probes let it back once it recovers. One
 * node leaves the cluster: its worker stops receiving work at once. All on the embedded bus.
 *
 * Run: npx tsx framework/cli.ts run load-balancer
 */
import { assign, emit, setup } from 'xstate';
import { createLoadBalancer, type LoadBalancer } from '../actors/load-balancer/load-balancer.ts';
import {
  createMemoryBus, createReceptionist, createSystem, defineActor, joinCluster, originOf, reply, RemoteError, silentLogger,
  type ActorRef, type ActorSystem, type Membership, type Origin, type Receptionist,
} from '../framework/index.ts';
import { messages, type Message, type WorkDone } from './load-balancer.pb.ts';

interface WorkerContext { readonly address: string; readonly delayMs: number; readonly failing: boolean; readonly served: number }

/** A worker: answers Work with WorkDone — at once, after `delayMs` (by its host), or fails while `failing`. */
export const workerMachine = setup({
  types: { context: {} as WorkerContext, input: {} as { address?: string; delayMs?: number } | undefined, events: {} as Message },
  guards: {
    failing: ({ context }) => context.failing,
    immediate: ({ context }) => context.delayMs === 0,
  },
}).createMachine({
  id: 'worker',
  context: ({ input }) => ({ address: input?.address ?? '', delayMs: input?.delayMs ?? 0, failing: false, served: 0 }),
  on: {
    Work: [
      { guard: 'failing', actions: emit(({ event }) => ({ type: 'worker.fail', origin: originOf(event) })) },
      {
        guard: 'immediate',
        actions: [assign({ served: ({ context }) => context.served + 1 }), reply(({ event, context }) => ({
          type: 'WorkDone', n: event.type === 'Work' ? event.n : 0, worker: context.address, data: event.type === 'Work' ? event.data : new Uint8Array(),
        }))],
      },
      {
        actions: [assign({ served: ({ context }) => context.served + 1 }), emit(({ event, context }) => ({
          type: 'worker.reply', origin: originOf(event), delayMs: context.delayMs, n: event.type === 'Work' ? event.n : 0,
        }))],
      },
    ],
    SetBehaviour: { actions: assign(({ event }) => (event.type === 'SetBehaviour' ? { delayMs: event.delayMs, failing: event.failing } : {})) },
  },
});

export const Worker = defineActor({ type: 'worker', machine: workerMachine, messages });

/** Spawn a worker whose delayed replies and failures are carried out on the system's clock. */
export function spawnWorker(system: ActorSystem, name: string, delayMs = 0): ActorRef {
  return system.spawn(Worker, {
    name, input: { delayMs, address: `${system.node}/${name}` },
    onEffect: (effect, self) => {
      const e = effect as { type: string; origin?: Origin; delayMs?: number; n?: number };
      if (!e.origin) return;
      if (e.type === 'worker.fail') system.reply(e.origin, new RemoteError('WORKER_FAILING', `${self.address} is failing`, true), self);
      if (e.type === 'worker.reply') {
        const origin = e.origin;
        system.clock.setTimeout(() => system.reply(origin, { type: 'WorkDone', n: e.n ?? 0, worker: self.address, data: new Uint8Array() }, self), e.delayMs ?? 0);
      }
    },
  });
}

interface Node { system: ActorSystem; membership: Membership; reception: Receptionist }

/** Runs the example; `say` prints a line. */
export async function main(options: { say?: (line: string) => void; rounds?: number } = {}): Promise<{ shares: Record<string, number> }> {
  const say = options.say ?? ((line: string) => console.log(line));
  const rounds = options.rounds ?? 400;
  const bus = createMemoryBus();
  const cluster = { heartbeatIntervalMs: 100, acceptableHeartbeatPauseMs: 100, downAfterMs: 500 };
  const nodes: Node[] = [];
  const start = (name: string): Node => {
    const system = createSystem({ cluster: 'lb-demo', node: name, transport: bus.connect({ name }), logger: silentLogger(), messages: [messages] });
    const membership = joinCluster(system, cluster);
    const node = { system, membership, reception: createReceptionist(system, membership) };
    nodes.push(node);
    return node;
  };
  const client = start('client');
  const workers = ['w1', 'w2', 'w3', 'w4'].map((n) => {
    const node = start(n);
    node.reception.register('work', spawnWorker(node.system, 'worker', 2));
    return node;
  });
  let lb: LoadBalancer | undefined;
  try {
    lb = createLoadBalancer(client.system, {
      key: 'work', receptionist: client.reception, strategy: 'p2c-ewma', askTimeoutMs: 2_000,
      // each phase lasts well under a second: latency estimates fade within one, so a worker that
      // recovered is tried again in the next phase (the default, 10 s, suits long-running pools)
      ewmaDecayMs: 300,
      breaker: { consecutiveFailures: 3, openMs: 300 },
    });
    const balancer = lb;
    await until(() => balancer.backends().length === 4, 5_000, client.system);
    say(`pool: ${balancer.backends().map((b) => b.address).join(', ')} (found through the receptionist)`);

    const shares: Record<string, number> = {};
    const burst = async (label: string): Promise<void> => {
      const count: Record<string, number> = {};
      let failed = 0;
      const run = async (): Promise<void> => {
        for (let i = 0; i < rounds / 8; i++) {
          try {
            const done = await balancer.ask<WorkDone>({ type: 'Work', n: i, data: new Uint8Array() });
            const w = done.worker.split('/')[0]!;
            count[w] = (count[w] ?? 0) + 1;
            shares[w] = (shares[w] ?? 0) + 1;
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, run));
      say(`${label}: ${Object.entries(count).sort().map(([w, c]) => `${w}=${c}`).join(' ')}${failed ? ` (${failed} failed)` : ''}`);
    };

    await burst('all healthy      ');
    workers[0]!.system.ref('w1/worker').send({ type: 'SetBehaviour', delayMs: 40, failing: false });
    await burst('w1 slow (40 ms)  ');
    workers[0]!.system.ref('w1/worker').send({ type: 'SetBehaviour', delayMs: 2, failing: false });
    workers[1]!.system.ref('w2/worker').send({ type: 'SetBehaviour', delayMs: 2, failing: true });
    await burst('w2 failing       ');
    say(`w2's breaker: ${balancer.backends().find((b) => b.address === 'w2/worker')!.breaker}`);
    workers[1]!.system.ref('w2/worker').send({ type: 'SetBehaviour', delayMs: 2, failing: false });
    await until(() => balancer.backends().find((b) => b.address === 'w2/worker')!.breaker !== 'open', 2_000, client.system);
    await burst('w2 recovered     ');
    say(`w2's breaker: ${balancer.backends().find((b) => b.address === 'w2/worker')!.breaker} (a half-open probe succeeded)`);
    await workers[3]!.membership.leave();
    await until(() => balancer.backends().length === 3, 2_000, client.system);
    await burst('w4 left          ');
    say(`pool: ${balancer.backends().map((b) => b.address).join(', ')}; stats ${JSON.stringify(balancer.stats())}`);
    return { shares };
  } finally {
    await lb?.dispose();
    for (const n of nodes.reverse()) {
      await n.reception.stop();
      await n.membership.stop();
      await n.system.shutdown();
    }
  }
}

/** Wait for a condition on the system's clock (polling every 10 ms), failing after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number, system: ActorSystem): Promise<void> {
  const deadline = system.clock.now() + timeoutMs;
  while (!cond()) {
    if (system.clock.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => system.clock.setTimeout(resolve, 10));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
