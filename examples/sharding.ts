/**
 * sharding — counters addressed by key, spread over the cluster by cluster sharding. Four nodes
 * (four actor systems on one in-process bus) start with three members; clients on every node keep
 * telling `Add` to 2 000 counters while n4 joins and, later, n2 leaves gracefully. Each change
 * prints how many keys moved (against the K/N ideal) and the shard hand-offs; at the end every
 * counter is checked: each message applied once, in order, and every total carried across moves.
 *
 * Membership is troupe's own (`joinCluster`, heartbeats over the bus): n4 is `joining` for its
 * grace period, then up; n2's `leave()` is announced, so the others see it `left` at once.
 *
 * Run: npx tsx framework/cli.ts run sharding
 */
import { startShardRegion, type ShardRegion } from '../actors/sharding/region.ts';
import { createLogger, createMemoryBus, createSystem, joinCluster, realClock, type ActorSystem, type Membership } from '../framework/index.ts';
import { counterEntity } from './sharded-counter.ts';

const KEYS = Array.from({ length: 2_000 }, (_, i) => `counter-${i}`);
const SHARDS = 1_000;

export async function main(options: { say?: (line: string) => void; rounds?: number } = {}): Promise<{ moved: { join: number; leave: number }; handOffs: number; applied: number }> {
  const say = options.say ?? ((line: string) => console.log(line));
  const rounds = options.rounds ?? 40;
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const systems = new Map<string, ActorSystem>();
  const memberships = new Map<string, Membership>();
  const regions = new Map<string, ShardRegion>();
  const applied = new Map<string, { client: number; seq: number; total: number }[]>();
  const sent = new Map<string, number>();
  const nextSeq = new Map<string, number>();
  let handOffs = 0;
  let cursor = 0;

  const start = (node: string): void => {
    const system = createSystem({ cluster: 'shards', node, transport: bus.connect({ name: node }), clock, logger: createLogger({ level: 'error' }) });
    systems.set(node, system);
    const membership = joinCluster(system, { heartbeatIntervalMs: 100 });
    memberships.set(node, membership);
    const entity = counterEntity((key, add, total) => {
      let list = applied.get(key);
      if (!list) applied.set(key, (list = []));
      list.push({ client: add.n, seq: add.seq, total });
    });
    const region = startShardRegion(system, membership, { entityType: 'counter', entity, numberOfShards: SHARDS, passivateIdleMs: 30_000 });
    region.on((e) => {
      if (e.type === 'handoff.sent') handOffs++;
    });
    regions.set(node, region);
  };
  const owners = (): string[] => {
    const any = regions.get('n1') ?? [...regions.values()][0]!;
    return KEYS.map((k) => any.ownerOf(any.shardOf(k))!);
  };
  const movedSince = (before: string[]): number => owners().reduce((n, o, i) => n + (o !== before[i] ? 1 : 0), 0);
  const tellFrom = (nodes: string[], perNode: number): void => {
    for (const node of nodes) {
      const client = Number(node.slice(1));
      for (let i = 0; i < perNode; i++) {
        const key = KEYS[(cursor++ * 7 + client) % KEYS.length]!;
        const id = `${client}|${key}`;
        const seq = (nextSeq.get(id) ?? 0) + 1;
        nextSeq.set(id, seq);
        sent.set(key, (sent.get(key) ?? 0) + 1);
        regions.get(node)!.tell(key, { type: 'Add', n: client, seq });
      }
    }
  };
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const until = async (cond: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 2_000; i++) {
      if (cond()) return;
      await pause(5);
    }
    throw new Error(`${what}: not within 10 s`);
  };
  const settle = (): Promise<void> => until(() => {
    const total = [...applied.values()].reduce((s, l) => s + l.length, 0);
    return total === [...sent.values()].reduce((s, n) => s + n, 0);
  }, 'the counters catching up');
  /** Every node of `observers` sees `node` as `status`. */
  const seen = (node: string, status: string, observers: string[]) => (): boolean =>
    observers.every((o) => memberships.get(o)!.members().some((m) => m.node === node && m.status === status));
  const workload = async (nodes: string[], n: number): Promise<void> => {
    for (let r = 0; r < n; r++) {
      tellFrom(nodes, 50);
      await pause(2);
    }
  };

  try {
    const first = ['n1', 'n2', 'n3'];
    for (const n of first) start(n);
    await Promise.all([...systems.values()].map((s) => s.ready()));
    await until(() => first.every((n) => seen(n, 'up', first)()), 'n1, n2, n3 up');
    say(`3 systems on one bus joined the cluster; ${KEYS.length} counters over ${SHARDS} shards`);
    await workload(['n1', 'n2', 'n3'], rounds);

    let before = owners();
    const handOffsBefore = handOffs;
    start('n4');
    await systems.get('n4')!.ready();
    await until(seen('n4', 'up', ['n1', 'n2', 'n3', 'n4']), 'n4 up everywhere');
    const joinMoved = movedSince(before);
    say(`+ n4 joins: ${joinMoved} of ${KEYS.length} keys move (ideal K/N = ${KEYS.length / 4}); clients keep telling`);
    await workload(['n1', 'n2', 'n3', 'n4'], rounds);
    await settle();
    say(`  ${handOffs - handOffsBefore} shard hand-offs; n4 now hosts ${regions.get('n4')!.stats().hostedShards} shards and runs ${regions.get('n4')!.stats().entities} counters (moved ones start again on their next message)`);

    before = owners();
    const handOffsMid = handOffs;
    await memberships.get('n2')!.leave();
    await until(seen('n2', 'left', ['n1', 'n3', 'n4']), 'n2 seen leaving');
    const leaveMoved = movedSince(before);
    say(`- n2 leaves: ${leaveMoved} of ${KEYS.length} keys move (ideal K/N = ${KEYS.length / 4}); clients keep telling`);
    await workload(['n1', 'n3', 'n4'], rounds);
    await until(() => regions.get('n2')!.stats().hostedShards === 0, 'n2 handing every shard off');
    await settle();
    say(`  ${handOffs - handOffsMid} shard hand-offs; n2 hosts ${regions.get('n2')!.stats().hostedShards} shards and may stop`);
    await regions.get('n2')!.stop();

    let total = 0;
    for (const key of KEYS) {
      const list = applied.get(key) ?? [];
      total += list.length;
      if (list.length !== (sent.get(key) ?? 0)) throw new Error(`${key}: ${list.length} applied, ${sent.get(key)} sent`);
      const last = new Map<number, number>();
      for (const a of list) {
        if (a.seq <= (last.get(a.client) ?? 0)) throw new Error(`${key}: client ${a.client} message ${a.seq} out of order or twice`);
        last.set(a.client, a.seq);
      }
      const sum = list.reduce((s, a) => s + a.client, 0);
      if (list.length > 0 && list.at(-1)!.total !== sum) throw new Error(`${key}: total ${list.at(-1)!.total}, expected ${sum}`);
    }
    say(`✓ ${total} messages applied once each, in order per client; every counter's total survived its moves`);
    return { moved: { join: joinMoved, leave: leaveMoved }, handOffs, applied: total };
  } finally {
    for (const r of regions.values()) await r.stop();
    for (const m of memberships.values()) await m.stop();
    for (const s of systems.values()) await s.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
