/**
 * quorum-rw — a quorum write then a quorum read, N = 3, W = R = 2, over one nats-server.
 *
 * Measured (troupe): `group.put(key, 32-char value)` then `group.get(key)` from a client system,
 * each a coordinator chart run that scatters `QuorumStore` / `QuorumFetch` asks to three replica
 * actors on three other systems (each its own NATS connection) and decides after two answers —
 * the read also checks whether a repair is due (it never is here: every write reached W replicas).
 * Baseline (nats.js): the same wire pattern without troupe — three `nc.request`s of 64 bytes from
 * one raw connection to three raw responders (one connection each) that answer at once, resolved
 * when two replies are in; twice per sample (write, read). A third variant, reported without a
 * target, sends the same `QuorumStore` / `QuorumFetch` asks from the client system and waits for two
 * replies, without the coordinator chart — it splits troupe's cost between the asks (runtime,
 * replicas) and the chart. Alternated in blocks of BLOCK samples; p50/p99 over all samples of a
 * variant pooled, as in ask-serial. Every read is checked.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createQuorumGroup, quorumMessages } from '../../actors/quorum/quorum.ts';
import { spawnQuorumReplica } from '../../actors/quorum/replica.ts';
import { connectNats, createSystem, silentLogger, type ActorSystem, type MessageObject } from '../../framework/index.ts';
import { alternate, percentile, row, type Bench, type Variant } from './harness.ts';
import { bytes } from './fixtures.ts';

const BLOCK = 500;
const TIMEOUT_MS = 5_000;
const VALUE = 'v'.repeat(32);

interface Samples { write: number[]; read: number[] }

async function timeBlock(write: (i: number) => Promise<void>, read: (i: number) => Promise<void>): Promise<Samples> {
  const out: Samples = { write: new Array<number>(BLOCK), read: new Array<number>(BLOCK) };
  for (let i = 0; i < BLOCK; i++) {
    const t0 = performance.now();
    await write(i);
    const t1 = performance.now();
    await read(i);
    out.write[i] = (t1 - t0) * 1000;
    out.read[i] = (performance.now() - t1) * 1000;
  }
  return out;
}

/** Asks to every replica, resolved by the second reply. */
function askTwoOfThree(system: ActorSystem, replicas: readonly string[], message: MessageObject): Promise<void> {
  return new Promise((resolve, reject) => {
    let acks = 0;
    let failed = 0;
    for (const r of replicas) {
      system.ask(r, message, { timeoutMs: TIMEOUT_MS }).then(
        () => { if (++acks === 2) resolve(); },
        (err: unknown) => { if (++failed > replicas.length - 2) reject(err as Error); },
      );
    }
  });
}

/** Three raw requests, resolved by the second reply (the third is not waited for). */
function scatterGather(nc: NatsConnection, subjects: readonly string[], data: Uint8Array, needed: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let acks = 0;
    let failed = 0;
    for (const s of subjects) {
      nc.request(s, data, { timeout: TIMEOUT_MS }).then(
        () => { if (++acks === needed) resolve(); },
        (err: unknown) => { if (++failed > subjects.length - needed) reject(err as Error); },
      );
    }
  });
}

