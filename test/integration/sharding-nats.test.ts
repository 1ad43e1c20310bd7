/**
 * Cluster sharding over a real nats-server: three systems, each with its own NATS connection and a
 * region; clients on every node tell counters by key while a node joins and then one leaves
 * gracefully. Every message is applied once, in order per region, and totals survive the moves.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startShardRegion, type ShardRegion } from '../../actors/sharding/region.ts';
import { counterEntity } from '../../examples/sharded-counter.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { createManualMembership } from '../helpers/manual-membership.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe.skipIf(!requireNatsServer())('cluster sharding over a real nats-server', () => {
  const servers = natsServerScope();
  const systems: ActorSystem[] = [];
  afterAll(async () => {
    await Promise.allSettled(systems.splice(0).map((s) => s.shutdown()));
    await servers.stopAll();
  });

  it('join and graceful leave under load: every message applied once, in order, totals carried', async () => {
    const srv = await servers.start();
    const membership = createManualMembership(['a', 'b']);
    const applied = new Map<string, { client: number; seq: number; total: number }[]>();
    const sent = new Map<string, number>();
    const nextSeq = new Map<string, number>();
    const regions = new Map<string, ShardRegion>();
    const start = async (node: string): Promise<void> => {
      const system = createSystem({ cluster: 'shard-it', node, logger: silentLogger(), transport: await connectNats({ servers: srv.url, name: node }) });
      systems.push(system);
      await system.ready();
      const entity = counterEntity((key, add, total) => {
        let list = applied.get(key);
        if (!list) applied.set(key, (list = []));
        list.push({ client: add.n, seq: add.seq, total });
      });
      regions.set(node, startShardRegion(system, membership.view(node), { entityType: 'counter', entity, numberOfShards: 100, claimRetryMs: 200 }));
    };
    const keys = Array.from({ length: 50 }, (_, i) => `c${i}`);
    let cursor = 0;
    const tell = (nodes: string[], perNode: number): void => {
      for (const node of nodes) {
        const client = node.charCodeAt(0);
        for (let i = 0; i < perNode; i++) {
          const key = keys[cursor++ % keys.length]!;
          const id = `${client}|${key}`;
          const seq = (nextSeq.get(id) ?? 0) + 1;
          nextSeq.set(id, seq);
          sent.set(key, (sent.get(key) ?? 0) + 1);
          regions.get(node)!.tell(key, { type: 'Add', n: client, seq });
        }
      }
    };
    const total = (m: Map<string, { length: number } | number>): number => [...m.values()].reduce<number>((s, v) => s + (typeof v === 'number' ? v : v.length), 0);
    const settled = (): Promise<void> => waitFor(() => total(applied) === total(sent), { timeoutMs: 10_000, message: () => `${total(applied)} of ${total(sent)} applied` });

    await start('a');
    await start('b');
    await start('c');
    tell(['a', 'b'], 200);
    await settled();
    membership.add('c', 'up');
    tell(['a', 'b', 'c'], 200);
    await settled();
    expect(regions.get('c')!.stats().handOffsReceived).toBeGreaterThan(0);
    membership.setStatus('a', 'left');
    tell(['a', 'b', 'c'], 200);
    await waitFor(() => regions.get('a')!.stats().hostedShards === 0, { timeoutMs: 10_000, message: 'a hands every shard off' });
    await settled();
    tell(['b', 'c'], 200);
    await settled();

    for (const key of keys) {
      const list = applied.get(key) ?? [];
      expect(list.length, key).toBe(sent.get(key) ?? 0);
      const last = new Map<number, number>();
      for (const x of list) {
        expect(x.seq, `${key} client ${x.client}`).toBeGreaterThan(last.get(x.client) ?? 0);
        last.set(x.client, x.seq);
      }
      expect(list.at(-1)!.total, key).toBe(list.reduce((s, x) => s + x.client, 0));
    }
  }, 60_000);
});
