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
 * Both variants run on the same systems and entities. A round sends N messages per variant in
 * batches of 2 000 that take turns (A B B A …), each timed until the entities applied all of it,
 * so both see the same load from the rest of the (shared, noisy) machine. Two metrics: wall-clock
 * throughput, and messages per CPU second of this process (less sensitive to other processes).
 */
import { startShardRegion, type ShardRegion } from '../../actors/sharding/region.ts';
import { counterEntity } from '../../examples/sharded-counter.ts';
import { messages as counterMessages } from '../../examples/sharded-counter.pb.ts';
import { createMemoryBus, createSystem, realClock, silentLogger, type ActorRef, type ActorSystem } from '../../framework/index.ts';
import { createManualMembership } from '../helpers/manual-membership.ts';
import { median, row, until, type Bench, type BenchContext, type BenchRow } from './harness.ts';

const N = 40_000;
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

/** One timed batch: wall and CPU milliseconds until the entities applied all of it. */
async function batch(s: Setup, send: (i: number) => void, offset: number): Promise<{ wallMs: number; cpuMs: number }> {
  const target = s.applied() + BATCH;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) send(offset + i);
  await until(() => s.applied() >= target, 'the entities');
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  if (s.applied() !== target) throw new Error(`shard-routing: ${s.applied() - target + BATCH} applied, expected ${BATCH}`);
  return { wallMs, cpuMs: (c.user + c.system) / 1000 };
}

interface Throughput { wall: number; cpu: number }

/**
 * One round: N messages per variant, in batches that take turns (A B B A A B …), so both variants
 * see the same load from the rest of the machine; throughput from the summed batch times.
 */
async function pairedRound(s: Setup, a: (i: number) => void, b: (i: number) => void): Promise<[Throughput, Throughput]> {
  const sum = [{ wallMs: 0, cpuMs: 0 }, { wallMs: 0, cpuMs: 0 }];
  for (let k = 0; k < N / BATCH; k++) {
    const order = k % 2 === 0 ? [0, 1] : [1, 0];
    for (const v of order) {
      const r = await batch(s, v === 0 ? a : b, k * BATCH);
      sum[v]!.wallMs += r.wallMs;
      sum[v]!.cpuMs += r.cpuMs;
    }
  }
  return sum.map((x) => ({ wall: (N / x.wallMs) * 1000, cpu: (N / x.cpuMs) * 1000 })) as [Throughput, Throughput];
}

async function measure(ctx: BenchContext, remote: boolean): Promise<BenchRow[]> {
  const s = await setUp(remote);
  const ADD = { type: 'Add', n: 1, seq: 1 } as const;
  const viaSharding = (i: number): void => s.sender.tell(KEYS[i % KEYS.length]!, ADD);
  const direct = (i: number): void => s.refs[i % KEYS.length]!.send(ADD);
  try {
    await pairedRound(s, viaSharding, direct); // warm-up
    const ours: Throughput[] = [];
    const base: Throughput[] = [];
    for (let r = 0; r < ctx.rounds; r++) {
      const [o, b] = await pairedRound(s, viaSharding, direct);
      ours.push(o);
      base.push(b);
      ctx.log(`  round ${r + 1}/${ctx.rounds}: sharding ${Math.round(o.wall)} msg/s (${Math.round(o.cpu)} per CPU-s), ref.send ${Math.round(b.wall)} msg/s (${Math.round(b.cpu)} per CPU-s)`);
    }
    for (const sys of s.systems) if (sys.deadLetters.count !== 0) throw new Error(`shard-routing: ${sys.deadLetters.count} dead letters on ${sys.node}`);
    const name = `shard-routing (${remote ? 'remote' : 'local'})`;
    const target = 0.95;
    return [
      row(name, 'throughput (msg/s)', median(ours.map((x) => x.wall)), median(base.map((x) => x.wall)), 'ref.send to the entity address', target, 'higher'),
      row(name, 'msg per CPU second', median(ours.map((x) => x.cpu)), median(base.map((x) => x.cpu)), 'ref.send to the entity address', target, 'higher'),
    ];
  } finally {
    for (const sys of s.systems) await sys.shutdown();
  }
}

export const bench: Bench = {
  name: 'shard-routing',
  description: 'tell through cluster sharding (key → shard → owner → entity) vs ref.send to the precomputed entity address, local and remote',
  needsNats: false,
  async run(ctx) {
    return [...await measure(ctx, false), ...await measure(ctx, true)];
  },
};
