/**
 * A 3-node troupe Raft group serving the KV store (`actors/raft/kv-store.ts`), in this process on
 * its own MemoryBus: what the lock and leader-election suites run on when they test the Raft
 * backend. The clock is the caller's — the real clock, or a ManualClock the test advances (the
 * bus, the Raft nodes and the store's call deadlines then all run on simulated time).
 */
import { createRaftKvStore, startRaftKvReplica, type RaftKvReplica } from '../../actors/raft/kv-store.ts';
import { memoryRaftStorage } from '../../actors/raft/node.ts';
import { createRng, type Clock } from '../../framework/clock.ts';
import { createMemoryBus, createSystem, silentLogger, type ActorSystem } from '../../framework/index.ts';
import type { RaftKvStoreOptions, ReplicaAttempt } from '../../actors/raft/kv-store.ts';
import type { KvStore } from '../../framework/store/store.ts';

export interface RaftKvGroup {
  readonly replicas: readonly RaftKvReplica[];
  readonly systems: readonly ActorSystem[];
  /** True once one of the replicas leads. */
  hasLeader(): boolean;
  /** A new client of the group (close it yourself, or let `close()` do it). */
  store(options?: Omit<RaftKvStoreOptions, 'replicas' | 'clock'>): KvStore;
  /** Like `store()`, but closing this client closes the whole group: for suites that own one store. */
  ownedStore(options?: Omit<RaftKvStoreOptions, 'replicas' | 'clock'>): KvStore;
  /**
   * A client whose link to the group can be cut: while cut, nothing it sends arrives, so its calls
   * time out with a retryable `StoreUnavailableError` after its `timeoutMs` (a partition, not a
   * refusal).
   */
  cuttableStore(options?: Omit<RaftKvStoreOptions, 'replicas' | 'clock'>): { store: KvStore; setReachable(reachable: boolean): void };
  /** Close every client made by `store()`, then stop the nodes. */
  close(): Promise<void>;
}

export interface RaftKvGroupOptions {
  clock: Clock;
  /** Seeds the nodes' election timeouts and the clients' ids. */
  seed: number;
  /** A Raft tick; elections take 10 ticks, heartbeats 2. @default 5 */
  tickMs?: number;
}

/** Start the group; it elects a leader on its own (wait for `hasLeader()` when it matters). */
export function startRaftKvGroup(options: RaftKvGroupOptions): RaftKvGroup {
  const { clock, seed, tickMs = 5 } = options;
  const bus = createMemoryBus({ clock });
  const names = ['n1', 'n2', 'n3'];
  const voters = names.map((n) => `${n}/kv`);
  const systems = names.map((n) => createSystem({ cluster: `raft-kv-${seed}`, node: n, transport: bus.connect({ name: n }), clock, logger: silentLogger(), rng: createRng(seed * 7 + n.length) }));
  const replicas = systems.map((sys, i) => startRaftKvReplica(sys, {
    name: 'kv', voters, rng: createRng(seed * 10 + i), storage: memoryRaftStorage(), tickMs, electionTicks: 10, heartbeatTicks: 2,
  }));
  const clients: KvStore[] = [];
  const client = (storeOptions: Omit<RaftKvStoreOptions, 'replicas' | 'clock'>, through: readonly RaftKvReplica[]): KvStore => {
    const s = createRaftKvStore({ rng: createRng(seed * 100 + clients.length), ...storeOptions, replicas: through, clock });
    clients.push(s);
    return s;
  };
  const group: RaftKvGroup = {
    replicas,
    systems,
    hasLeader: () => replicas.some((r) => r.node.role() === 'leader'),
    store: (storeOptions = {}) => client(storeOptions, replicas),
    ownedStore(storeOptions) {
      const s = group.store(storeOptions);
      return {
        kind: s.kind,
        get: (k) => s.get(k),
        create: (k, v, o) => s.create(k, v, o),
        update: (k, v, r) => s.update(k, v, r),
        put: (k, v) => s.put(k, v),
        delete: (k, o) => s.delete(k, o),
        watch: (p, f, o) => s.watch(p, f, o),
        keys: (p) => s.keys(p),
        close: () => group.close(),
      };
    },
    cuttableStore(storeOptions) {
      const link = { reachable: true };
      const store = client(storeOptions ?? {}, replicas.map((r) => behind(r, link)));
      return { store, setReachable: (reachable) => { link.reachable = reachable; } };
    },
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await Promise.all(systems.map((s) => s.shutdown()));
    },
  };
  return group;
}

/** An attempt whose request never arrives. */
const unanswered = <T>(): ReplicaAttempt<T> => ({ result: new Promise<T>(() => undefined), cancel: () => undefined });

/** `r` as one client reaches it: its requests are lost while `link.reachable` is false. */
function behind(r: RaftKvReplica, link: { reachable: boolean }): RaftKvReplica {
  return {
    get node() { return r.node; },
    get machine() { return r.machine; },
    get appliedIndex() { return r.appliedIndex; },
    get restored() { return r.restored; },
    apply: (entries) => r.apply(entries),
    reset: () => r.reset(),
    restoreSnapshot: (bytes, index) => r.restoreSnapshot(bytes, index),
    submit: (command) => (link.reachable ? r.submit(command) : unanswered()),
    read: (query) => (link.reachable ? r.read(query) : unanswered()),
    watch: (pattern, history, onEntry, onError) => (link.reachable ? r.watch(pattern, history, onEntry, onError) : unanswered()),
  };
}
