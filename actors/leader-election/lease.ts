/**
 * `leaseElection(options)`: leader election over a lease in any `KvStore` — NATS JetStream KV in
 * production, the memory store in unit tests and the simulator, troupe's Raft KV later.
 *
 * - **Campaign** = `create(<keyPrefix>.<group>, {candidate}, { ttlMs })`. Exactly one concurrent
 *   `create` wins (the store's compare-and-set); the winner's **epoch is the revision of that
 *   create**. Revisions are assigned by the store, increase with every write and are never reused,
 *   so a later winning create has a larger revision: the epoch is monotonic without any extra key.
 *   (An explicit counter key would cost a second round trip per election and, on NATS KV before
 *   nats-server 2.11, would itself expire with the bucket's max age and restart from zero.)
 * - **Renew** = `update(key, {candidate, epoch}, lastRevision)` every `renewIntervalMs`; a lost
 *   compare-and-set means the lease is gone: deposed at once.
 * - Leadership is decided only by our own successful `create`/`update`, never by a `get` (which
 *   may be answered by a lagging replica); `leader(group)` uses `get` and is for observers only.
 * - **Local deadline.** A leader stops acting at `sentAt + ttlMs − safetyMarginMs`, where `sentAt`
 *   is its own clock's time when the last successful acquire/renew request was SENT. The store
 *   starts the TTL when it writes, which is after that, so the local deadline passes at least
 *   `safetyMarginMs` before the store can expire the key — provided the candidate's clock does not
 *   run slower than the store's by more than `safetyMarginMs` over one `ttlMs` (rate drift, not
 *   offset: the clocks need not agree on the time). The deadline is held both as a timer and as a
 *   time checked by `isLeader()`: the timer is immune to the wall clock being stepped, the check
 *   catches a process that was paused (its timers could not fire).
 */
import { createActor, type Actor } from 'xstate';
import { realClock, type Clock } from '../../framework/clock.ts';
import { KvConflictError, NotLeaderError } from '../../framework/errors.ts';
import { assertValidKey, type KvStore, type KvWatch } from '../../framework/store/store.ts';
import type { Campaign, CampaignHandlers, Deposal, LeaderElection, LeaderInfo, Leadership } from './election.ts';
import { electionMachine, ElectionState, type ElectionStateName } from './machine.ts';

/** Default lease TTL. */
export const DEFAULT_LEASE_TTL_MS = 10_000;
/** Default key prefix: the lease of group `g` is the key `election.g`. */
export const DEFAULT_LEASE_KEY_PREFIX = 'election';

/** Options of {@link leaseElection}. */
export interface LeaseElectionOptions {
  /** Where the leases live. With NATS KV, open the bucket with `ttlMs` equal to this `ttlMs`. */
  store: KvStore;
  /** This candidate's id (a node name, a process id…); shown to observers. */
  candidate: string;
  /**
   * Lease length: a dead leader's lease lapses this long after its last renew.
   * @default 10000
   */
  ttlMs?: number;
  /**
   * Renew this often (counted from when the previous renew was sent). Must be less than
   * `ttlMs − safetyMarginMs`; the smaller, the more store outages a leader rides out.
   * @default ttlMs / 4
   */
  renewIntervalMs?: number;
  /**
   * While a renew fails (store unreachable), retry this often until the local deadline.
   * @default renewIntervalMs / 4
   */
  renewRetryMs?: number;
  /**
   * A leader deposes itself this long before the store could expire its lease: covers clock rate
   * drift over one `ttlMs` and the leader's own timer lateness. Must be less than `ttlMs`.
   * @default ttlMs / 10
   */
  safetyMarginMs?: number;
  /**
   * A follower tries to take the lease this often (the store does not announce expiries); a
   * release (`resign`) is noticed at once through a watch.
   * @default renewIntervalMs
   */
  retryIntervalMs?: number;
  /**
   * Key prefix; the group's lease is `<keyPrefix>.<group>`.
   * @default 'election'
   */
  keyPrefix?: string;
  /** @default realClock() */
  clock?: Clock;
}

interface ResolvedLeaseOptions {
  store: KvStore;
  candidate: string;
  ttlMs: number;
  renewIntervalMs: number;
  renewRetryMs: number;
  safetyMarginMs: number;
  retryIntervalMs: number;
  keyPrefix: string;
  clock: Clock;
}

