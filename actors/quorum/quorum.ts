/**
 * A quorum replica group: N replica actors, a coordinator chart per request, W and R chosen by the
 * caller. Writes are acknowledged once W replicas stored them; reads return once R replicas
 * answered and the value read is on N − R + 1 replicas (blocking read repair). With W + R > N
 * every quorum read sees every acknowledged write, and successive reads never go back in time.
 *
 * @example
 * const replicas = ['r1', 'r2', 'r3'].map((name) => spawnQuorumReplica(system, { name }));
 * const kv = createQuorumGroup(system, { replicas, w: 2, r: 2 });
 * await kv.put('cart:42', 'apples');
 * const { value } = await kv.get('cart:42');   // 'apples'
 */
import { createActor } from 'xstate';
import { QuorumUnreachableError } from '../../framework/errors.ts';
import { addressOf, type RefLike } from '../../framework/ref.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { validateName } from '../../framework/transport/subjects.ts';
import { createHlc } from './hlc.ts';
import { coordinatorMachine, type CoordinatorInput, type CoordinatorOutput, type ScatterEvent } from './machine.ts';
import { compareVersions, versionOf, type Item } from './versions.ts';

/** Default time each replica has to answer, per phase of a request. */
export const DEFAULT_QUORUM_TIMEOUT_MS = 1_000;
/** Default versioning: hybrid-logical-clock timestamps, last writer wins. */
export const DEFAULT_VERSIONING = 'lww';
/** Default group name (part of the writer id `node/name`). */
export const DEFAULT_QUORUM_NAME = 'quorum';

/** How concurrent writes are resolved. */
export type Versioning =
  /** Last writer wins by hybrid-logical-clock timestamp: one value per key; concurrent writes are lost but one. */
  | 'lww'
  /** Version vectors: concurrent writes are all kept as siblings until a write that read them replaces them. */
  | 'vv';

/** Options of {@link createQuorumGroup}. */
export interface QuorumGroupOptions {
  /** The home replicas; N is their number. */
  replicas: readonly RefLike[];
  /** Write quorum: acknowledgements a write needs, 1 ≤ W ≤ N. */
  w: number;
  /** Read quorum: replies a read needs, 1 ≤ R ≤ N. */
  r: number;
  /** @default 'lww' */
  versioning?: Versioning;
  /** Time each replica has to answer, per phase (write, read, repair). @default 1000 */
  timeoutMs?: number;
  /**
   * Stand-in replicas for a sloppy quorum: a home replica that fails a write before it has W acks
   * is replaced by the next unused stand-in, which holds the write as a hint for it (its ack counts
   * toward W) and hands it off when that replica answers again. Weakens W + R > N (see the README).
   * @default [] (strict quorum)
   */
  standIns?: readonly RefLike[];
  /**
   * Allow W + R ≤ N: reads may then miss acknowledged writes (stale reads). Without it such a
   * setting is a RangeError. @default false
   */
  allowWeakQuorum?: boolean;
  /** This group's name, unique on its node: the writer id in versions is `node/name`. @default 'quorum' */
  name?: string;
}

/** A version as callers see it: comparable with {@link compareVersions}. */
export interface QuorumVersion {
  readonly wallMs: number;
  readonly logical: number;
  readonly writer: string;
  /** Version vector ('vv' mode; empty in 'lww'). */
  readonly vector: Readonly<Record<string, number>>;
}

/** What a read saw, to pass to the next write of the same key ('vv' mode: that write replaces these siblings). */
export interface VersionContext {
  readonly vector: Readonly<Record<string, number>>;
}

