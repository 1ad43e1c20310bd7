/**
 * The distributed lock on troupe's Raft KV store: every scenario of test/helpers/lock-scenarios.ts
 * on a 3-node Raft group in this process (MemoryBus), twice — on the real clock (600 ms TTL, real
 * timers and scheduling, bounds with a 500 ms margin) and on a simulated clock shared by the group,
 * the bus and the clients (timing bounds to the millisecond, deterministic). 5 × 100 critical
 * sections in each five-client run. The NATS KV backend runs the same scenarios in
 * test/integration/lock-nats.test.ts, the memory store in test/unit/lock.test.ts.
 */
import { realClock } from '../../framework/clock.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { lockScenarios, realTimeBackend, simulatedTimeBackend } from '../helpers/lock-scenarios.ts';
import { startRaftKvGroup } from '../helpers/raft-kv-group.ts';
import { waitFor } from '../helpers/wait-for.ts';

const TTL_MS = 600;

/** The group's store; closing it stops the group too. */
async function openRaftKvStore(): Promise<KvStore> {
  const group = startRaftKvGroup({ clock: realClock(), seed: 5 });
  await waitFor(() => group.hasLeader(), { timeoutMs: 5_000, message: 'a Raft leader' });
  return group.ownedStore({ name: 'locks', timeoutMs: 1_000, attemptTimeoutMs: 300 });
}

lockScenarios(realTimeBackend('troupe Raft KV (3 nodes, in-process bus, real clock)', openRaftKvStore, { ttlMs: TTL_MS, marginMs: 500 }));

lockScenarios(simulatedTimeBackend('troupe Raft KV (3 nodes, in-process bus, simulated clock)', async (clock) => {
  const group = startRaftKvGroup({ clock, seed: 6 });
  for (let i = 0; !group.hasLeader(); i++) {
    if (i === 1_000) throw new Error('no Raft leader within 5 simulated seconds');
    clock.increment(5);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return group.ownedStore({ name: 'locks', timeoutMs: 1_000, attemptTimeoutMs: 300 });
}, { ttlMs: 3_000, sectionsPerClient: 100 }));
