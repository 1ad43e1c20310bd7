/**
 * shard-routing — tell throughput through cluster sharding vs the same tell to a precomputed address.
 *
 * Measured: `region.tell(key, Add)` to 100 counter entities (round-robin over the keys), i.e. key →
 * shard (FNV-1a + fmix) → the shard's state → per-sender sequence bookkeeping → the entity's
 * mailbox. Baseline: `ref.send(Add)` with a ref to the very same entity actor, looked up once before
 * the round. Two rows:
 * - `local`: one node hosts every shard; the sender is on that node.
 * - `remote`: the sender's node hosts nothing (shards go to members with role `host`), so every
 *   message is forwarded region to region over the embedded bus as a ShardEnvelope (the entity
 *   message encoded inside), through the host region's mailbox, to the entity. The baseline is a
 *   remote `ref.send` to the entity's address on the other node (one envelope, one mailbox).
 * Both variants run on the same systems and entities, in alternating rounds; a round ends when the
 * entities have applied every message it sent.
 */
import { startShardRegion, type ShardRegion } from '../../actors/sharding/region.ts';
import { counterEntity } from '../../examples/sharded-counter.ts';
import { messages as counterMessages } from '../../examples/sharded-counter.pb.ts';
import { createMemoryBus, createSystem, realClock, silentLogger, type ActorRef, type ActorSystem } from '../../framework/index.ts';
import { createManualMembership } from '../helpers/manual-membership.ts';
import { alternate, median, row, until, type Bench, type BenchContext, type BenchRow } from './harness.ts';

const N = 50_000;
const BATCH = 2_000;
const KEYS = Array.from({ length: 100 }, (_, i) => `key-${i}`);

interface Setup {
  systems: ActorSystem[];
  sender: ShardRegion;
  refs: ActorRef[];
  applied(): number;
}

async function setUp(remote: boolean): Promise<Setup> {
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const names = remote ? ['client', 'host'] : ['local'];
  const membership = createManualMembership([], () => clock.now());
  for (const n of names) membership.add(n, 'up', n === 'client' ? [] : ['host']);
  let applied = 0;
  const entity = counterEntity(() => { applied++; });
  const systems: ActorSystem[] = [];
  const regions = new Map<string, ShardRegion>();
  for (const n of names) {
    const system = createSystem({ cluster: 'bench', node: n, transport: bus.connect({ name: n }), clock, logger: silentLogger(), messages: [counterMessages] });
    systems.push(system);
    regions.set(n, startShardRegion(system, membership.view(n), { entityType: 'counter', entity, role: 'host', numberOfShards: 1_000, passivateIdleMs: 0 }));
  }
  await Promise.all(systems.map((s) => s.ready()));
  const sender = regions.get(names[0]!)!;
  const host = regions.get(remote ? 'host' : 'local')!;
  for (const k of KEYS) sender.tell(k, { type: 'Add', n: 1, seq: 1 });
  await until(() => applied === KEYS.length, 'the entities to start');
  const refs = KEYS.map((k) => systems[0]!.ref(host.entityAddress(k)!));
  return { systems, sender, refs, applied: () => applied };
}

async function round(s: Setup, send: (i: number) => void): Promise<number> {
  const start = s.applied();
  const t0 = performance.now();
  for (let sent = 0; sent < N; ) {
    const end = Math.min(N, sent + BATCH);
    for (; sent < end; sent++) send(sent);
    const target = start + sent;
    await until(() => s.applied() >= target, 'the entities');
  }
  const ms = performance.now() - t0;
  if (s.applied() !== start + N) throw new Error(`shard-routing: ${s.applied() - start} applied, expected ${N}`);
  return (N / ms) * 1000;
}

async function measure(ctx: BenchContext, remote: boolean): Promise<BenchRow> {
  const s = await setUp(remote);
  const ADD = { type: 'Add', n: 1, seq: 1 } as const;
  try {
    const [ours, direct] = await alternate([
      { name: 'sharding tell', round: () => round(s, (i) => s.sender.tell(KEYS[i % KEYS.length]!, ADD)) },
      { name: 'precomputed ref.send', round: () => round(s, (i) => s.refs[i % KEYS.length]!.send(ADD)) },
    ], ctx.rounds, ctx.log);
    for (const sys of s.systems) if (sys.deadLetters.count !== 0) throw new Error(`shard-routing: ${sys.deadLetters.count} dead letters on ${sys.node}`);
    return row(`shard-routing (${remote ? 'remote' : 'local'})`, 'throughput (msg/s)', median(ours!), median(direct!), 'ref.send to the entity address', remote ? 0.5 : 0.95, 'higher');
  } finally {
    for (const sys of s.systems) await sys.shutdown();
  }
}

export const bench: Bench = {
  name: 'shard-routing',
  description: 'tell through cluster sharding (key → shard → owner → entity) vs ref.send to the precomputed entity address, local and remote',
  needsNats: false,
  async run(ctx) {
    return [await measure(ctx, false), await measure(ctx, true)];
  },
};
