/**
 * A 3-node troupe Raft group serving the KV store (`actors/raft/kv-store.ts`), in this process on
 * its own MemoryBus: what the lock and leader-election suites run on when they test the Raft
 * backend. The clock is the caller's — the real clock, or a ManualClock the test advances (the
 * bus, the Raft nodes and the store's call deadlines then all run on simulated time).
 */
import { createRaftKvStore, startRaftKvReplica, type RaftKvReplica } from '../../actors/raft/kv-store.ts';
import type { KvStoreMachineOptions } from '../../actors/raft/kv-store-machine.ts';
import { memoryRaftStorage } from '../../actors/raft/node.ts';
import { createRng, type Clock } from '../../framework/clock.ts';
import { createMemoryBus, createSystem, silentLogger, type ActorSystem, type MemoryBus } from '../../framework/index.ts';
import type { RaftKvStoreOptions, ReplicaAttempt } from '../../actors/raft/kv-store.ts';
import type { KvStore } from '../../framework/store/store.ts';

export interface RaftKvGroup {
  readonly names: readonly string[];
  readonly replicas: readonly RaftKvReplica[];
  readonly systems: readonly ActorSystem[];
  /** The group's bus: connect another node (a remote client) to it. */
  readonly bus: MemoryBus;
  /** A system on the group's bus that is not a member (stopped by `close()`). */
  system(node: string): ActorSystem;
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
  /** The systems' cluster name. @default `raft-kv-<seed>` */
  cluster?: string;
  /** The replicas' state machine options (equal on every replica). */
  machine?: KvStoreMachineOptions;
}

/** Start the group; it elects a leader on its own (wait for `hasLeader()` when it matters). */
export function startRaftKvGroup(options: RaftKvGroupOptions): RaftKvGroup {
  const { clock, seed, tickMs = 5, cluster = `raft-kv-${seed}`, machine = {} } = options;
  const bus = createMemoryBus({ clock });
  const names = ['n1', 'n2', 'n3'];
  const voters = names.map((n) => `${n}/kv`);
  const systems: ActorSystem[] = [];
  const system = (node: string): ActorSystem => {
    const sys = createSystem({ cluster, node, transport: bus.connect({ name: node }), clock, logger: silentLogger(), rng: createRng(seed * 7 + systems.length) });
    systems.push(sys);
    return sys;
  };
  const replicas = names.map((n, i) => startRaftKvReplica(system(n), {
    name: 'kv', voters, rng: createRng(seed * 10 + i), storage: memoryRaftStorage(), tickMs, electionTicks: 10, heartbeatTicks: 2, ...machine,
  }));
  const clients: KvStore[] = [];
  const client = (storeOptions: Omit<RaftKvStoreOptions, 'replicas' | 'clock'>, through: readonly RaftKvReplica[]): KvStore => {
    const s = createRaftKvStore({ rng: createRng(seed * 100 + clients.length), ...storeOptions, replicas: through, clock });
    clients.push(s);
    return s;
  };
  const group: RaftKvGroup = {
    names,
    replicas,
    systems,
    bus,
    system,
    hasLeader: () => replicas.some((r) => r.node.role() === 'leader'),
    store: (storeOptions = {}) => client(storeOptions, replicas),
    ownedStore: (storeOptions) => closingAlso(group.store(storeOptions), () => group.close()),
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

/** `store`, whose `close()` runs `close` instead (which should close `store` too). */
export function closingAlso(store: KvStore, close: () => Promise<void>): KvStore {
  return {
    kind: store.kind,
    get: (k) => store.get(k),
    create: (k, v, o) => store.create(k, v, o),
    update: (k, v, r) => store.update(k, v, r),
    put: (k, v) => store.put(k, v),
    delete: (k, o) => store.delete(k, o),
    watch: (p, f, o) => store.watch(p, f, o),
    keys: (p) => store.keys(p),
    close,
  };
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
