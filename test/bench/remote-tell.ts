/**
 * remote-tell — actor-to-actor tell throughput over one nats-server, 64-byte payload.
 *
 * Measured (troupe): two systems, `a` and `b`, each with its own NATS connection (as two processes
 * would have). A producer actor on `a`, on each `Burst { count }` event (at most BURST), tells
 * `count` messages `Payload { data: 64 bytes, seq }` to a counter actor on `b`. Per message that is:
 * one `tell` effect → `deliver()` → envelope encode → NATS publish → server → b's one wildcard
 * subscription → envelope decode → b's mailbox → one counter transition.
 * Baseline (nats.js): `nc1.publish(subject, 64 bytes)` → `nc2.subscribe` callback that counts, on two
 * raw `@nats-io/transport-node` connections. Peer (moleculer 0.14, NATS transporter, JSON
 * serializer): broker `a` `emit`s an event whose payload is a 64-character string to a service on
 * broker `b` whose handler counts (fire-and-forget, as a tell is).
 *
 * Every variant uses the same windowed flow control — at most WINDOW messages sent and not yet
 * counted by the receiver — so none overruns a mailbox or becomes a slow consumer, and a round ends
 * only when the receiver has counted all N messages (verified; troupe also checks zero dead letters).
 * All parties live in this one process (2 cores shared with nats-server): the numbers are ratios.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { alternate, median, row, tick, until, type Bench, type BenchRow, type Variant } from './harness.ts';
import { bytes, Counter, countOf, natsPair, Producer } from './fixtures.ts';
import { loadMoleculer, type MoleculerBroker } from './peers.ts';

const N = 100_000;
const N_MOLECULER = 30_000;
const WINDOW = 5_000;
const BURST = 1_000;
const PAYLOAD_BYTES = 64;

/**
 * Send `n` messages keeping at most WINDOW of them uncounted by the receiver, then wait until all
 * are counted. `send(first, count)` sends messages first…first+count-1 and returns how many it sent.
 * Returns messages per second.
 */
async function windowed(n: number, send: (first: number, count: number) => number, received: () => number, what: string): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  while (sent < n) {
    const limit = Math.min(n, received() + WINDOW);
    while (sent < limit) sent += send(sent, limit - sent);
    await tick();
  }
  await until(() => received() >= n, what);
  const ms = performance.now() - t0;
  if (received() !== n) throw new Error(`remote-tell: ${what} counted ${received()}, expected ${n}`);
  return (n / ms) * 1000;
}

async function troupeVariant(url: string): Promise<Variant<number> & { close(): Promise<void> }> {
  const pair = await natsPair(url, 'benchtell');
  const data = bytes(PAYLOAD_BYTES);
  let round = 0;
  return {
    name: 'troupe producer→counter tell',
    round: async () => {
      // a fresh receiver per round, so its count starts at 0
      round++;
      const sink = pair.b.spawn(Counter, { name: `sink-${round}` });
      const producer = pair.a.spawn(Producer, { name: `producer-${round}`, input: { to: sink.address } });
      await tick();
      const burst = (first: number, max: number): number => {
        const count = Math.min(BURST, max);
        producer.send({ type: 'Burst', count, first, data });
        return count;
      };
      const rate = await windowed(N, burst, () => countOf(pair.b, sink.address), 'the troupe counter actor');
      const dead = pair.a.deadLetters.count + pair.b.deadLetters.count;
      if (dead !== 0) throw new Error(`remote-tell: ${dead} dead letters`);
      pair.a.stop(producer);
      pair.b.stop(sink);
      return rate;
    },
    close: () => pair.close(),
  };
}

async function natsVariant(url: string): Promise<Variant<number> & { close(): Promise<void> }> {
  const nc1: NatsConnection = await connect({ servers: url, name: 'bench-raw-pub' });
  const nc2: NatsConnection = await connect({ servers: url, name: 'bench-raw-sub' });
  let received = 0;
  const sub = nc2.subscribe('bench.raw.tell', { callback: () => void received++ });
  await nc2.flush();
  const data = bytes(PAYLOAD_BYTES);
  return {
    name: 'nats.js publish→subscribe',
    round: async () => {
      received = 0;
      const publish = (_first: number, count: number): number => {
        for (let i = 0; i < count; i++) nc1.publish('bench.raw.tell', data);
        return count;
      };
      return windowed(N, publish, () => received, 'the raw subscriber');
    },
    close: async () => {
      sub.unsubscribe();
      await Promise.all([nc1.drain(), nc2.drain()]);
    },
  };
}

async function moleculerVariant(url: string, log: (line: string) => void): Promise<Variant<number> & { close(): Promise<void>; version: string }> {
  const { ServiceBroker, version } = loadMoleculer(log);
  const options = (nodeID: string): object => ({
    nodeID, namespace: 'benchtell', transporter: url, logger: false, metrics: false, tracing: false,
  });
  const a: MoleculerBroker = new ServiceBroker(options('a'));
  const b: MoleculerBroker = new ServiceBroker(options('b'));
  let received = 0;
  b.createService({ name: 'sink', events: { 'bench.payload': () => void received++ } });
  await Promise.all([a.start(), b.start()]);
  await a.waitForServices('sink', 10_000);
  const data = 'x'.repeat(PAYLOAD_BYTES);
  return {
    name: `moleculer ${version} emit`,
    version,
    round: async () => {
      received = 0;
      const emit = (first: number, count: number): number => {
        for (let i = 0; i < count; i++) void a.emit('bench.payload', { data, seq: first + i });
        return count;
      };
      return windowed(N_MOLECULER, emit, () => received, 'the moleculer service');
    },
    close: async () => {
      await Promise.all([a.stop(), b.stop()]);
    },
  };
}

export const bench: Bench = {
  name: 'remote-tell',
  description: 'actor-to-actor tell over NATS between two systems, 64-byte payload, vs raw nats.js publish→subscribe and moleculer emit',
  needsNats: true,
  async run(ctx) {
    const ours = await troupeVariant(ctx.natsUrl);
    const raw = await natsVariant(ctx.natsUrl);
    let mol: Awaited<ReturnType<typeof moleculerVariant>> | undefined;
    try {
      mol = await moleculerVariant(ctx.natsUrl, ctx.log);
    } catch (err) {
      ctx.log(`  moleculer unavailable, its row is skipped: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      const variants = mol ? [ours, raw, mol] : [ours, raw];
      const results = await alternate(variants, ctx.rounds, ctx.log);
      const o = median(results[0]!);
      const rows: BenchRow[] = [row('remote-tell', 'throughput (msg/s)', o, median(results[1]!), 'nats.js publish→subscribe', 0.4, 'higher')];
      if (mol) rows.push(row('remote-tell', 'throughput (msg/s)', o, median(results[2]!), 'moleculer', 2, 'higher'));
      return rows;
    } finally {
      await Promise.all([ours.close(), raw.close(), mol?.close()]);
    }
  },
};
