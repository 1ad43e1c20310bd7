/**
 * Raft nodes hosted as troupe actors on the deterministic simulator: three systems on a simulated
 * network elect a leader on simulated time, replicate, survive the leader's isolation and a crash,
 * and every node applies the same sequence.
 */
import { describe, expect, it } from 'vitest';
import { startKvReplica, type KvReplica } from '../../actors/raft/kv.ts';
import { memoryRaftStorage, startRaftNode, type RaftNodeHandle, type RaftStorage } from '../../actors/raft/node.ts';
import type { Entry } from '../../actors/raft/types.ts';
import { createRng } from '../../framework/clock.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function cluster(seed: number) {
  const names = ['a', 'b', 'c'];
  const sim = createSimulation({ seed, nodes: names, scenario: 'raft', latencyMs: [1, 5] });
  const voters = names.map((n) => `${n}/raft`);
  const applied = new Map<string, string[]>();
  const storages = new Map<string, RaftStorage>();
  const handles = new Map<string, RaftNodeHandle>();
  const leaders = new Map<number, string>();
  const start = (n: string): void => {
    const storage = storages.get(n) ?? memoryRaftStorage();
    storages.set(n, storage);
    applied.set(n, []);
    const rng = createRng(seed * 31 + n.charCodeAt(0));
    handles.set(n, startRaftNode(sim.system(n), {
      name: 'raft', voters, rng, storage, tickMs: 10,
      onApply: (entries: readonly Entry[]) => { for (const e of entries) if (e.data.length > 0) applied.get(n)!.push(dec(e.data)); },
      onRole: (role, term) => {
        if (role !== 'leader') return;
        const other = leaders.get(term);
        if (other !== undefined && other !== n) sim.fail(`two leaders in term ${term}: ${other} and ${n}`);
        leaders.set(term, n);
      },
    }));
  };
  for (const n of names) start(n);
  sim.addInvariant('committed prefixes agree', () => {
    const logs = [...applied.values()];
    for (const x of logs) for (const y of logs) {
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return `applied logs differ at ${i + 1}: ${x[i]} vs ${y[i]}`;
    }
    return undefined;
  });
  const leader = (): string | undefined => names.filter((n) => sim.nodes.get(n)?.status === 'up' && handles.get(n)?.role() === 'leader')
    .sort((x, y) => handles.get(y)!.term() - handles.get(x)!.term())[0];
  return { sim, names, applied, handles, leader, start };
}

