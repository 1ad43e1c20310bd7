/**
 * Seeded simulations of the Raft KvStore under a mixed nemesis, compacting the log every 20
 * entries; every client history (put, create, get-then-update, delete, get) is checked for
 * linearizability. A failing seed prints the command
 * that replays it.
 */
import { describe, expect, it } from 'vitest';
import { runRaftKvStoreScenario } from '../../actors/raft/kv-store-sim-scenario.ts';

const SEEDS = Number(process.env['RAFT_KV_STORE_SIM_SEEDS'] ?? 30);
const FIRST = Number(process.env['RAFT_KV_STORE_SIM_SEED'] ?? 1);

describe('Raft KvStore, simulated', () => {
  it(`${SEEDS} seeds under a mixed nemesis: every history is linearizable`, async () => {
    let ops = 0;
    let okOps = 0;
    let okCas = 0;
    let restores = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runRaftKvStoreScenario({ seed, durationMs: 2_000 });
      if (r.check.valid !== true) {
        throw new Error(`seed ${seed}: history is ${r.check.valid === false ? 'NOT linearizable' : 'undecided'} — replay: ${r.replay}\n${JSON.stringify(r.check).slice(0, 2_000)}`);
      }
      ops += r.operations.length;
      okOps += r.okOps;
      okCas += r.okCas;
      restores += r.restores;
    }
    console.log(`raft-kv-store: ${SEEDS} seeds, ${ops} operations checked, ${okOps} acknowledged (${okCas} compare-and-sets), ${restores} snapshot restores`);
    // the runs made progress, not just timeouts
    expect(okOps).toBeGreaterThan(SEEDS * 10);
    expect(okCas).toBeGreaterThan(SEEDS);
    expect(restores).toBeGreaterThan(0); // compaction every 20 entries: restarted and lagging nodes restored snapshots
  }, 600_000);
});
