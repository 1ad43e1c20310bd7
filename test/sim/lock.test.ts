/**
 * Seeded simulations of the distributed lock under pauses, crashes and partitions (clients ↔ the
 * KV node): every acquire/release history is checked with the mutex + fencing-token model, and the
 * fenced list and single-valid-holder invariants must hold. A failing seed prints its replay.
 */
import { describe, expect, it } from 'vitest';
import { runLockScenario } from '../../actors/lock/sim-scenario.ts';

const SEEDS = Number(process.env['LOCK_SIM_SEEDS'] ?? 30);
const FIRST = Number(process.env['LOCK_SIM_SEED'] ?? 1);

describe('distributed lock, simulated', () => {
  it(`${SEEDS} seeds under pause/crash/partition: histories linearizable for the mutex model, fencing holds`, async () => {
    let grants = 0;
    let rejected = 0;
    let ops = 0;
    let lost = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runLockScenario({ seed });
      expect(r.replay).toBe(`npx tsx framework/cli.ts sim lock --seed ${seed}`); // troupe sim lock runs exactly this
      if (r.check.valid !== true || r.violations.length > 0) {
        const why = r.check.valid === false ? r.check.witness.message : r.check.valid === 'unknown' ? 'checker gave up' : '';
        throw new Error(`seed ${seed}: ${r.violations.join('; ')} ${why}\nreplay: ${r.replay}`);
      }
      expect(r.grants).toBeGreaterThan(10); // progress despite the faults (about 25–40 grants in 8 s of 150 ms critical sections)
      grants += r.grants;
      rejected += r.appendsRejected;
      ops += r.operations.length;
      lost += r.operations.filter((o) => o.f === 'release' && o.type === 'info').length;
    }
    console.log(`lock sim: ${SEEDS} seeds, ${grants} grants, ${ops} operations checked, ${lost} leases lost or abandoned, ${rejected} stale appends refused by fencing`);
    if (SEEDS >= 10) {
      // the faults did reach holders: leases were lost, and a stale holder's write was refused
      expect(lost).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(0);
    }
  }, 300_000);
});
