/**
 * The distributed lock on troupe's Raft KV store: every scenario of test/helpers/lock-scenarios.ts
 * on a 3-node Raft group in this process (MemoryBus, real clock), 5 × 100 critical sections in the
 * five-client run. The NATS KV backend runs the same scenarios in test/integration/lock-nats.test.ts,
 * the memory store on a simulated clock in test/unit/lock.test.ts.
 */
import { realClock } from '../../framework/clock.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { lockScenarios, realTimeBackend } from '../helpers/lock-scenarios.ts';
import { startRaftKvGroup } from '../helpers/raft-kv-group.ts';
import { waitFor } from '../helpers/wait-for.ts';

const TTL_MS = 600;

/** The group's store; closing it stops the group too. */
async function openRaftKvStore(): Promise<KvStore> {
  const group = startRaftKvGroup({ clock: realClock(), seed: 5 });
  await waitFor(() => group.hasLeader(), { timeoutMs: 5_000, message: 'a Raft leader' });
  return group.ownedStore({ name: 'locks', timeoutMs: 1_000, attemptTimeoutMs: 300 });
}

lockScenarios(realTimeBackend('troupe Raft KV (3 nodes, in-process bus, real clock)', openRaftKvStore, { ttlMs: TTL_MS, marginMs: 300 }));
