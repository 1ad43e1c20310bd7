/**
 * raft-cluster — a Raft KV in three OS processes over a real NATS server. This process is the
 * client: it writes keys while the leader's process is killed with SIGKILL (twice), each time
 * restarted from its log; then it reads every key back linearizably and checks that every
 * acknowledged write is there.
 *
 * Run: npx tsx framework/cli.ts run raft-cluster [--nats nats://127.0.0.1:4222]
 *      (without --nats, a local nats-server is started when one is installed)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RemoteKvClient } from '../../actors/raft/kv-service.ts';
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import { connectNats, createLogger, createSystem } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { NATS_SERVER_MISSING, natsServerAvailable, startNatsServer, type NatsServerHandle } from '../../framework/nats-server.ts';

const here = dirname(fileURLToPath(import.meta.url));
const NODES = ['a', 'b', 'c'];

export async function main(options: { nats?: string; say?: (line: string) => void } = {}): Promise<{ acked: number; verified: number }> {
  const say = options.say ?? ((line: string) => console.log(line));
  let server: NatsServerHandle | undefined;
  let url = options.nats;
  if (!url) {
    if (!natsServerAvailable()) throw new Error(`raft-cluster needs a NATS server: pass --nats URL, or ${NATS_SERVER_MISSING}`);
    server = await startNatsServer();
    url = server.url;
    say(`started a local nats-server at ${url}`);
  }
  const data = mkdtempSync(join(tmpdir(), 'troupe-raft-cluster-'));
  const procs = new Map<string, ChildProcess>();
  const start = async (node: string): Promise<void> => {
    procs.set(node, await startNodeProcess({
      entry: join(here, 'node.ts'),
      env: { TROUPE_NATS_URL: url!, TROUPE_NODE: node, TROUPE_VOTERS: NODES.map((n) => `${n}/raft`).join(','), TROUPE_DATA: data },
      onLine: (line) => { if (line.startsWith('role leader')) say(`  [${node}] is the leader (${line.slice('role leader '.length)})`); },
    }));
  };
  const client = createSystem({
    cluster: 'raftkv', node: 'client', transport: await connectNats({ servers: url, name: 'client' }),
    logger: createLogger({ level: 'error' }), messages: [kvMessages],
  });
  try {
    await Promise.all(NODES.map(start));
    await client.ready();
    say('three Raft KV nodes are up, each its own process');
    const kv = new RemoteKvClient(client, 'demo', NODES.map((n) => `${n}/kv`), { attemptTimeoutMs: 300, attempts: 50 });
    const acked = new Map<string, string>();
    let n = 0;
    const write = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const key = `k${n % 10}`;
        const value = `v${++n}`;
        await kv.put(key, value);
        acked.set(key, value);
      }
    };
    await write(20);
    for (let round = 1; round <= 2; round++) {
      const leader = kv.lastLeader!.slice(0, kv.lastLeader!.indexOf('/'));
      say(`killing the leader's process (${leader}) with SIGKILL…`);
      const t0 = performance.now();
      procs.get(leader)!.kill('SIGKILL');
      while (kv.lastLeader!.startsWith(`${leader}/`)) await write(1);
      say(`  writes resumed through ${kv.lastLeader} ${Math.round(performance.now() - t0)} ms after the kill`);
      await write(10);
      await start(leader);
      say(`  ${leader} restarted from its log and rejoined`);
    }
    let verified = 0;
    for (const [key, value] of acked) {
      const got = await kv.get(key);
      if (got !== value) throw new Error(`acknowledged write lost: ${key} should be ${value}, read ${got}`);
      verified++;
    }
    say(`${n} writes acknowledged; all ${verified} keys read back linearizably with their last acknowledged value`);
    return { acked: n, verified };
  } finally {
    await client.shutdown();
    for (const p of procs.values()) p.kill('SIGKILL');
    await server?.stop();
    rmSync(data, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