export const bench: Bench = {
  name: 'quorum-rw',
  description: 'quorum put + get, N=3 W=R=2, over NATS (4 systems), p50 latency, vs 3 raw nc.requests waiting for 2',
  needsNats: true,
  async run(ctx) {
    const system = async (node: string): Promise<ActorSystem> => {
      const s = createSystem({
        cluster: 'benchq', node, logger: silentLogger(), messages: [quorumMessages],
        transport: await connectNats({ servers: ctx.natsUrl, name: `benchq-${node}` }),
      });
      await s.ready();
      return s;
    };
    const systems = await Promise.all(['client', 'r1', 'r2', 'r3'].map(system));
    const [client, ...replicaSystems] = systems as [ActorSystem, ...ActorSystem[]];
    const raw = await Promise.all([0, 1, 2, 3].map((i) => connect({ servers: ctx.natsUrl, name: `bench-raw-${i}` })));
    const [rawClient, ...rawReplicas] = raw as [NatsConnection, ...NatsConnection[]];
    try {
      const replicas = replicaSystems.map((s) => spawnQuorumReplica(s, { name: 'replica' }).address);
      const group = createQuorumGroup(client, { replicas, w: 2, r: 2, timeoutMs: TIMEOUT_MS });
      const subjects = rawReplicas.map((nc, i) => {
        const subject = `bench.raw.replica${i}`;
        nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
        return subject;
      });
      await Promise.all(rawReplicas.map((nc) => nc.flush()));
      const data = bytes(64);
      const variants: Variant<Samples>[] = [
        {
          name: 'troupe quorum',
          round: () => timeBlock(
            async (i) => void await group.put(`key-${i % 64}`, VALUE),
            async (i) => {
              const r = await group.get(`key-${i % 64}`);
              if (r.value !== VALUE) throw new Error(`quorum-rw: read ${String(r.value)} for key-${i % 64}`);
            },
          ),
        },
        {
          name: 'troupe asks, no chart',
          round: () => {
            let seq = 0;
            return timeBlock(
              (i) => askTwoOfThree(client, replicas, {
                type: 'QuorumStore', key: `key-${i % 64}`, hintFor: '',
                items: [{ value: VALUE, deleted: false, version: { wallMs: client.clock.now(), logical: ++seq, writer: 'client/asks', vector: {} } }],
              } as MessageObject),
              (i) => askTwoOfThree(client, replicas, { type: 'QuorumFetch', key: `key-${i % 64}` } as MessageObject),
            );
          },
        },
        {
          name: 'nats.js scatter-gather',
          round: () => timeBlock(() => scatterGather(rawClient, subjects, data, 2), () => scatterGather(rawClient, subjects, data, 2)),
        },
      ];
      const [ours, asks, base] = (await alternate(variants, ctx.rounds * 3, () => undefined)).map((blocks) => ({
        write: blocks.flatMap((b) => b.write), read: blocks.flatMap((b) => b.read),
      }));
      for (const [name, s] of [['troupe quorum', ours!], ['troupe asks, no chart', asks!], ['nats.js scatter-gather', base!]] as const) {
        ctx.log(`  ${name}: ${s.write.length} samples; write p50 ${percentile(s.write, 50).toFixed(0)} µs p99 ${percentile(s.write, 99).toFixed(0)} µs; read p50 ${percentile(s.read, 50).toFixed(0)} µs p99 ${percentile(s.read, 99).toFixed(0)} µs`);
      }
      return [
        row('quorum-rw', 'write p50 latency (µs)', percentile(ours!.write, 50), percentile(base!.write, 50), 'nats.js 3 requests, 2 awaited', 0.9, 'lower'),
        row('quorum-rw', 'read p50 latency (µs)', percentile(ours!.read, 50), percentile(base!.read, 50), 'nats.js 3 requests, 2 awaited', 0.9, 'lower'),
        row('quorum-rw', 'write p99 latency (µs)', percentile(ours!.write, 99), percentile(base!.write, 99), 'nats.js 3 requests, 2 awaited', 0, 'lower'),
        row('quorum-rw', 'read p99 latency (µs)', percentile(ours!.read, 99), percentile(base!.read, 99), 'nats.js 3 requests, 2 awaited', 0, 'lower'),
        // the split: troupe's asks alone (same messages, no coordinator chart) — reported, not judged
        row('quorum-rw', 'write p50 µs, 3 troupe asks (no chart)', percentile(asks!.write, 50), percentile(base!.write, 50), 'nats.js 3 requests, 2 awaited', 0, 'lower'),
        row('quorum-rw', 'read p50 µs, 3 troupe asks (no chart)', percentile(asks!.read, 50), percentile(base!.read, 50), 'nats.js 3 requests, 2 awaited', 0, 'lower'),
      ];
    } finally {
      await Promise.all([...systems.map((s) => s.shutdown()), ...raw.map((nc) => nc.drain())]);
    }
  },
};
