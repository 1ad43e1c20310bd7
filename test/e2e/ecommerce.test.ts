/**
 * The e-commerce case study end to end, embedded (one process, the in-process bus, the real
 * clock): a short run under the full fault schedule must keep its report's promises — progress,
 * every fault applied, no acknowledged order lost, nothing oversold and inventory never below zero
 * under the quorum setting — and write the HTML report where told.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../examples/ecommerce/main.ts';
import { violationsOf } from '../../examples/ecommerce/sim-scenario.ts';

describe('ecommerce case study, embedded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-ecommerce-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('under partition, crash and slow payments: progress, no acknowledged order lost, nothing oversold (quorum)', async () => {
    const lines: string[] = [];
    const file = join(dir, 'report.html');
    const spawned = new Set<string>();
    const progress: string[] = [];
    const report = await main({
      durationMs: 5_000, clientsPerRegion: 4, report: file, say: (l) => lines.push(l), progress: (l) => progress.push(l),
      // what `--inspect` passes: every node's actors and charts reach the inspector through it
      inspect: (e) => { if (e.kind === 'actor.spawned') spawned.add(e.actorType); },
    });
    expect(violationsOf(report, 5)).toEqual([]);
    expect(report.faults.map((f) => f.label)).toEqual(['partition us', 'heal', 'kill eu-3', 'slow payments eu', 'payments ok']);
    expect(report.ordersAcked).toBeGreaterThan(10);
    expect(report.oversold).toBe(0);
    expect(report.ordersLost).toBe(0);
    expect(report.inventoryNegative).toBe(0);
    expect(report.staleReads).toBe(0);
    // the faults cost something: a cut-off region cannot reach the inventory quorum or the other side's shards
    expect(report.availability).toBeLessThan(1);
    expect(report.replication.copies).toBeGreaterThan(0);
    const text = lines.join('\n');
    expect(text).toContain('errors by type');
    expect(text).toMatch(/acknowledged orders lost 0/);
    expect(progress.some((l) => l.includes('100%'))).toBe(true);
    for (const t of ['shop-api', 'cart', 'catalog', 'stock']) expect(spawned).toContain(t);
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('partition us');
  }, 60_000);

  it('Ctrl-C (an abort) ends the workload early: the faults still to come are not applied, every acknowledged order is checked, the report covers what ran', async () => {
    const controller = new AbortController();
    const lines: string[] = [];
    let aborted = false;
    const report = await main({
      durationMs: 10_000, clientsPerRegion: 2, report: '', say: (l) => lines.push(l), signal: controller.signal,
      // stop at 40 %: after the partition (20 %) healed, before the kill (50 %) and the slow payments (70 %)
      progress: (line) => {
        const pct = Number(/(\d+)%/.exec(line)?.[1] ?? 0);
        if (!aborted && pct >= 40) {
          aborted = true;
          controller.abort();
        }
      },
    });
    expect(aborted).toBe(true);
    expect(report.buckets.length * report.bucketMs).toBeLessThan(6_000); // the report covers what ran, not the 10 s planned
    expect(report.faults.map((f) => f.label)).toEqual(['partition us', 'heal']); // the later faults never ran
    expect(violationsOf(report, 2)).toEqual([]);
    expect(report.ordersLost).toBe(0);
  });
});
