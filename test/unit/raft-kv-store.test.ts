/**
 * The Raft KV store (`actors/raft/kv-store.ts`): the shared KvStore conformance suite on a 3-node
 * Raft group on the in-process bus, then what is specific to it — the state machine's determinism,
 * exactly-once sessions and snapshots (property-tested), TTL on log time, failover and
 * unavailability on the simulator.
 */
import { startRaftKvReplica, createRaftKvStore } from '../../actors/raft/kv-store.ts';
import { memoryRaftStorage } from '../../actors/raft/node.ts';
import { createRng, realClock } from '../../framework/clock.ts';
import { createMemoryBus, createSystem, silentLogger } from '../../framework/index.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { storeConformance } from '../helpers/store-conformance.ts';
import { waitFor } from '../helpers/wait-for.ts';


// --- conformance on a real-time, in-process 3-node group ------------------------------------

let groupSeq = 0;

/** A 3-node Raft group on its own in-process bus, and a store over it whose close() also stops the group. */
function inProcessStore(opts: { history?: number; ttlMs?: number } = {}): KvStore {
  const g = ++groupSeq;
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const names = ['n1', 'n2', 'n3'];
  const voters = names.map((n) => `${n}/kv`);
  const systems = names.map((n) => createSystem({ cluster: `kvs${g}`, node: n, transport: bus.connect({ name: n }), clock, logger: silentLogger() }));
  const replicas = systems.map((system, i) => startRaftKvReplica(system, {
    name: 'kv', voters, rng: createRng(g * 10 + i), storage: memoryRaftStorage(), tickMs: 5, electionTicks: 10, heartbeatTicks: 2, ...opts,
  }));
  const store = createRaftKvStore({ replicas, clock, name: `group${g}`, rng: createRng(g) });
  return {
    kind: store.kind,
    get: (k) => store.get(k),
    create: (k, v, o) => store.create(k, v, o),
    update: (k, v, r) => store.update(k, v, r),
    put: (k, v) => store.put(k, v),
    delete: (k, o) => store.delete(k, o),
    watch: (p, f, o) => store.watch(p, f, o),
    keys: (p) => store.keys(p),
    close: async () => {
      await store.close();
      await Promise.all(systems.map((s) => s.shutdown()));
    },
  };
}

storeConformance('raft', async () => {
  const TTL_MS = 300;
  return {
    open: async (opts) => inProcessStore(opts?.history !== undefined ? { history: opts.history } : {}),
    openWithTtl: async () => ({ store: inProcessStore(), ttlMs: TTL_MS }),
    elapse: (ms, condition) => waitFor(condition, { timeoutMs: ms * 10, intervalMs: 20, message: 'the TTL to lapse' }),
    propertyRuns: 20,
    cleanup: async () => undefined,
  };
});
