/**
 * Seeded simulations of the replicated KV on Raft under a mixed nemesis; every history is checked
 * for linearizability; logs are compacted every 20 entries, so replicas restart from snapshots and
 * lagging ones are sent the leader's. A failing seed prints the command that replays it.
 */
import { describe, expect, it } from 'vitest';
import { runRaftScenario } from '../../actors/raft/sim-scenario.ts';

const SEEDS = Number(process.env['RAFT_SIM_SEEDS'] ?? 200);
const FIRST = Number(process.env['RAFT_SIM_SEED'] ?? 1);

describe('replicated KV on Raft, simulated', () => {
  it(`${SEEDS} seeds under a mixed nemesis: every history is linearizable`, async () => {
    let ops = 0;
    let okOps = 0;
    let restored = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runRaftScenario({ seed, durationMs: 2_000, snapshotEveryEntries: 20 });
      if (r.check.valid !== true) {
        throw new Error(`seed ${seed}: history is ${r.check.valid === false ? 'NOT linearizable' : 'undecided'} — replay: ${r.replay}\n${JSON.stringify(r.check).slice(0, 2_000)}`);
      }
      ops += r.operations.length;
      okOps += r.okOps;
      restored += r.snapshotsRestored;
    }
    console.log(`raft-kv: ${SEEDS} seeds, ${ops} operations checked, ${okOps} acknowledged, ${restored} snapshots restored`);
    expect(okOps).toBeGreaterThan(SEEDS); // the runs made progress, not just timeouts
    expect(restored).toBeGreaterThan(0); // compaction was exercised: replicas restarted from, or were sent, snapshots
  }, 600_000);
});
