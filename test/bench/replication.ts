/**
 * replication-sync — synchronous primary–backup replication (actors/replication/, W=1 of 2
 * backups) vs a JetStream publish to a 3-replica stream, both on the same 3-server nats-server
 * cluster on loopback, same run.
 *
 * Ours: three replicas of a list, each its own OS process (examples/replication-node.ts) on a
 * different server of the cluster, the primary elected through a lease in a NATS KV bucket; one
 * client in the bench process writes through `replicationClient` (a request to the primary, which
 * appends, ships to both backups, and answers once one of them acknowledged).
 * Baseline: `js.publish(subject, data)` on a stream with `num_replicas: 3` (acknowledged once the
 * stream's Raft group has it on a majority: the leader plus one follower — the same durability
 * count as W=1 of 2 backups).
 * One client, sequential writes; p50 and p99 of the write latency.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { replicationClient } from '../../actors/replication/client.ts';
import { connectNats, createSystem, silentLogger } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { startNatsCluster } from '../helpers/nats-server.ts';
import { eventually } from '../helpers/wait-for.ts';
import { alternate, percentile, row, type Bench } from './harness.ts';

const entry = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'replication-node.ts');
const LATENCY_BLOCK = 500;
const NAMES = ['r1', 'r2', 'r3'];

async function latencies(write: (i: number) => Promise<unknown>): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < LATENCY_BLOCK; i++) {
    const t0 = performance.now();
    await write(i);
    us.push((performance.now() - t0) * 1000);
  }
  return us;
}

export const bench: Bench = {
  name: 'replication-sync',
  description: 'sync replication, W=1 of 2 backups: write latency p50/p99 vs a JetStream publish to a 3-replica stream (3-server cluster)',
  needsNats: false,
  async run(ctx) {
    const cluster = await startNatsCluster(3);
    const urls = [...cluster.urls];
    const procs: ChildProcess[] = [];
    const nc = await connect({ servers: urls });
    const clientSystem = createSystem({ cluster: 'bench', node: 'client', transport: await connectNats({ servers: urls[0]!, name: 'client' }), logger: silentLogger() });
    try {
      for (const [i, name] of NAMES.entries()) {
        procs.push(await startNodeProcess({
          entry, env: { TROUPE_NATS_URL: urls[i]!, TROUPE_NODE: name, TROUPE_REPLICAS: NAMES.join(','), TROUPE_MODE: 'sync', TROUPE_W: '1', TROUPE_CLUSTER: 'bench', TROUPE_TTL_MS: '2000', TROUPE_MACHINE: 'counter' },
        }));
      }
      await clientSystem.ready();
      const list = replicationClient<{ type: 'ADD'; n: number }>(clientSystem, { name: 'list', replicas: NAMES, timeoutMs: 30_000 });
      await eventually('a primary', () => list.send({ type: 'ADD', n: 0 }));
      const jsm = await jetstreamManager(nc);
      await eventually('the 3-replica stream', () => jsm.streams.add({ name: 'benchrepl', subjects: ['benchrepl.>'], num_replicas: 3 }));
      const js = jetstream(nc);
      const payload = new TextEncoder().encode(JSON.stringify({ type: 'ADD', n: 123456 }));
      await eventually('the stream leader', () => js.publish('benchrepl.w', payload));
      const [o, j] = (await alternate([
        { name: 'troupe replication', round: () => latencies((i) => list.send({ type: 'ADD', n: i })) },
        { name: 'jetstream publish', round: () => latencies(() => js.publish('benchrepl.w', payload)) },
      ], ctx.rounds, ctx.log)).map((blocks) => blocks.flat());
      return [
        row('replication-sync', 'p50 write latency (µs)', percentile(o!, 50), percentile(j!, 50), 'JetStream publish, R3 stream', 0.67, 'lower'),
        row('replication-sync', 'p99 write latency (µs)', percentile(o!, 99), percentile(j!, 99), 'JetStream publish, R3 stream', 0, 'lower'),
      ];
    } finally {
      await clientSystem.shutdown();
      for (const p of procs) p.kill('SIGKILL');
      await nc.close();
      await cluster.stop();
    }
  },
};
