/**
 * Raft in 3 OS processes over a real nats-server: a client writes under load while the leader's
 * process is killed with SIGKILL, three times (each time restarted from its snapshot and log —
 * logs are compacted every 25 entries, so restarts and catch-ups go through snapshots). Every
 * acknowledged write must survive, and a new leader must serve within the bound.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RemoteKvClient } from '../../actors/raft/kv-service.ts';
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import { silentLogger } from '../../framework/log.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { createSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const NODES = ['a', 'b', 'c'];
const entry = join(import.meta.dirname, '..', '..', 'examples', 'raft-cluster', 'node.ts');

describe.skipIf(!requireNatsServer())('Raft KV in 3 OS processes over NATS', () => {
  const servers = natsServerScope();
  const procs = new Map<string, ChildProcess>();
  const data = mkdtempSync(join(tmpdir(), 'troupe-raft-procs-'));
  afterAll(async () => {
    for (const p of procs.values()) p.kill('SIGKILL');
    await servers.stopAll();
    rmSync(data, { recursive: true, force: true });
  });

  const start = async (url: string, node: string): Promise<void> => {
    procs.set(node, await startNodeProcess({
      entry, env: { TROUPE_NATS_URL: url, TROUPE_NODE: node, TROUPE_VOTERS: NODES.map((n) => `${n}/raft`).join(','), TROUPE_DATA: data, TROUPE_SNAPSHOT_EVERY: '25' },
    }));
  };

  it('every acknowledged write survives repeated SIGKILLs of the leader; a new leader serves within the bound', async () => {
    const srv = await servers.start();
    await Promise.all(NODES.map((n) => start(srv.url, n)));
    const client = createSystem({
      cluster: 'raftkv', node: 'client', transport: await connectNats({ servers: srv.url, name: 'client' }),
      logger: silentLogger(), messages: [kvMessages],
    });
    await client.ready();
    const kv = new RemoteKvClient(client, 'w1', NODES.map((n) => `${n}/kv`), { attemptTimeoutMs: 400, attempts: 30 });
    const acked = new Map<string, string>();
    /** Writes after the last acknowledged one per key whose outcome is unknown (they may still apply). */
    const maybe = new Map<string, string[]>();
    let n = 0;
    const write = async (): Promise<void> => {
      const key = `k${n % 20}`;
      const value = `v${++n}`;
      try {
        await kv.put(key, value);
        acked.set(key, value);
        maybe.set(key, []);
      } catch {
        maybe.set(key, [...(maybe.get(key) ?? []), value]); // indeterminate: not acknowledged
      }
    };
    await waitFor(async () => { await write(); return acked.size > 0; }, { timeoutMs: 20_000, intervalMs: 50 });
    const failoverMs: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 30; i++) await write();
      const leaderNode = kv.lastLeader!.slice(0, kv.lastLeader!.indexOf('/'));
      const before = acked.size;
      procs.get(leaderNode)!.kill('SIGKILL');
      const killedAt = performance.now();
      const ackedBefore = n;
      await waitFor(async () => { await write(); return n > ackedBefore && acked.size >= before && kv.lastLeader !== undefined && !kv.lastLeader.startsWith(`${leaderNode}/`); }, { timeoutMs: 30_000, intervalMs: 10 });
      failoverMs.push(performance.now() - killedAt);
      await start(srv.url, leaderNode); // restart from its log
    }
    for (let i = 0; i < 20; i++) await write();
    // every acknowledged write is there, read linearizably
    for (const [key, value] of acked) expect([value, ...(maybe.get(key) ?? [])]).toContain(await kv.get(key));
    console.log(`raft processes: ${n} writes attempted, ${acked.size} keys checked, failover ms: ${failoverMs.map((x) => Math.round(x)).join(', ')}`);
    for (const ms of failoverMs) expect(ms).toBeLessThan(10_000);
    await client.shutdown();
  }, 180_000);
});