/** The result of a quorum read. */
export interface QuorumReadResult {
  /** A live value exists (the key was written and its latest version is not a delete). */
  readonly found: boolean;
  /** The latest live value (by version), if any. */
  readonly value: string | undefined;
  /** Every live concurrent value, oldest first: 'vv' mode may hold several; 'lww' at most one. */
  readonly siblings: readonly string[];
  /** The latest version read (a delete's too), if the key was ever written. */
  readonly version: QuorumVersion | undefined;
  /** Pass to `put`/`delete` of the same key to replace what was read ('vv' mode). */
  readonly context: VersionContext;
  /** Replicas that answered. */
  readonly acks: number;
  /** Replicas repaired before the read returned. */
  readonly repaired: number;
}

/** The result of a quorum write. */
export interface QuorumWriteResult {
  readonly version: QuorumVersion;
  /** Replicas that acknowledged (stand-ins included). */
  readonly acks: number;
  /** Stand-ins that acknowledged it as a hint (sloppy quorum). */
  readonly hinted: number;
}

/** Options of one write. */
export interface QuorumWriteOptions {
  /** The context of a read of this key: the write supersedes what was read ('vv' mode). */
  readonly context?: VersionContext;
}

/** A quorum replica group's client. */
export interface QuorumGroup {
  /** N, W, R as configured. */
  readonly n: number;
  readonly w: number;
  readonly r: number;
  /** Rejects with `QuorumUnreachableError` when fewer than W replicas acknowledged. */
  put(key: string, value: string, options?: QuorumWriteOptions): Promise<QuorumWriteResult>;
  /** A tombstone write; same guarantees as `put`. */
  delete(key: string, options?: QuorumWriteOptions): Promise<QuorumWriteResult>;
  /** Rejects with `QuorumUnreachableError` when fewer than R replicas answered or the repair could not complete. */
  get(key: string): Promise<QuorumReadResult>;
}

interface ResolvedGroupOptions {
  replicas: string[];
  standIns: string[];
  w: number;
  r: number;
  versioning: Versioning;
  timeoutMs: number;
  writer: string;
}

function resolveGroupOptions(node: string, o: QuorumGroupOptions): ResolvedGroupOptions {
  const replicas = o.replicas.map(addressOf);
  const n = replicas.length;
  if (n < 1) throw new RangeError('quorum: replicas must name at least one replica');
  if (new Set(replicas).size !== n) throw new RangeError('quorum: replicas must be distinct');
  if (!Number.isInteger(o.w) || o.w < 1 || o.w > n) throw new RangeError(`quorum: w must be an integer in [1, ${n}] (N = ${n}), got ${o.w}`);
  if (!Number.isInteger(o.r) || o.r < 1 || o.r > n) throw new RangeError(`quorum: r must be an integer in [1, ${n}] (N = ${n}), got ${o.r}`);
  if (o.w + o.r <= n && o.allowWeakQuorum !== true) {
    throw new RangeError(`quorum: w + r must exceed N (${o.w} + ${o.r} ≤ ${n}: reads could miss acknowledged writes); set allowWeakQuorum to accept stale reads`);
  }
  const versioning = o.versioning ?? DEFAULT_VERSIONING;
  if (versioning !== 'lww' && versioning !== 'vv') throw new RangeError(`quorum: versioning must be 'lww' or 'vv', got ${String(versioning)}`);
  const timeoutMs = o.timeoutMs ?? DEFAULT_QUORUM_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`quorum: timeoutMs must be a positive number of ms, got ${timeoutMs}`);
  const standIns = (o.standIns ?? []).map(addressOf);
  if (standIns.some((s) => replicas.includes(s))) throw new RangeError('quorum: standIns must not be home replicas');
  const name = o.name ?? DEFAULT_QUORUM_NAME;
  validateName(name, 'quorum group name');
  return { replicas, standIns, w: o.w, r: o.r, versioning, timeoutMs, writer: `${node}/${name}` };
}

/**
 * The client of a replica group, coordinating from `system` (any node).
 * @example
 * const kv = createQuorumGroup(system, { replicas: [r1, r2, r3], w: 2, r: 2 });
 * const { version } = await kv.put('k', 'v');
 */
