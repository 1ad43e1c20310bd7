/**
 * Replication in 3 OS processes over a real nats-server (sync mode, W=1 of 2 backups; the primary
 * elected through a lease in a NATS KV bucket): a client writes under load — several writes in
 * flight — while the primary's process is killed with SIGKILL. Every acknowledged write must be
 * in the new primary's list, and the new primary must serve within the bound.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replicationClient } from '../../actors/replication/client.ts';
import { silentLogger } from '../../framework/log.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { createSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const NODES = ['a', 'b', 'c'];
const entry = join(import.meta.dirname, '..', '..', 'examples', 'replication-node.ts');

describe.skipIf(!requireNatsServer())('replication in 3 OS processes over NATS', () => {
  const servers = natsServerScope();
  const procs = new Map<string, ChildProcess>();
  const dumps = new Map<string, number[]>();
  afterAll(async () => {
    for (const p of procs.values()) p.kill('SIGKILL');
    await servers.stopAll();
  });

  it('sync: SIGKILL the primary under load — no acknowledged write is lost; a new primary serves within the bound', async () => {
    const srv = await servers.start({ jetstream: true });
    await Promise.all(NODES.map(async (node) => {
      procs.set(node, await startNodeProcess({
        entry, stdin: 'pipe',
        env: { TROUPE_NATS_URL: srv.url, TROUPE_NODE: node, TROUPE_REPLICAS: NODES.join(','), TROUPE_MODE: 'sync', TROUPE_W: '1', TROUPE_TTL_MS: '1000' },
        onLine: (line) => {
          if (line.startsWith('items ')) dumps.set(node, JSON.parse(line.slice(6)) as number[]);
        },
      }));
    }));
    const client = createSystem({ cluster: 'repl', node: 'client', transport: await connectNats({ servers: srv.url, name: 'client' }), logger: silentLogger() });
    await client.ready();
    const list = replicationClient(client, { name: 'list', replicas: NODES, timeoutMs: 10_000, attemptTimeoutMs: 1_000 });

    const acked: number[] = [];
    const ackedBy: string[] = [];
    let unknown = 0;
    let next = 0;
    let stop = false;
    const writer = async (): Promise<void> => {
      while (!stop) {
        const n = ++next;
        try {
          await list.send({ type: 'ADD', n });
          acked.push(n);
          ackedBy.push(list.primary!);
        } catch {
          unknown++; // not acknowledged: may or may not be in the list
        }
      }
    };
    const writers = Array.from({ length: 4 }, writer);
    await waitFor(() => acked.length >= 300, { timeoutMs: 20_000, message: () => `${acked.length} writes acknowledged` });
    const old = list.primary!;
    const before = acked.length;
    procs.get(old)!.kill('SIGKILL');
    const killedAt = performance.now();
    await waitFor(() => ackedBy.slice(before).some((p) => p !== old), { timeoutMs: 15_000, message: 'a write acknowledged by a new primary' });
    const failoverMs = performance.now() - killedAt;
    await waitFor(() => acked.length >= before + 200, { timeoutMs: 15_000, message: () => `${acked.length - before} writes after the kill` });
    stop = true;
    await Promise.all(writers);

    const fresh = list.primary!;
    expect(fresh).not.toBe(old);
    procs.get(fresh)!.stdin!.write('dump\n');
    await waitFor(() => dumps.has(fresh), { timeoutMs: 5_000, message: 'the new primary to print its list' });
    const held = new Set(dumps.get(fresh)!);
    const lost = acked.filter((n) => !held.has(n));
    console.log(`replication processes: ${acked.length} acknowledged (${before} before the kill), ${unknown} unacknowledged, ${lost.length} lost, failover ${Math.round(failoverMs)} ms`);
    expect(lost).toEqual([]);
    expect(failoverMs).toBeLessThan(10_000);
    await client.shutdown();
  }, 60_000);
});
