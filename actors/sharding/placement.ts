/**
 * Placement: entity key → shard → node. Pure and deterministic — the same key, shard count and
 * member set give the same answer on every node, in every process, on every run.
 *
 * Keys map to a fixed number of shards (`shardOf`); shards map to nodes by rendezvous hashing
 * (highest random weight, `rendezvousOwner`): every node scores every shard and the best score
 * wins, so when a node joins only the shards it now wins move (to it), and when a node leaves only
 * its own shards move — about K/N keys either way. A consistent-hash ring with virtual nodes
 * (`createHashRing`) is here too, for comparison and for callers that want it.
 */

/** FNV-1a, 32 bits, over the UTF-16 code units of `s`. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finaliser: spreads FNV's weak low bits over the whole word. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The shard of an entity key, in `[0, numberOfShards)`. */
export function shardOf(key: string, numberOfShards: number): number {
  return mix32(fnv1a32(key)) % numberOfShards;
}

/** Rendezvous score of `node` for `item`; ties (astronomically rare) break by node name. */
function score(item: number, nodeHash: number): number {
  return mix32(nodeHash ^ mix32(item + 0x9e3779b9));
}

/**
 * The node that owns `item` (a shard number) among `nodes`, by rendezvous hashing; undefined when
 * `nodes` is empty. Independent of the order of `nodes`.
 */
export function rendezvousOwner(item: number, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const node of nodes) {
    const s = score(item, fnv1a32(node));
    if (s > bestScore || (s === bestScore && best !== undefined && node < best)) {
      best = node;
      bestScore = s;
    }
  }
  return best;
}

/**
 * A precomputed rendezvous table: the owner of every shard for one member set (what a region
 * consults on every message — one array read).
 */
export function ownerTable(numberOfShards: number, nodes: readonly string[]): readonly (string | undefined)[] {
  const hashes = nodes.map((n) => ({ node: n, hash: fnv1a32(n) }));
  const table: (string | undefined)[] = new Array(numberOfShards);
  for (let shard = 0; shard < numberOfShards; shard++) {
    let best: string | undefined;
    let bestScore = -1;
    for (const { node, hash } of hashes) {
      const s = score(shard, hash);
      if (s > bestScore || (s === bestScore && best !== undefined && node < best)) {
        best = node;
        bestScore = s;
      }
    }
    table[shard] = best;
  }
  return table;
}

/** A consistent-hash ring with `vnodes` points per node. */
export interface HashRing {
  /** The node owning `key` (the first point clockwise from the key's hash); undefined when empty. */
  owner(key: string): string | undefined;
}

/** Build a consistent-hash ring over `nodes` with `vnodes` virtual nodes each. */
export function createHashRing(nodes: readonly string[], vnodes: number): HashRing {
  if (!Number.isInteger(vnodes) || vnodes < 1) throw new RangeError(`vnodes must be a positive integer, got ${vnodes}`);
  const points: { at: number; node: string }[] = [];
  for (const node of nodes) for (let v = 0; v < vnodes; v++) points.push({ at: mix32(fnv1a32(`${node}#${v}`)), node });
  points.sort((a, b) => a.at - b.at || (a.node < b.node ? -1 : 1));
  const ats = points.map((p) => p.at);
  return {
    owner(key) {
      if (points.length === 0) return undefined;
      const h = mix32(fnv1a32(key));
      let lo = 0;
      let hi = ats.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (ats[mid]! < h) lo = mid + 1;
        else hi = mid;
      }
      return points[lo === points.length ? 0 : lo]!.node;
    },
  };
}

/** How many of `keys` a placement change moves. */
export interface KeyMovement {
  readonly keys: number;
  readonly moved: number;
  /** `moved / keys`. */
  readonly fraction: number;
}

/** Count the keys whose owner differs between two placements. */
export function keyMovement(keys: readonly string[], before: (key: string) => string | undefined, after: (key: string) => string | undefined): KeyMovement {
  let moved = 0;
  for (const k of keys) if (before(k) !== after(k)) moved++;
  return { keys: keys.length, moved, fraction: keys.length === 0 ? 0 : moved / keys.length };
}
