/**
 * Placement is pure: key → shard → node. Key movement on join and leave is measured for K = 10 000
 * keys and must stay within 1.1 × K/N (N = the larger member count), for the pipeline the regions
 * use (keys → shards → rendezvous), rendezvous directly over keys, and a consistent-hash ring.
 */
import { describe, expect, it } from 'vitest';
import { createHashRing, keyMovement, ownerTable, rendezvousOwner, shardOf } from '../../actors/sharding/placement.ts';

const K = 10_000;
const keys = Array.from({ length: K }, (_, i) => `user-${i}`);
const three = ['n1', 'n2', 'n3'];
const four = ['n1', 'n2', 'n3', 'n4'];

function viaShards(numberOfShards: number, nodes: readonly string[]): (key: string) => string | undefined {
  const table = ownerTable(numberOfShards, nodes);
  return (key) => table[shardOf(key, numberOfShards)];
}

const report = (label: string, moved: number, bound: number): void => {
  console.log(`key movement ${label}: ${moved} of ${K} keys moved (${(moved / K * 100).toFixed(2)} %), bound 1.1·K/N = ${bound}`);
};

describe('placement', () => {
  it('is deterministic and independent of member order', () => {
    expect(shardOf('user-1', 1000)).toBe(shardOf('user-1', 1000));
    for (let s = 0; s < 200; s++) expect(rendezvousOwner(s, four)).toBe(rendezvousOwner(s, [...four].reverse()));
    expect(ownerTable(200, four)).toEqual(Array.from({ length: 200 }, (_, s) => rendezvousOwner(s, four)));
    expect(rendezvousOwner(1, [])).toBeUndefined();
  });

  it('spreads shards roughly evenly', () => {
    const table = ownerTable(1000, four);
    const counts = new Map<string, number>();
    for (const n of table) counts.set(n!, (counts.get(n!) ?? 0) + 1);
    for (const n of four) expect(counts.get(n)).toBeGreaterThan(200);
  });

  it('only the joining node gains and only the leaving node loses shards (rendezvous)', () => {
    const before = ownerTable(1000, three);
    const after = ownerTable(1000, four);
    for (let s = 0; s < 1000; s++) if (before[s] !== after[s]) expect(after[s]).toBe('n4');
  });

  for (const [label, make] of [
    ['keys→1000 shards→rendezvous', (nodes: readonly string[]) => viaShards(1000, nodes)],
    ['rendezvous over keys', (nodes: readonly string[]) => (k: string) => rendezvousOwner(shardOf(k, 2 ** 31), nodes)],
    ['consistent hashing, 1000 vnodes', (nodes: readonly string[]) => { const r = createHashRing(nodes, 1000); return (k: string) => r.owner(k); }],
  ] as const) {
    it(`${label}: join 3→4 and leave 4→3 move at most 1.1 × K/N keys`, () => {
      const bound = Math.floor(1.1 * K / 4);
      const join = keyMovement(keys, make(three), make(four));
      const leave = keyMovement(keys, make(four), make(three));
      report(`${label}, join 3→4`, join.moved, bound);
      const leaveN2 = keyMovement(keys, make(four), make(['n1', 'n3', 'n4']));
      report(`${label}, leave 4→3`, leave.moved, bound);
      report(`${label}, n2 leaves 4→3`, leaveN2.moved, bound);
      expect(leaveN2.moved).toBeLessThanOrEqual(bound);
      expect(join.moved).toBeGreaterThan(0);
      expect(join.moved).toBeLessThanOrEqual(bound);
      expect(leave.moved).toBeLessThanOrEqual(bound);
    });
  }
});
