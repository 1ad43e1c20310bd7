/**
 * lb-throughput — request/reply throughput through the load balancer to 4 workers, against a raw
 * NATS queue group of 4 members, both over one nats-server with CONCURRENCY requests in flight.
 *
 * Troupe: a client system and 4 worker systems (each its own NATS connection, as 5 processes would
 * have) in one cluster with membership and a receptionist; each worker system hosts one worker actor
 * registered under `work` and serving the queue group `work`. CONCURRENCY loops
 * `await lb.ask(Work { 64 bytes })` (strategy p2c-ewma, round-robin, and queue-group mode, where
 * the server picks the member) until TOTAL replies came back; every reply is checked and attributed to its
 * worker. Baseline (nats.js): 4 raw connections subscribed to one subject in queue group `workers`,
 * each answering `msg.respond(msg.data)`; the same loops over `nc.request`. Also reported: how evenly
 * each spread the work (max/min per-worker share).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLoadBalancer, type LoadBalancer } from '../../actors/load-balancer/load-balancer.ts';
import { serveQueueGroup } from '../../actors/load-balancer/queue-group.ts';
import type { LoadBalancingStrategy } from '../../actors/load-balancer/strategy.ts';
import { spawnWorker } from '../../examples/load-balancer.ts';
import { messages, type WorkDone } from '../../examples/load-balancer.pb.ts';
import {
  connectNats, createReceptionist, createRng, createSystem, joinCluster, silentLogger, type ActorSystem, type Membership, type Receptionist,
} from '../../framework/index.ts';
import { alternate, median, row, until, type Bench, type BenchRow, type Variant } from './harness.ts';
import { bytes } from './fixtures.ts';

const CONCURRENCY = 256;
const TOTAL = 15_000;
const PAYLOAD_BYTES = 64;
const TIMEOUT_MS = 10_000;
const WORKERS = 4;

interface Round { perSecond: number; spread: number }

/** Requests per second with CONCURRENCY in flight until TOTAL completed; `call` returns the worker that answered. */
async function drive(call: () => Promise<string>): Promise<Round> {
  let started = 0;
  const shares = new Map<string, number>();
  const loop = async (): Promise<void> => {
    while (started < TOTAL) {
      started++;
      const w = await call();
      shares.set(w, (shares.get(w) ?? 0) + 1);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  const ms = performance.now() - t0;
  const counts = [...shares.values()];
  if (counts.reduce((a, b) => a + b, 0) !== TOTAL) throw new Error('lb-throughput: replies missing');
  const spread = counts.length < WORKERS ? Number.POSITIVE_INFINITY : Math.max(...counts) / Math.min(...counts);
  return { perSecond: (TOTAL / ms) * 1000, spread };
}

interface Node { system: ActorSystem; membership: Membership; reception: Receptionist }

export const bench: Bench = {
  name: 'lb-throughput',
  description: `${CONCURRENCY} requests in flight through the load balancer to ${WORKERS} workers vs a raw NATS queue group of ${WORKERS}`,
  needsNats: true,
  async run(ctx) {
    const data = bytes(PAYLOAD_BYTES);
    const nodes: Node[] = [];
    const start = async (name: string): Promise<Node> => {
      const system = createSystem({
        cluster: 'benchlb', node: name, logger: silentLogger(), messages: [messages],
        transport: await connectNats({ servers: ctx.natsUrl, name: `benchlb-${name}` }),
      });
      await system.ready();
      const membership = joinCluster(system);
      const node = { system, membership, reception: createReceptionist(system, membership) };
      nodes.push(node);
      return node;
    };
    const raw: NatsConnection[] = [];
    const balancers: LoadBalancer[] = [];
    try {
      const client = await start('client');
      for (let i = 1; i <= WORKERS; i++) {
        const w = await start(`w${i}`);
        const worker = spawnWorker(w.system, 'worker');
        w.reception.register('work', worker);
        serveQueueGroup(w.system, { key: 'work', ref: worker, messages });
      }
      const lb = (strategy: LoadBalancingStrategy): LoadBalancer => {
        const b = createLoadBalancer(client.system, {
          key: 'work', receptionist: client.reception, strategy, name: `lb-${strategy}`, askTimeoutMs: TIMEOUT_MS, rng: createRng(7), messages,
        });
        balancers.push(b);
        return b;
      };
      const p2c = lb('p2c-ewma');
      const rr = lb('round-robin');
      const qg = lb('queue-group');
      await until(() => p2c.backends().length === WORKERS && rr.backends().length === WORKERS, 'the balancers to find 4 workers', 10_000);

      const requester = await connect({ servers: ctx.natsUrl, name: 'benchlb-raw-requester' });
      raw.push(requester);
      for (let i = 1; i <= WORKERS; i++) {
        const nc = await connect({ servers: ctx.natsUrl, name: `benchlb-raw-w${i}` });
        raw.push(nc);
        const id = new TextEncoder().encode(`w${i}`);
        nc.subscribe('bench.lb.work', {
          queue: 'workers',
          callback: (_err, msg) => {
            // answer with the worker's id after the payload, so the requester can attribute it
            const out = new Uint8Array(msg.data.length + id.length);
            out.set(msg.data);
            out.set(id, msg.data.length);
            msg.respond(out);
          },
        });
        await nc.flush();
      }
      const decoder = new TextDecoder();
      const ask = (b: LoadBalancer) => async (): Promise<string> => {
        const done = await b.ask<WorkDone>({ type: 'Work', n: 1, data }, { timeoutMs: TIMEOUT_MS });
        if (done.data.length !== PAYLOAD_BYTES) throw new Error(`lb-throughput: a reply carried ${done.data.length} bytes, not ${PAYLOAD_BYTES}`);
        return done.worker;
      };
      const variants: Variant<Round>[] = [
        { name: 'troupe lb p2c-ewma', round: () => drive(ask(p2c)) },
        { name: 'troupe lb round-robin', round: () => drive(ask(rr)) },
        { name: 'troupe lb queue-group', round: () => drive(ask(qg)) },
        {
          name: 'nats.js queue group',
          round: () => drive(async () => {
            const m = await requester.request('bench.lb.work', data, { timeout: TIMEOUT_MS });
            if (m.data.length !== PAYLOAD_BYTES + 2) throw new Error('lb-throughput: a raw reply lost its payload');
            return decoder.decode(m.data.subarray(PAYLOAD_BYTES));
          }),
        },
      ];
      const [ours, ourRr, ourQg, base] = await alternate(variants, ctx.rounds, ctx.log);
      const rows: BenchRow[] = [
        row('lb-throughput', `p2c-ewma throughput, ${CONCURRENCY} in flight (req/s)`, median(ours!.map((r) => r.perSecond)), median(base!.map((r) => r.perSecond)), 'nats.js queue group', 0.85, 'higher'),
        row('lb-throughput', `round-robin throughput, ${CONCURRENCY} in flight (req/s)`, median(ourRr!.map((r) => r.perSecond)), median(base!.map((r) => r.perSecond)), 'nats.js queue group', 0.85, 'higher'),
        row('lb-throughput', `queue-group mode throughput, ${CONCURRENCY} in flight (req/s)`, median(ourQg!.map((r) => r.perSecond)), median(base!.map((r) => r.perSecond)), 'nats.js queue group', 0.85, 'higher'),
        row('lb-throughput', 'p2c-ewma per-worker share spread (max/min)', median(ours!.map((r) => r.spread)), median(base!.map((r) => r.spread)), 'nats.js queue group', 0, 'lower'),
        row('lb-throughput', 'round-robin per-worker share spread (max/min)', median(ourRr!.map((r) => r.spread)), median(base!.map((r) => r.spread)), 'nats.js queue group', 0, 'lower'),
        row('lb-throughput', 'queue-group mode per-worker share spread (max/min)', median(ourQg!.map((r) => r.spread)), median(base!.map((r) => r.spread)), 'nats.js queue group', 0, 'lower'),
      ];
      const dead = nodes.reduce((s, n) => s + n.system.deadLetters.count, 0);
      if (dead > 0) throw new Error(`lb-throughput: ${dead} dead letters`);
      return rows;
    } finally {
      for (const b of balancers) await b.dispose();
      await Promise.all(raw.map((nc) => nc.drain()));
      for (const n of nodes.reverse()) {
        await n.reception.stop();
        await n.membership.stop();
        await n.system.shutdown();
      }
    }
  },
};
