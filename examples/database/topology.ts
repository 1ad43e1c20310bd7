/**
 * The database's layout: a key space split into ranges by start key (as CockroachDB and TiKV do),
 * each range a 3-replica Raft group placed across the nodes. Every node hosts, for each range it
 * holds a replica of, a Raft node `raft-<range>` with its KV replica and a KV service `kv-<range>`
 * in front of it; leaders are found by Raft's own election and followed through `NotLeaderError`
 * hints. The map is static: no splits, merges or rebalancing.
 */
import { startKvService } from '../../actors/raft/kv-service.ts';
import { startKvReplica, type KvReplica } from '../../actors/raft/kv.ts';
import { memoryRaftStorage, type RaftStorage } from '../../actors/raft/node.ts';
import type { ActorSystem, Rng } from '../../framework/index.ts';

/** One range: keys in `[startKey, next range's startKey)`, replicated on `replicas` (node names). */
export interface Range {
  readonly id: string;
  readonly startKey: string;
  readonly replicas: readonly string[];
}

/** The static range map. */
export interface Topology {
  readonly nodes: readonly string[];
  /** Sorted by `startKey`; the first starts at ''. */
  readonly ranges: readonly Range[];
  /** The keys the workload uses (spread over every range). */
  readonly keys: readonly string[];
}

/**
 * `rangeCount` ranges over `nodeCount` nodes (≥ 3); range i lives on nodes i, i+1, i+2 (mod n), so
 * every node holds replicas of several ranges and losing one node costs no range its majority.
 * Keys are `k00`…: `keysPerRange` of them in each range.
 */
export function createTopology(options: { nodeCount?: number; rangeCount?: number; keysPerRange?: number } = {}): Topology {
  const nodeCount = options.nodeCount ?? 4;
  const rangeCount = options.rangeCount ?? 3;
  const keysPerRange = options.keysPerRange ?? 4;
  if (nodeCount < 3) throw new RangeError(`a database needs at least 3 nodes for 3-replica ranges, got ${nodeCount}`);
  const nodes = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const key = (i: number): string => `k${String(i).padStart(2, '0')}`;
  const ranges = Array.from({ length: rangeCount }, (_, r) => ({
    id: `r${r}`,
    startKey: r === 0 ? '' : key(r * keysPerRange),
    replicas: [0, 1, 2].map((j) => nodes[(r + j) % nodeCount]!),
  }));
  return { nodes, ranges, keys: Array.from({ length: rangeCount * keysPerRange }, (_, i) => key(i)) };
}

/** The range holding `key`. */
export function rangeOf(topology: Topology, key: string): Range {
  let found = topology.ranges[0]!;
  for (const r of topology.ranges) if (key >= r.startKey) found = r;
  return found;
}

/** Address of a range's Raft node on `node`. */
export const raftAddress = (node: string, range: string): string => `${node}/raft-${range}`;
/** Address of a range's KV service on `node`. */
export const serviceAddress = (node: string, range: string): string => `${node}/kv-${range}`;

/**
 * In-memory Raft logs, one per (node, range), kept across a node's restarts as a disk would be:
 * `storage(node)` is what {@link startDatabaseNode} takes.
 */
export function memoryStorages(): (node: string) => (range: string) => RaftStorage {
  const storages = new Map<string, RaftStorage>();
  return (node) => (range) => {
    const key = `${node}/${range}`;
    const s = storages.get(key) ?? memoryRaftStorage();
    storages.set(key, s);
    return s;
  };
}

/** Options of {@link startDatabaseNode}. */
export interface DatabaseNodeOptions {
  /** The Raft log of this node's replica of `range` (kept across restarts by the caller). */
  storage: (range: string) => RaftStorage;
  rng: Rng;
  /** Leadership changes of this node's replicas. */
  onRole?: (range: string, role: string, term: number) => void;
  /** Compact each replica's log every this many entries. @default 200 */
  snapshotEveryEntries?: number;
}

/** A node's replicas, by range id. */
export type DatabaseNode = ReadonlyMap<string, KvReplica>;

/** Start the replicas and KV services of every range `node` holds a replica of, on `system`. */
export function startDatabaseNode(system: ActorSystem, topology: Topology, node: string, options: DatabaseNodeOptions): DatabaseNode {
  const replicas = new Map<string, KvReplica>();
  for (const range of topology.ranges) {
    if (!range.replicas.includes(node)) continue;
    const replica = startKvReplica(system, {
      name: `raft-${range.id}`, voters: range.replicas.map((n) => raftAddress(n, range.id)), rng: options.rng,
      storage: options.storage(range.id), tickMs: 10, electionTicks: 15, heartbeatTicks: 3,
      snapshotEveryEntries: options.snapshotEveryEntries ?? 200,
      onRole: (role, term) => options.onRole?.(range.id, role, term),
    });
    startKvService(system, () => replica, { name: `kv-${range.id}`, timeoutMs: 500 });
    replicas.set(range.id, replica);
  }
  return replicas;
}
