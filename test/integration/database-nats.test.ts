/**
 * The database case study across OS processes over a real nats-server (started on a free port by
 * the test): one process per node, a range leader SIGKILLed and restarted from its log, a node's
 * links cut, a leader SIGSTOPped and continued. Every range's history must be linearizable and the
 * workload must make progress; the node processes are gone afterwards.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../examples/database/main.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';

describe.skipIf(!requireNatsServer())('examples/database over NATS (one process per node)', () => {
  const servers = natsServerScope();
  afterAll(() => servers.stopAll());

  it('makes progress through a killed leader, a partition and a pause; every range stays linearizable', async () => {
    const server = await servers.start();
    let out = '';
    const report = await main({ nats: server.url, durationMs: 9_000, write: (s) => { out += s; }, tty: false, htmlReport: false });
    expect(out).toMatch(/one OS process per node over NATS/);
    expect(report.faults.map((f) => f.kind)).toEqual(['kill-leader', 'partition', 'pause']);
    expect(report.ok).toBeGreaterThan(100);
    for (const r of report.ranges) {
      expect(r.valid).toBe(true);
      expect(r.checked).toBeGreaterThan(30);
    }
    expect(report.linearizable).toBe(true);
    // after the last fault was undone, the workload still got answers
    expect(report.timeline.at(-1)!.ok).toBeGreaterThan(0);
  }, 60_000);
});