describe('Raft on the simulator', () => {
  it('elects a leader within the election timeout range of simulated time, and replicates to all', async () => {
    const { sim, names, applied, handles, leader } = await cluster(1);
    await sim.run({ until: () => leader() !== undefined, maxSteps: 50_000 });
    expect(sim.now()).toBeLessThan(2_000);
    const l = leader()!;
    for (let i = 0; i < 5; i++) handles.get(l)!.propose(enc(`v${i}`));
    await sim.run({ until: () => names.every((n) => applied.get(n)!.length === 5), maxSteps: 50_000 });
    for (const n of names) expect(applied.get(n)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    const idx = await Promise.race([handles.get(l)!.readIndex(), sim.run({ forMs: 1_000 }).then(() => -1)]);
    expect(idx).toBeGreaterThanOrEqual(6);
    await sim.shutdown();
  });

  it('isolating the leader: a new leader is elected and commits; after heal everyone converges', async () => {
    const { sim, names, applied, handles, leader } = await cluster(2);
    await sim.run({ until: () => leader() !== undefined, maxSteps: 50_000 });
    const old = leader()!;
    sim.nemesis.isolate(old);
    handles.get(old)!.propose(enc('lost'));
    await sim.run({ until: () => { const l = leader(); return l !== undefined && l !== old; }, maxSteps: 100_000 });
    const fresh = leader()!;
    handles.get(fresh)!.propose(enc('kept'));
    await sim.run({ until: () => names.filter((n) => n !== old).every((n) => applied.get(n)!.includes('kept')), maxSteps: 100_000 });
    sim.nemesis.heal();
    await sim.run({ until: () => applied.get(old)!.includes('kept'), maxSteps: 100_000 });
    for (const n of names) expect(applied.get(n)).not.toContain('lost');
    await sim.shutdown();
  });

  it('same seed, same run: the trace replays exactly', async () => {
    const traces: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { sim, handles, leader } = await cluster(7);
      await sim.run({ until: () => leader() !== undefined, maxSteps: 50_000 });
      handles.get(leader()!)!.propose(enc('x'));
      await sim.run({ forMs: 500 });
      traces.push(JSON.stringify(sim.trace().slice(0, 300)));
      await sim.shutdown();
    }
    expect(traces[0]).toBe(traces[1]);
  });

  it('log compaction: a node that missed compacted entries is sent the snapshot, a restarted one restores its own, and both serve every key', async () => {
    const names = ['a', 'b', 'c'];
    const sim = createSimulation({ seed: 41, nodes: names, scenario: 'raft', latencyMs: [1, 5] });
    const voters = names.map((n) => `${n}/raft`);
    const storages = new Map(names.map((n) => [n, memoryRaftStorage()]));
    const replicas = new Map<string, KvReplica>();
    const start = (n: string): void => {
      replicas.set(n, startKvReplica(sim.system(n), {
        name: 'raft', voters, rng: createRng(n.charCodeAt(0) + (sim.nodes.get(n)?.incarnation ?? 0)), storage: storages.get(n)!,
        tickMs: 10, snapshotEveryEntries: 10,
      }));
    };
    for (const n of names) start(n);
    const leader = (): KvReplica | undefined => [...replicas.entries()].find(([n, r]) => sim.nodes.get(n)?.status === 'up' && r.node.role() === 'leader')?.[1];
    const settle = async <T>(p: Promise<T>): Promise<T> => {
      let out: { v: T } | undefined;
      void p.then((v) => { out = { v }; });
      await sim.run({ until: () => out !== undefined, maxSteps: 200_000 });
      return out!.v;
    };
    await sim.run({ until: () => leader() !== undefined, maxSteps: 50_000 });
    const lagging = names.find((n) => replicas.get(n) !== leader())!;
    sim.nemesis.crash(lagging);
    await settle(leader()!.submit({ op: 'cas', client: 'u', seq: 1, key: 'ku', expected: null, value: 'u1' }, 1_000));
    for (let i = 0; i < 45; i++) await settle(leader()!.submit({ op: 'put', client: 't', seq: i + 1, key: `k${i}`, value: `v${i}` }, 1_000));
    sim.nemesis.restart(lagging);
    start(lagging);
    // it catches up — from the leader's snapshot, since the entries it lacks are compacted away
    await sim.run({ until: () => replicas.get(lagging)!.restored > 0 && replicas.get(lagging)!.node.role() === 'follower', maxSteps: 200_000 });
    const readAll = async (n: string): Promise<Array<string | null>> => {
      const l = leader()!;
      if (l !== replicas.get(n)) l.node.transferLeadership(`${n}/raft`);
      await sim.run({ until: () => leader() === replicas.get(n), maxSteps: 200_000 });
      const out: Array<string | null> = [];
      for (let i = 0; i < 45; i++) out.push(await settle(replicas.get(n)!.read(`k${i}`, 1_000)));
      return out;
    };
    const expected = Array.from({ length: 45 }, (_, i) => `v${i}`);
    expect(await readAll(lagging)).toEqual(expected);
    // a node that compacted itself restarts from its own snapshot (and the log after it)
    const other = names.find((n) => n !== lagging)!;
    sim.nemesis.crash(other);
    sim.nemesis.restart(other);
    start(other);
    expect(replicas.get(other)!.restored).toBe(1);
    expect(await readAll(other)).toEqual(expected);
    // a retried write whose first attempt was applied before the snapshot is still applied once
    const again = await settle(replicas.get(other)!.submit({ op: 'cas', client: 'u', seq: 1, key: 'ku', expected: 'nope', value: 'x' }, 1_000));
    expect(again).toEqual({ ok: true, value: 'u1' }); // the first answer, from the session in the snapshot: the cas did not run
    expect(await settle(replicas.get(other)!.read('ku', 1_000))).toBe('u1');
    await sim.shutdown();
  });
});