export function createQuorumGroup(system: ActorSystem, options: QuorumGroupOptions): QuorumGroup {
  const o = resolveGroupOptions(system.node, options);
  const n = o.replicas.length;
  const hlc = createHlc(system.clock);
  // the highest counter of this writer in any version vector seen (keeps vv increments unique)
  let counter = 0;

  const run = (input: CoordinatorInput): Promise<Extract<CoordinatorOutput, { outcome: 'ok' }>> =>
    new Promise((resolve, reject) => {
      const actor = createActor(coordinatorMachine, { input, clock: system.clock });
      // answers of a decided request are dropped (their messages were sent all the same)
      const answer = (event: ScatterEvent): void => {
        if (actor.getSnapshot().status === 'active') actor.send(event);
      };
      actor.on('quorum.scatter', ({ round, requests, timeoutMs }) => {
        for (const req of requests) {
          system.ask(req.to, req.message, { timeoutMs }).then(
            (message) => answer({ type: 'quorum.reply', round, replica: req.to, message }),
            (err: unknown) => answer({ type: 'quorum.noReply', round, replica: req.to, error: err instanceof Error ? err.message : String(err) }),
          );
        }
      });
      actor.subscribe({
        complete: () => {
          const out = actor.getSnapshot().output!;
          if (out.outcome === 'ok') resolve(out);
          else reject(new QuorumUnreachableError(input.key, out.phase, out.acks, out.needed, n, out.failures));
        },
        error: reject,
      });
      actor.start();
    });

  const base = (key: string): Omit<CoordinatorInput, 'op' | 'items' | 'needed'> =>
    ({ key, replicas: o.replicas, standIns: o.standIns, repairNeeded: n - o.r + 1, timeoutMs: o.timeoutMs });

  const write = async (key: string, value: string, deleted: boolean, opts: QuorumWriteOptions | undefined): Promise<QuorumWriteResult> => {
    const ts = hlc.now();
    let vector: Record<string, number> = {};
    if (o.versioning === 'vv') {
      vector = { ...opts?.context?.vector };
      counter = Math.max(counter, vector[o.writer] ?? 0) + 1;
      vector[o.writer] = counter;
    }
    const version = { wallMs: ts.wallMs, logical: ts.logical, writer: o.writer, vector };
    const out = await run({ ...base(key), op: 'write', needed: o.w, items: [{ version, value, deleted }] });
    return { version, acks: out.acks, hinted: out.hinted };
  };

  return {
    n, w: o.w, r: o.r,
    put: (key, value, opts) => write(key, value, false, opts),
    delete: (key, opts) => write(key, '', true, opts),
    async get(key) {
      const out = await run({ ...base(key), op: 'read', needed: o.r, items: [] });
      return readResult(out.items, out.acks, out.repaired, (v) => {
        hlc.observe(v);
        const mine = v.vector[o.writer];
        if (mine !== undefined && mine > counter) counter = mine;
      });
    },
  };
}

function readResult(items: readonly Item[], acks: number, repaired: number, observe: (v: QuorumVersion) => void): QuorumReadResult {
  const vector: Record<string, number> = {};
  let latest: QuorumVersion | undefined;
  const siblings: string[] = [];
  let value: string | undefined;
  let valueVersion: QuorumVersion | undefined;
  for (const item of items) {
    const v = versionOf(item);
    observe(v);
    for (const k in v.vector) vector[k] = Math.max(vector[k] ?? 0, v.vector[k]!);
    if (latest === undefined || compareVersions(v, latest) > 0) latest = v;
    if (item.deleted) continue;
    siblings.push(item.value);
    if (valueVersion === undefined || compareVersions(v, valueVersion) > 0) {
      valueVersion = v;
      value = item.value;
    }
  }
  return { found: value !== undefined, value, siblings, version: latest, context: { vector }, acks, repaired };
}

export { compareVersions };

/** The group's message set: pass it as `createSystem({ messages: [quorumMessages] })` on a client-only node. */
export { messages as quorumMessages } from './quorum.pb.ts';
