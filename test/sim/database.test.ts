/**
 * The database case study on the deterministic simulator: 3 Raft ranges on 4 nodes under a killed
 * range leader, a partitioned node and a paused leader; every range's history must be
 * linearizable, the faults applied, progress made — and the same seed must replay the same run.
 */
import { describe, expect, it } from 'vitest';
import { buildReport, formatReport } from '../../examples/database/report.ts';
import { runScenario } from '../../examples/database/sim-scenario.ts';
import { createTopology, rangeOf } from '../../examples/database/topology.ts';

describe('troupe sim database', () => {
  it('stays linearizable per range under kill-leader, partition and pause (seed 1), and replays identically', async () => {
    const options = { seed: 1, durationMs: 3_000, faults: ['kill-leader', 'partition', 'pause'] };
    const r = await runScenario(options);
    expect(r.report.ranges.map((v) => v.valid)).toEqual([true, true, true]);
    expect(r.check.valid).toBe(true);
    for (const v of r.report.ranges) expect(v.checked).toBeGreaterThan(50);
    expect(r.schedule.map((f) => f.kind)).toEqual(['kill-leader', 'partition', 'pause']);
    // the killed node held a replica of the range it was meant to hit
    const kill = r.schedule[0]!;
    expect(['n1', 'n2', 'n3', 'n4']).toContain(kill.node);
    expect(r.okOps).toBeGreaterThan(300);
    // progress after the last fault ended: acknowledged operations in the final slices
    const last = r.report.timeline.at(-1)!;
    expect(last.ok).toBeGreaterThan(0);
    expect(r.summary).toMatch(/linearizable: yes, \d+ operations checked/);
    expect(r.replay).toBe('npx tsx framework/cli.ts sim database --seed 1 --faults kill-leader,partition,pause --duration 3000');

    const again = await runScenario(options);
    expect(again.summary).toBe(r.summary);
    expect(again.operations).toEqual(r.operations);
  }, 60_000);

  it('a fault-free seed acknowledges nearly everything and sees no errors', async () => {
    const r = await runScenario({ seed: 2, durationMs: 1_000, faults: [] });
    expect(r.schedule).toEqual([]);
    expect(r.check.valid).toBe(true);
    expect(r.report.errors).toEqual({});
    expect(r.report.indeterminate).toBe(0);
  }, 30_000);

  it('rejects an unknown fault name', async () => {
    await expect(runScenario({ seed: 1, faults: ['meteor'] })).rejects.toThrow(/unknown fault 'meteor'/);
  });

  it('the report says NO, and for which range, when one read in the history saw a value never written', async () => {
    const r = await runScenario({ seed: 3, durationMs: 1_000, faults: [] });
    const ops = [...r.operations];
    const i = ops.findIndex((o) => o.f === 'read' && o.type === 'ok' && o.value !== null);
    expect(i).toBeGreaterThanOrEqual(0);
    ops[i] = { ...ops[i]!, value: 'never-written' };
    const topology = createTopology();
    const report = buildReport({ title: 'tampered', topology, samples: [], operations: ops, faults: [], elapsedMs: 1_000 });
    const bad = rangeOf(topology, ops[i]!.key).id;
    expect(report.linearizable).toBe(false);
    expect(report.ranges.filter((v) => v.valid === false).map((v) => v.range)).toEqual([bad]);
    expect(formatReport(report)).toMatch(new RegExp(`${bad}: linearizable: NO`));
  }, 30_000);
});
