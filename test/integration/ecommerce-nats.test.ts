/**
 * The e-commerce case study across OS processes: one process per shop node over a real
 * nats-server started for this file (a free port), the gateways and shoppers in the test's
 * process. Under the full fault schedule (partition through the nodes' fault switches, SIGKILL of
 * eu-3, slowed payments) the quorum setting's report must keep its promises.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../examples/ecommerce/main.ts';
import { violationsOf } from '../../examples/ecommerce/sim-scenario.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';

describe.skipIf(!requireNatsServer())('ecommerce case study, one OS process per node over NATS', () => {
  const servers = natsServerScope();
  afterAll(() => servers.stopAll());

  it('under partition, SIGKILL and slow payments: progress, no acknowledged order lost, nothing oversold', async () => {
    const server = await servers.start();
    const lines: string[] = [];
    const report = await main({ nats: server.url, durationMs: 6_000, clientsPerRegion: 4, report: '', say: (l) => lines.push(l), progress: () => {} });
    expect(violationsOf(report, 5)).toEqual([]);
    expect(report.faults.map((f) => f.label)).toContain('kill eu-3');
    expect(lines.join('\n')).toContain('6 node processes up');
  }, 60_000);
});
