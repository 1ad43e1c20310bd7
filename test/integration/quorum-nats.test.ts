/**
 * The quorum replica group over a real nats-server: three replica systems and a client-only system
 * (four connections). Puts and gets, siblings across the wire (version vectors in protobuf maps),
 * a replica node shut down (W = R = 2 still served, read repair over NATS), two down
 * (QuorumUnreachableError, fast: no responders), and hinted handoff to a replica that comes back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createQuorumGroup, quorumMessages } from '../../actors/quorum/quorum.ts';
import { spawnQuorumReplica, type QuorumReplicaContext } from '../../actors/quorum/replica.ts';
import { QuorumUnreachableError } from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe.skipIf(!requireNatsServer())('quorum replica group over a real nats-server', () => {
  const servers = natsServerScope();
  const systems: ActorSystem[] = [];
  afterAll(async () => {
    await Promise.allSettled(systems.splice(0).map((s) => s.shutdown()));
    await servers.stopAll();
  });

  const system = async (url: string, node: string): Promise<ActorSystem> => {
    const s = createSystem({ cluster: 'itq', node, logger: silentLogger(), messages: [quorumMessages], transport: await connectNats({ servers: url, name: node }) });
    systems.push(s);
    await s.ready();
    return s;
  };
  const held = (s: ActorSystem, key: string): string[] =>
    ((s.snapshotOf(`${s.node}/replica`)!.context as QuorumReplicaContext).data.get(key) ?? []).map((i) => i.value);

  it('serves W = R = 2 with one replica node down, fails typed with two down, and repairs over the wire', async () => {
    const srv = await servers.start();
    const [r1, r2, r3, client] = await Promise.all(['r1', 'r2', 'r3', 'client'].map((n) => system(srv.url, n))) as [ActorSystem, ActorSystem, ActorSystem, ActorSystem];
    const replicas = [r1, r2, r3].map((s) => spawnQuorumReplica(s, { name: 'replica' }).address);
    const kv = createQuorumGroup(client, { replicas, w: 2, r: 2, timeoutMs: 1_000 });
    await kv.put('cart', 'apples');
    expect(await kv.get('cart')).toMatchObject({ found: true, value: 'apples' });

    await r3.shutdown();
    await kv.put('cart', 'pears');
    expect((await kv.get('cart')).value).toBe('pears');

    await r2.shutdown();
    const t0 = performance.now();
    const err = await kv.put('cart', 'plums').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuorumUnreachableError);
    expect(err).toMatchObject({ phase: 'write', needed: 2, replicas: 3 });
    expect(performance.now() - t0).toBeLessThan(900); // no responders: decided without waiting for the timeout
    // it reached r1 all the same: not acknowledged, not undone
    await waitFor(() => held(r1, 'cart').includes('plums'), { timeoutMs: 5_000, message: 'r1 to hold the failed write' });
  });

  it('keeps concurrent version-vector siblings across the wire and hands a hint off to a replica that returns', async () => {
    const srv = await servers.start();
    const [r1, r2, s1, client] = await Promise.all(['r1', 'r2', 's1', 'client'].map((n) => system(srv.url, n))) as [ActorSystem, ActorSystem, ActorSystem, ActorSystem];
    for (const s of [r1, r2]) spawnQuorumReplica(s, { name: 'replica' });
    spawnQuorumReplica(s1, { name: 'replica', handoffIntervalMs: 50 });
    const replicas = ['r1/replica', 'r2/replica', 'r3/replica'];
    const alice = createQuorumGroup(client, { replicas, w: 2, r: 2, versioning: 'vv', name: 'alice', timeoutMs: 1_000 });
    const bob = createQuorumGroup(client, { replicas, w: 2, r: 2, versioning: 'vv', name: 'bob', timeoutMs: 1_000 });
    // r3 is not running yet (no responders): W = 2 is met by r1 and r2
    expect(await alice.put('doc', 'A')).toMatchObject({ acks: 2 });
    await bob.put('doc', 'B');
    const both = await bob.get('doc');
    expect([...both.siblings].sort()).toEqual(['A', 'B']);
    expect(both.context.vector).toMatchObject({ 'client/alice': 1, 'client/bob': 1 });

    // W = 3 cannot be met without r3: the write goes to s1 as a hint for r3
    const sloppy = createQuorumGroup(client, { replicas, w: 3, r: 1, name: 'sloppy', standIns: ['s1/replica'], timeoutMs: 1_000 });
    expect(await sloppy.put('doc2', 'x')).toMatchObject({ acks: 3, hinted: 1 });
    const r3 = await system(srv.url, 'r3');
    spawnQuorumReplica(r3, { name: 'replica' });
    await waitFor(() => held(r3, 'doc2').includes('x'), { timeoutMs: 5_000, message: 'the hint for r3 to be handed off' });
    // and the stand-in drops the hint once r3 acknowledged it
    const standIn = (): QuorumReplicaContext => s1.snapshotOf('s1/replica')!.context as QuorumReplicaContext;
    await waitFor(() => standIn().hints.length === 0, { timeoutMs: 5_000, message: 'the stand-in to drop the handed-off hint' });
    expect(standIn().handedOff).toBe(1);
  });
});
