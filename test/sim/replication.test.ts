/**
 * Primary–backup replication on the deterministic simulator (actors/replication/sim-scenario.ts):
 * the primary is crashed or isolated under load, a new primary takes over through the lease
 * election, and the old one returns and catches up.
 */
import { describe, expect, it } from 'vitest';
import { runReplicationScenario } from '../../actors/replication/sim-scenario.ts';

const SEEDS = Number(process.env['REPLICATION_SEEDS'] ?? 20);
const FIRST = Number(process.env['REPLICATION_SEED'] ?? 1);

describe('replication on the simulator', () => {
  it(`sync, W=1 of 2 backups, ${SEEDS} seeds: crash the primary under load — no acknowledged write lost, the old primary catches up`, async () => {
    let failovers = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runReplicationScenario({ seed, mode: 'sync', fault: 'crash' });
      expect(r.acknowledgedBeforeFault, r.replay).toBeGreaterThan(100);
      expect(r.lost, r.replay).toBe(0);
      expect(r.newPrimary).not.toBe(r.oldPrimary);
      expect(r.epochs.length).toBeGreaterThanOrEqual(2);
      failovers += r.failoverMs;
    }
    console.log(`replication sync/crash: ${SEEDS} seeds, mean failover ${(failovers / SEEDS).toFixed(0)} ms`);
  }, 300_000);
});
