/**
 * Membership under a random nemesis (partitions, one-way links, isolation, loss, duplication,
 * reordering, delay, pauses, clock skew), 20 seeds × 5 nodes. Checked after every simulation step:
 * every view lists itself, sorted, as joining or up; `down` and `left` are final (no node here
 * restarts, so no view may ever move a node out of them). Checked at the end, after the faults
 * heal: every view has settled — each other node is `up` or `down`, none left in `suspect`/`joining`.
 */
import { describe, expect, it } from 'vitest';
import { joinCluster, type Membership, type MemberStatus } from '../../framework/membership/membership.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import type { FaultKind } from '../../framework/sim/nemesis.ts';

const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);
const FAULTS: FaultKind[] = ['partition', 'partitionOneWay', 'isolate', 'drop', 'duplicate', 'delay', 'reorder', 'pause', 'skew'];

describe('membership under a random nemesis', () => {
  it.each(SEEDS)('seed %i: self always listed, down/left final, views settle after the faults heal', async (seed) => {
    const sim = createSimulation({ seed, nodes: 5, scenario: 'membership-nemesis' });
    try {
      const views = new Map<string, Membership>();
      const violations: string[] = [];
      const seen = { suspect: 0, down: 0, recovered: 0 };
      for (const node of sim.nodes.keys()) {
        const m = joinCluster(sim.system(node), { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 200, minStdDeviationMs: 50, downAfterMs: 1_500 });
        m.subscribe((e) => {
          if (e.member.status === 'suspect') seen.suspect++;
          if (e.member.status === 'down') seen.down++;
          if (e.previous === 'suspect' && e.member.status === 'up') seen.recovered++;
          if (e.previous === 'down' || e.previous === 'left') violations.push(`${node} saw ${e.member.node} leave ${e.previous} for ${e.member.status} at ${sim.now()}`);
        });
        views.set(node, m);
      }
      sim.addInvariant('self listed, sorted, joining or up', () => {
        for (const [node, v] of views) {
          const ms = v.members();
          const self = ms.find((m) => m.node === node);
          if (!self || (self.status !== 'up' && self.status !== 'joining')) return `${node} lists itself as ${self?.status}`;
          for (let i = 1; i < ms.length; i++) if (ms[i - 1]!.node >= ms[i]!.node) return `${node}'s members are not sorted`;
        }
        return violations[0];
      });
      await sim.run({ forMs: 1_000 });
      sim.nemesis.randomSchedule(sim.rng, { durationMs: 10_000, faults: FAULTS, faultMs: [300, 4_000] });
      await sim.run({ forMs: 10_000 });
      sim.nemesis.heal();
      await sim.run({ forMs: 3_000 });
      const settled: MemberStatus[] = ['up', 'down'];
      for (const [node, v] of views) {
        for (const m of v.members()) {
          if (m.node !== node) expect(settled, `${node} sees ${m.node} as ${m.status} (${sim.replayCommand()})`).toContain(m.status);
        }
      }
      expect(violations).toEqual([]);
      console.log(`seed ${seed}: ${seen.suspect} suspicions, ${seen.recovered} recovered, ${seen.down} marked down`);
    } finally {
      await sim.shutdown();
    }
  });
});
