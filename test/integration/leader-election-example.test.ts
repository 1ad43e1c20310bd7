/**
 * The leader-election example (real clock, embedded bus, memory store): the paused leader wakes up
 * not leading and is fenced out when it writes anyway; a killed leader is replaced within TTL +
 * renew interval + margin; a resignation hands over at once; epochs only grow.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../examples/leader-election.ts';

describe('example: leader-election', () => {
  it('pause, kill and resign each lead to a new election with a larger epoch; the woken leader is fenced out', { timeout: 30_000 }, async () => {
    const lines: string[] = [];
    const r = await main({ say: (l) => lines.push(l) });
    expect(r.elections.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < r.elections.length; i++) expect(r.elections[i]!.epoch).toBeGreaterThan(r.elections[i - 1]!.epoch);
    expect(r.wokeUpAsLeader).toBe(false);
    expect(r.rejected).toHaveLength(1); // only the deliberate write with the old epoch
    expect(r.killTakeoverMs).toBeLessThanOrEqual(600 + 150 + 60 + 100); // TTL + renew + margin, + scheduling slack on a shared machine
    expect(r.resignTakeoverMs).toBeLessThan(150);
    expect(lines.some((l) => /wakes up: isLeader\(\) = false/.test(l))).toBe(true);
    expect(lines.some((l) => /deposed from epoch \d+: lease-expired/.test(l))).toBe(true);
  });
});
