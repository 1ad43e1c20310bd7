/**
 * raft-throughput, raft-latency — troupe's Raft replicated KV vs NATS JetStream's own Raft (a KV
 * bucket with 3 replicas), both on the same 3-server nats-server cluster on loopback, same run.
 *
 * Ours: three Raft nodes, each its own OS process (examples/raft-cluster/node.ts) connected to a
 * different server of the cluster, file storage WITHOUT fsync per write (JetStream's file store
 * also syncs periodically, not per write, by default), log compacted every 1,000 entries, a KV
 * service actor in front of each; clients (in the bench process) ask
 * the leader's service `KvPut` (`RemoteKvClient`). A put is acknowledged once committed on a
 * majority and applied by the leader.
 * Baseline: `kv.put(key, value)` on a JetStream KV bucket with `replicas: 3` (acknowledged once
 * the stream's Raft group has it on a majority).
 * raft-throughput: 64 concurrent clients, commits/s. raft-latency: one client, p50 and p99.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import type { ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemoteKvClient } from '../../actors/raft/kv-service.ts';
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import { connectNats, createSystem, silentLogger } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { startNatsCluster } from '../helpers/nats-server.ts';
import { eventually } from '../helpers/wait-for.ts';
import { alternate, median, percentile, row, type Bench } from './harness.ts';

const entry = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'raft-cluster', 'node.ts');
const CLIENTS = 64;
const PUTS_PER_ROUND = 3_000;
const LATENCY_BLOCK = 300;

interface Setup {
  ours: { client: (id: string) => RemoteKvClient; stop(): Promise<void> };
  js: { put(key: string, value: string): Promise<number>; stop(): Promise<void> };
  stop(): Promise<void>;
}

async function setup(): Promise<Setup> {
  const cluster = await startNatsCluster(3);
  const urls = [...cluster.urls];
  const dir = mkdtempSync(join(tmpdir(), 'troupe-bench-raft-'));
  const names = ['r1', 'r2', 'r3'];
  const voters = names.map((n) => `${n}/raft`);
  // one OS process per Raft node, each on its own server of the cluster — as JetStream's replicas
  // are spread over the servers; the log is written without fsync, like JetStream's default
  const procs: ChildProcess[] = [];
  for (const [i, name] of names.entries()) {
    procs.push(await startNodeProcess({
      entry, env: { TROUPE_NATS_URL: urls[i]!, TROUPE_NODE: name, TROUPE_VOTERS: voters.join(','), TROUPE_DATA: dir, TROUPE_FSYNC: '0', TROUPE_CLUSTER: 'bench' },
    }));
  }
  const clientSystem = createSystem({ cluster: 'bench', node: 'clients', transport: await connectNats({ servers: urls[0]!, name: 'clients' }), logger: silentLogger(), messages: [kvMessages] });
  await clientSystem.ready();
  const services = names.map((n) => `${n}/kv`);
  // wait for a leader
  await eventually('a Raft leader', () => new RemoteKvClient(clientSystem, 'probe', services, { attemptTimeoutMs: 500, attempts: 3 }).put('warm', 'x'));
  const nc = await connect({ servers: urls });
  const kv = await eventually('the JetStream bucket', () => new Kvm(nc).create('benchraft', { replicas: 3, history: 1 }));
  return {
    ours: {
      client: (id) => new RemoteKvClient(clientSystem, id, services, { attemptTimeoutMs: 5_000, attempts: 5 }),
      stop: async () => { await clientSystem.shutdown(); for (const p of procs) p.kill('SIGKILL'); },
    },
    js: { put: (k, v) => kv.put(k, v), stop: () => nc.close() },
    stop: async () => { await cluster.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}

async function throughput(put: (client: number, i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    while (next < PUTS_PER_ROUND) await put(c, next++);
  }));
  return (PUTS_PER_ROUND / (performance.now() - t0)) * 1000;
}

async function latencies(put: (i: number) => Promise<unknown>): Promise<number[]> {
  const us: number[] = [];
  for (let i = 0; i < LATENCY_BLOCK; i++) {
    const t0 = performance.now();
    await put(i);
    us.push((performance.now() - t0) * 1000);
  }
  return us;
}

export const throughputBench: Bench = {
  name: 'raft-throughput',
  description: 'replicated-KV put commits/s with 64 concurrent clients vs JetStream KV puts on a 3-replica bucket (3-server cluster)',
  needsNats: false,
  async run(ctx) {
    const s = await setup();
    try {
      const clients = Array.from({ length: CLIENTS }, (_, i) => s.ours.client(`c${i}`));
      const [o, j] = await alternate([
        { name: 'troupe raft', round: () => throughput((c, i) => clients[c]!.put(`k${i % 100}`, `v${i}`)) },
        { name: 'jetstream kv', round: () => throughput((_c, i) => s.js.put(`k${i % 100}`, `v${i}`)) },
      ], ctx.rounds, ctx.log);
      return [row('raft-throughput', 'put commits/s, 64 clients', median(o!), median(j!), 'JetStream KV R3', 1.0, 'higher')];
    } finally {
      await s.ours.stop();
      await s.js.stop();
      await s.stop();
    }
  },
};

export const latencyBench: Bench = {
  name: 'raft-latency',
  description: 'one client: replicated-KV put commit latency p50/p99 vs a JetStream KV put on a 3-replica bucket',
  needsNats: false,
  async run(ctx) {
    const s = await setup();
    try {
      const client = s.ours.client('lat');
      const [o, j] = (await alternate([
        { name: 'troupe raft', round: () => latencies((i) => client.put(`k${i % 100}`, `v${i}`)) },
        { name: 'jetstream kv', round: () => latencies((i) => s.js.put(`k${i % 100}`, `v${i}`)) },
      ], ctx.rounds, ctx.log)).map((blocks) => blocks.flat());
      return [
        row('raft-latency', 'p50 commit latency (µs)', percentile(o!, 50), percentile(j!, 50), 'JetStream KV R3 put', 0.67, 'lower'),
        row('raft-latency', 'p99 commit latency (µs)', percentile(o!, 99), percentile(j!, 99), 'JetStream KV R3 put', 0, 'lower'),
      ];
    } finally {
      await s.ours.stop();
      await s.js.stop();
      await s.stop();
    }
  },
};