function resolveLeaseOptions(options: LeaseElectionOptions): ResolvedLeaseOptions {
  const bad = (property: string, expected: string, value: unknown): never => {
    throw new RangeError(`lease election option ${property} must be ${expected}, got ${String(value)}`);
  };
  if (options === null || typeof options !== 'object') bad('(options)', 'an object', options);
  const { store, candidate } = options;
  if (store === null || typeof store !== 'object' || typeof store.create !== 'function') bad('store', 'a KvStore', store);
  if (typeof candidate !== 'string' || candidate.length === 0) bad('candidate', 'a non-empty string', candidate);
  const ms = (property: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(property, 'a positive number of milliseconds', v);
    return v;
  };
  const ttlMs = ms('ttlMs', options.ttlMs, DEFAULT_LEASE_TTL_MS);
  const safetyMarginMs = ms('safetyMarginMs', options.safetyMarginMs, ttlMs / 10);
  if (safetyMarginMs >= ttlMs) bad('safetyMarginMs', `less than ttlMs (${ttlMs})`, safetyMarginMs);
  const renewIntervalMs = ms('renewIntervalMs', options.renewIntervalMs, ttlMs / 4);
  if (renewIntervalMs >= ttlMs - safetyMarginMs) bad('renewIntervalMs', `less than ttlMs − safetyMarginMs (${ttlMs - safetyMarginMs})`, renewIntervalMs);
  const renewRetryMs = ms('renewRetryMs', options.renewRetryMs, renewIntervalMs / 4);
  const retryIntervalMs = ms('retryIntervalMs', options.retryIntervalMs, renewIntervalMs);
  const keyPrefix = options.keyPrefix ?? DEFAULT_LEASE_KEY_PREFIX;
  if (typeof keyPrefix !== 'string') bad('keyPrefix', 'a string', keyPrefix);
  assertValidKey(keyPrefix);
  return { store, candidate, ttlMs, renewIntervalMs, renewRetryMs, safetyMarginMs, retryIntervalMs, keyPrefix, clock: options.clock ?? realClock() };
}

/** What the lease key holds. `epoch` is absent in the first revision: that revision IS the epoch. */
interface LeaseValue {
  candidate: string;
  epoch?: number;
}

const encode = (v: LeaseValue): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
function decode(bytes: Uint8Array): LeaseValue | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseValue>;
    return typeof v.candidate === 'string' ? { candidate: v.candidate, ...(typeof v.epoch === 'number' ? { epoch: v.epoch } : {}) } : undefined;
  } catch {
    return undefined;
  }
}
const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** A lease campaign: the chart plus the host that carries out its effects. */
export interface LeaseCampaign extends Campaign {
  /** The hosted XState actor (inspection: `system.host(name, campaign.actor)`). */
  readonly actor: Actor<typeof electionMachine>;
  /** The lease key. */
  readonly key: string;
}

/** A lease election bound to one candidate. */
export interface LeaseElection extends LeaderElection {
  readonly kind: 'lease';
  campaign(group: string, handlers?: CampaignHandlers): LeaseCampaign;
}

/**
 * Leader election over a lease in `options.store`.
 * @example
 * const store = await createNatsKvStore({ servers, bucket: 'leases', replicas: 3, ttlMs: 5_000 });
 * const election = leaseElection({ store, candidate: system.node, ttlMs: 5_000 });
 * const c = election.campaign('orders', {
 *   onElected: ({ epoch }) => startWork(epoch),   // pass epoch to every write as a fencing token
 *   onDeposed: () => stopWork(),
 * });
 * if (c.isLeader()) …
 */
export function leaseElection(options: LeaseElectionOptions): LeaseElection {
  const o = resolveLeaseOptions(options);
  const campaigns = new Map<string, LeaseCampaign>();
  return {
    kind: 'lease',
    candidate: o.candidate,
    campaign(group, handlers = {}) {
      if (campaigns.has(group)) throw new RangeError(`lease election: candidate '${o.candidate}' already campaigns for group '${group}'`);
      const c = startCampaign(o, group, handlers, () => campaigns.delete(group));
      campaigns.set(group, c);
      return c;
    },
    async leader(group) {
      const key = `${o.keyPrefix}.${group}`;
      assertValidKey(key);
      const entry = await o.store.get(key);
      const v = entry ? decode(entry.value) : undefined;
      if (!entry || !v) return undefined;
      const info: LeaderInfo = { group, candidate: v.candidate, epoch: v.epoch ?? entry.revision };
      return info;
    },
    async close() {
      await Promise.all(Array.from(campaigns.values(), (c) => c.resign()));
    },
  };
}

