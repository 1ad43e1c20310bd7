/**
 * Versions and the merge rule every replica and coordinator applies.
 *
 * Every version carries a hybrid-logical-clock timestamp and its writer: together a total order
 * (last writer wins). In `'vv'` mode it also carries a version vector; then a version replaces only
 * the versions it *dominates*, and concurrent versions are kept side by side as siblings.
 * Merging is commutative, associative and idempotent, so replicas converge whatever order writes,
 * repairs and handoffs arrive in.
 */
import { compareHlc } from './hlc.ts';
import type { QuorumItem, QuorumVersion } from './quorum.pb.ts';

/** One stored version of a value (a tombstone when `deleted`), as on the wire. */
export type Item = Omit<QuorumItem, 'type'>;

/** A version, as on the wire. */
export type Version = Omit<QuorumVersion, 'type'>;

const ZERO: Version = { wallMs: 0, logical: 0, writer: '', vector: {} };

/** The item's version (a missing one — never sent by troupe — counts as the oldest). */
export const versionOf = (item: Item): Version => item.version ?? ZERO;

/** Total order of versions: HLC timestamp, then writer id. */
export function compareVersions(a: Version, b: Version): number {
  const c = compareHlc(a, b);
  if (c !== 0) return c;
  return a.writer < b.writer ? -1 : a.writer > b.writer ? 1 : 0;
}

/** How two version vectors relate (causal order). */
export type VectorOrder = 'before' | 'after' | 'equal' | 'concurrent';

export function compareVectors(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): VectorOrder {
  let less = false;
  let greater = false;
  for (const k in a) {
    const x = a[k]!;
    const y = b[k] ?? 0;
    if (x < y) less = true;
    else if (x > y) greater = true;
  }
  for (const k in b) {
    if (k in a) continue;
    if (b[k]! > 0) less = true;
  }
  return less ? (greater ? 'concurrent' : 'before') : greater ? 'after' : 'equal';
}

const hasVector = (v: Version): boolean => {
  for (const _ in v.vector) return true;
  return false;
};

/** The same version (same write): same timestamp and writer. */
export const sameVersion = (a: Item, b: Item): boolean => compareVersions(versionOf(a), versionOf(b)) === 0;

function mergeOne(items: Item[], x: Item): boolean {
  const vx = versionOf(x);
  if (!hasVector(vx)) {
    // last writer wins: keep the one greatest version
    for (const s of items) if (compareVersions(versionOf(s), vx) >= 0) return false;
    items.length = 0;
    items.push(x);
    return true;
  }
  for (const s of items) {
    const o = compareVectors(vx.vector, versionOf(s).vector);
    // equal vectors name the same write; should two differ anyway, the greater version is kept
    if (o === 'before' || (o === 'equal' && compareVersions(vx, versionOf(s)) <= 0)) return false;
  }
  let j = 0;
  for (const s of items) {
    const o = compareVectors(versionOf(s).vector, vx.vector);
    if (o !== 'before' && o !== 'equal') items[j++] = s;
  }
  items.length = j;
  items.push(x);
  items.sort((a, b) => compareVersions(versionOf(a), versionOf(b)));
  return true;
}

/**
 * Merge `incoming` into `stored`. Returns the merged list (a new array when anything changed,
 * `stored` itself otherwise) — siblings in version order, the latest last.
 */
export function mergeItems(stored: readonly Item[], incoming: readonly Item[]): readonly Item[] {
  let out: Item[] | undefined;
  for (const x of incoming) {
    const work = out ?? [...stored];
    if (mergeOne(work, x)) out = work;
  }
  return out ?? stored;
}

/** True when `held` already contains every version of `resolved` (nothing to repair). */
export function covers(held: readonly Item[], resolved: readonly Item[]): boolean {
  return resolved.every((r) => held.some((h) => sameVersion(h, r)));
}
