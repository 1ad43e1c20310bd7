/**
 * raft-failover — SIGKILL the leader's process under load; the time from the kill to the first
 * write committed by the new leader. Ours: three Raft KV node processes (examples/raft-cluster,
 * election timeout 150–300 ms) over one nats-server, a client writing continuously; 20 trials, the
 * killed node restarted from its log each time. Baseline row: JetStream's own failover on a
 * 3-server cluster — the server leading a 3-replica KV stream is killed; time until a put succeeds
 * again (5 trials, each server restarted after). Reported: p50 (target ≤ 500 ms for ours).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { RemoteKvClient } from '../../actors/raft/kv-service.ts';
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import { connectNats, createSystem, silentLogger } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { startNatsCluster, startNatsServer } from '../helpers/nats-server.ts';
import { eventually } from '../helpers/wait-for.ts';
import { median, type Bench, type BenchRow } from './harness.ts';

const here = dirname(fileURLToPath(import.meta.url));
const entry = resolve(here, '..', '..', 'examples', 'raft-cluster', 'node.ts');
const NODES = ['a', 'b', 'c'];
const TRIALS = 20;
const JS_TRIALS = 5;

async function oursTrials(log: (l: string) => void): Promise<number[]> {
  const srv = await startNatsServer();
  const data = mkdtempSync(join(tmpdir(), 'troupe-bench-failover-'));
  const procs = new Map<string, ChildProcess>();
  const start = async (node: string): Promise<void> => {
    procs.set(node, await startNodeProcess({
      entry, env: { TROUPE_NATS_URL: srv.url, TROUPE_NODE: node, TROUPE_VOTERS: NODES.map((n) => `${n}/raft`).join(','), TROUPE_DATA: data },
    }));
  };
  const client = createSystem({ cluster: 'raftkv', node: 'bench', transport: await connectNats({ servers: srv.url }), logger: silentLogger(), messages: [kvMessages] });
  try {
    await Promise.all(NODES.map(start));
    await client.ready();
    const kv = new RemoteKvClient(client, 'bench', NODES.map((n) => `${n}/kv`), { attemptTimeoutMs: 200, attempts: 100 });
    let n = 0;
    await kv.put('warm', 'x');
    const out: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      for (let i = 0; i < 5; i++) await kv.put(`k${i}`, `v${++n}`);
      const leaderNode = kv.lastLeader!.slice(0, kv.lastLeader!.indexOf('/'));
      const killedAt = performance.now();
      procs.get(leaderNode)!.kill('SIGKILL');
      // first write committed by another node
      for (;;) {
        await kv.put(`k${n % 5}`, `v${++n}`);
        if (!kv.lastLeader!.startsWith(`${leaderNode}/`)) break;
      }
      out.push(performance.now() - killedAt);
      log(`  raft failover trial ${t + 1}: ${Math.round(out[out.length - 1]!)} ms`);
      await start(leaderNode);
    }
    return out;
  } finally {
    await client.shutdown();
    for (const p of procs.values()) p.kill('SIGKILL');
    await srv.stop();
    rmSync(data, { recursive: true, force: true });
  }
}

async function jetstreamTrials(log: (l: string) => void): Promise<number[]> {
  const cluster = await startNatsCluster(3);
  const nc = await connect({ servers: [...cluster.urls], reconnectTimeWait: 50 });
  const out: number[] = [];
  try {
    const kv = await eventually('the JetStream bucket', () => new Kvm(nc).create('failover', { replicas: 3 }));
    for (let t = 0; t < JS_TRIALS; t++) {
      await eventually('a put before the kill', () => kv.put('k', `v${t}`));
      const leader = await eventually('the stream leader', async () => (await (await jetstreamManager(nc)).streams.info('KV_failover')).cluster?.leader);
      const index = cluster.servers.findIndex((_, i) => `s${i + 1}` === leader);
      const killedAt = performance.now();
      await cluster.kill(index);
      await eventually('a put after the kill', () => kv.put('k', `after${t}`), { timeoutMs: 60_000 });
      out.push(performance.now() - killedAt);
      log(`  jetstream failover trial ${t + 1}: ${Math.round(out[out.length - 1]!)} ms`);
      await cluster.restart(index);
      await cluster.waitForRoutes();
    }
    return out;
  } finally {
    await nc.close();
    await cluster.stop();
  }
}

export const bench: Bench = {
  name: 'raft-failover',
  description: 'SIGKILL the leader process under load: time to the first write committed by the new leader (20 trials) vs JetStream stream-leader failover',
  needsNats: false,
  async run(ctx) {
    const ours = await oursTrials(ctx.log);
    const js = await jetstreamTrials(ctx.log);
    const p50 = median(ours);
    const rows: BenchRow[] = [
      { bench: 'raft-failover', metric: 'p50 kill → first commit on the new leader (ms)', ours: p50, baseline: 500, baselineName: 'target (500 ms)', ratio: 500 / p50, target: 1, pass: p50 <= 500 },
      { bench: 'raft-failover', metric: 'p50 kill → first commit on the new leader (ms)', ours: p50, baseline: median(js), baselineName: 'JetStream stream-leader failover', ratio: median(js) / p50, target: 0, pass: true },
    ];
    return rows;
  },
};