function startCampaign(o: ResolvedLeaseOptions, group: string, handlers: CampaignHandlers, forget: () => void): LeaseCampaign {
  const key = `${o.keyPrefix}.${group}`;
  assertValidKey(key);
  const { store, clock, candidate } = o;
  let watch: KvWatch | undefined;
  let resigned = false;
  let lastRelease: Promise<unknown> = Promise.resolve();

  const report = (err: unknown): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    if (handlers.onError) handlers.onError(e);
    else queueMicrotask(() => { throw e; });
  };
  const call = <T>(fn: () => Promise<T>): Promise<T> => Promise.resolve().then(fn);

  const machine = electionMachine.provide({
    actions: {
      acquire: ({ context, self }) => {
        const op = context.op;
        const sentAtMs = clock.now();
        call(() => store.create(key, encode({ candidate }), { ttlMs: o.ttlMs })).then(
          (revision) => self.send({ type: 'ACQUIRED', op, revision, sentAtMs, nowMs: clock.now() }),
          (err: unknown) => {
            if (err instanceof KvConflictError) {
              self.send({ type: 'TAKEN', op, nowMs: clock.now() });
            } else {
              self.send({ type: 'ACQUIRE_FAILED', op, reason: describe(err), nowMs: clock.now() });
            }
          },
        );
      },
      renew: ({ context, self }) => {
        const { op, revision, epoch } = context;
        const value = encode({ candidate, epoch: epoch! });
        let sentAtMs = clock.now();
        call(() => store.update(key, value, revision!)).catch(async (err: unknown) => {
          if (!(err instanceof KvConflictError)) throw err;
          // An earlier renew that "failed" (timed out) may have been applied after all, moving the
          // revision. If the key still carries OUR epoch — written only by us, since only our create
          // got that revision — retry the compare-and-set at its revision. The `get` only supplies
          // a revision to try; the update decides, and the lease runs from when IT was sent.
          const current = await store.get(key);
          const v = current ? decode(current.value) : undefined;
          if (!current || v?.candidate !== candidate || v.epoch !== epoch) throw err;
          sentAtMs = clock.now();
          return store.update(key, value, current.revision);
        }).then(
          (next) => self.send({ type: 'RENEWED', op, revision: next, sentAtMs, nowMs: clock.now() }),
          (err: unknown) => {
            const type = err instanceof KvConflictError ? 'RENEW_CONFLICT' : 'RENEW_FAILED';
            self.send({ type, op, reason: describe(err), nowMs: clock.now() });
          },
        );
      },
      release: (_, params) => {
        if (params.revision === undefined) return;
        // Best effort: a conflict means the lease is no longer ours to give back.
        lastRelease = call(() => store.delete(key, { expectedRevision: params.revision })).catch(() => undefined);
      },
      elected: ({ context }) => {
        try {
          handlers.onElected?.({ group, candidate, epoch: context.epoch! });
        } catch (err) {
          report(err);
        }
      },
      deposed: (_, params) => {
        const deposal: Deposal = { group, candidate, epoch: params.epoch!, reason: params.reason };
        try {
          handlers.onDeposed?.(deposal);
        } catch (err) {
          report(err);
        }
      },
    },
  });

  const actor = createActor(machine, {
    clock,
    input: {
      group, candidate, ttlMs: o.ttlMs, renewIntervalMs: o.renewIntervalMs, renewRetryMs: o.renewRetryMs,
      safetyMarginMs: o.safetyMarginMs, retryIntervalMs: o.retryIntervalMs,
    },
  });
  actor.start();

  const state = (): ElectionStateName => {
    const v = actor.getSnapshot().value;
    return (typeof v === 'string' ? v : Object.keys(v)[0]) as ElectionStateName;
  };
  const leadership = (): Leadership | undefined => {
    const snap = actor.getSnapshot();
    if (state() !== ElectionState.Leader || clock.now() >= snap.context.leaseDeadlineMs) return undefined;
    return { group, candidate, epoch: snap.context.epoch! };
  };

  // A resigning leader deletes the key: followers hear it and campaign at once instead of polling.
  store.watch(key, (entry) => {
    if (entry.operation === 'delete') actor.send({ type: 'RELEASED', nowMs: clock.now() });
  }, { onError: () => undefined }).then(
    (w) => {
      if (resigned) w.stop();
      else watch = w;
    },
    () => undefined, // without the watch, followers still poll every retryIntervalMs
  );
  actor.send({ type: 'CAMPAIGN', nowMs: clock.now() });

  return {
    group,
    candidate,
    key,
    actor,
    get state() { return state(); },
    isLeader: () => leadership() !== undefined,
    leadership,
    confirm: async () => {
      const l = leadership();
      if (!l) throw new NotLeaderError(candidate, actor.getSnapshot().context.holder);
      return l;
    },
    async resign() {
      if (resigned) return;
      resigned = true;
      watch?.stop();
      // The actor stays (in `resigned`, which has no timers) to give back a lease that a create
      // still in flight wins after all.
      actor.send({ type: 'RESIGN', nowMs: clock.now() });
      forget();
      await lastRelease;
    },
  };
}

