/**
 * Raft nodes hosted as troupe actors on the deterministic simulator: three systems on a simulated
 * network elect a leader on simulated time, replicate, survive the leader's isolation and a crash,
 * and every node applies the same sequence.
 */
import { describe, expect, it } from 'vitest';
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
});
