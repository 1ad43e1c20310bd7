/**
 * Leader election over a lease, on a simulated clock: election, renewal, resignation, a crashed or
 * cut-off leader replaced within TTL + renew interval + margin, a paused leader waking up deposed
 * (and fenced out), store outages, option checks.
 * The suite runs against every store in STORES: the memory store and troupe's Raft KV (a 3-node
 * group on the same simulated clock). Adding a store is one more entry there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { leaseElection, type LeaseCampaign, type LeaseElectionOptions } from '../../actors/leader-election/lease.ts';
import type { Deposal, Leadership } from '../../actors/leader-election/election.ts';
import { simulatedClock, type Clock, type ManualClock } from '../../framework/clock.ts';
import { NotLeaderError, StoreUnavailableError } from '../../framework/errors.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { startRaftKvGroup } from '../helpers/raft-kv-group.ts';

/** A store under test on the given simulated clock, plus a switch to make it unreachable. */
interface StoreUnderTest {
  store: KvStore;
  setAvailable(available: boolean): void;
  close(): Promise<void>;
}
const STORES: Array<{ name: string; open: (clock: ManualClock) => Promise<StoreUnderTest> }> = [
  {
    name: 'memory',
    open: async (clock) => {
      const store = createMemoryKvStore({ clock });
      return { store, setAvailable: (a) => store.setAvailable(a), close: () => store.close() };
    },
  },
  {
    // a 3-node Raft group on the same simulated clock; unavailable = this client cut off from it,
    // so calls time out (StoreUnavailableError after timeoutMs) rather than fail at once
    name: 'troupe Raft KV',
    open: async (clock) => {
      const group = startRaftKvGroup({ clock, seed: 3 });
      await advanceUntil(clock, () => group.hasLeader(), 1_000);
      const { store, setReachable } = group.cuttableStore({ name: 'election', timeoutMs: 200, attemptTimeoutMs: 100 });
      return { store, setAvailable: setReachable, close: () => group.close() };
    },
  },
];

const TTL = 1_000;
const RENEW = 250;
const MARGIN = 100;

/** Let promise chains and watch deliveries run (no time passes). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};
/** Advance simulated time in small steps, letting the store's answers arrive between them. */
async function advance(clock: ManualClock, ms: number, stepMs = 5): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.increment(Math.min(stepMs, ms - t));
    await flush();
  }
}
async function advanceUntil(clock: ManualClock, cond: () => boolean, maxMs: number, stepMs = 5): Promise<number> {
  const start = clock.now();
  while (!cond()) {
    if (clock.now() - start > maxMs) throw new Error(`condition not met within ${maxMs} simulated ms`);
    clock.increment(stepMs);
    await flush();
  }
  return clock.now() - start;
}

/** A store wrapper for one candidate whose link can be cut: calls then never answer (a partition). */
function cuttable(store: KvStore): { store: KvStore; cut(): void } {
  let cut = false;
  const never = new Promise<never>(() => undefined);
  const wrap = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => (...a: A): Promise<R> => (cut ? never : fn(...a));
  return {
    cut: () => { cut = true; },
    store: {
      kind: store.kind,
      get: wrap(store.get.bind(store)),
      create: wrap(store.create.bind(store)),
      update: wrap(store.update.bind(store)),
      put: wrap(store.put.bind(store)),
      delete: wrap(store.delete.bind(store)),
      watch: wrap(store.watch.bind(store)),
      keys: wrap(store.keys.bind(store)),
      close: () => store.close(),
    },
  };
}

/**
 * A candidate's process that can be frozen: while paused its timers and the answers to its store
 * calls are held (they all arrive when it resumes), as with SIGSTOP or a long GC pause.
 */
function pausable(base: ManualClock, store: KvStore) {
  let paused = false;
  const held: Array<() => void> = [];
  const run = (fn: () => void): void => { if (paused) held.push(fn); else fn(); };
  const clock: Clock = {
    now: () => base.now(),
    setTimeout: (fn, ms) => {
      const h = { cancelled: false, inner: undefined as unknown };
      h.inner = base.setTimeout(() => run(() => { if (!h.cancelled) fn(); }), ms);
      return h;
    },
    clearTimeout: (id) => { const h = id as { cancelled: boolean; inner: unknown } | undefined; if (h) { h.cancelled = true; base.clearTimeout(h.inner); } },
  };
  const gate = <T>(p: Promise<T>): Promise<T> => new Promise<T>((res, rej) => p.then((v) => run(() => res(v)), (e: unknown) => run(() => rej(e as Error))));
  const linked: KvStore = {
    kind: store.kind,
    get: (k) => gate(store.get(k)),
    create: (k, v, o) => gate(store.create(k, v, o)),
    update: (k, v, r) => gate(store.update(k, v, r)),
    put: (k, v) => gate(store.put(k, v)),
    delete: (k, o) => gate(store.delete(k, o)),
    keys: (p) => gate(store.keys(p)),
    watch: (p, on, o) => gate(store.watch(p, (e) => run(() => on(e)), o)),
    close: async () => undefined,
  };
  return { clock, store: linked, pause: () => { paused = true; }, resume: () => { paused = false; for (const fn of held.splice(0)) fn(); } };
}

interface Candidate {
  name: string;
  campaign: LeaseCampaign;
  events: Array<{ atMs: number; kind: 'elected' | 'deposed'; epoch: number; reason?: string }>;
  cut(): void;
}

describe.each(STORES)('leader election over a lease ($name store)', ({ open }) => {
  let opened: StoreUnderTest | undefined;
  afterEach(async () => { await opened?.close(); opened = undefined; });

  async function setup(names: string[], extra: Partial<LeaseElectionOptions> = {}) {
    const clock = simulatedClock(1_000_000);
    opened = await open(clock);
    const s = opened;
    const elected: Array<Leadership & { atMs: number }> = [];
    const candidates = names.map((name): Candidate => {
      const link = cuttable(s.store);
      const events: Candidate['events'] = [];
      const election = leaseElection({ store: link.store, candidate: name, clock, ttlMs: TTL, renewIntervalMs: RENEW, safetyMarginMs: MARGIN, ...extra });
      const campaign = election.campaign('orders', {
        onElected: (l) => { events.push({ atMs: clock.now(), kind: 'elected', epoch: l.epoch }); elected.push({ ...l, atMs: clock.now() }); },
        onDeposed: (d: Deposal) => events.push({ atMs: clock.now(), kind: 'deposed', epoch: d.epoch, reason: d.reason }),
      });
      return { name, campaign, events, cut: link.cut };
    });
    const leaders = (): Candidate[] => candidates.filter((c) => c.campaign.isLeader());
    await flush();
    return { clock, store: s, candidates, leaders, elected };
  }

  it('elects exactly one of three candidates; its epoch is the revision of its create; observers see it', async () => {
    const { clock, store, candidates, leaders, elected } = await setup(['a', 'b', 'c']);
    await advanceUntil(clock, () => leaders().length > 0, 100);
    expect(leaders()).toHaveLength(1);
    const [leader] = leaders();
    expect(elected).toHaveLength(1);
    expect(elected[0]!.candidate).toBe(leader!.name);
    const entry = await store.store.get('election.orders');
    expect(entry).toBeDefined();
    expect(elected[0]!.epoch).toBe(entry!.revision); // nothing written since the create
    for (const c of candidates.filter((x) => x !== leader)) {
      expect(c.campaign.state).toBe('follower');
      expect(c.campaign.leadership()).toBeUndefined();
      await expect(c.campaign.confirm()).rejects.toBeInstanceOf(NotLeaderError);
    }
    expect(await leaseElection({ store: store.store, candidate: 'observer', clock }).leader('orders')).toEqual({ group: 'orders', candidate: leader!.name, epoch: elected[0]!.epoch });
    expect(await leader!.campaign.confirm()).toEqual({ group: 'orders', candidate: leader!.name, epoch: elected[0]!.epoch });
  });

  it('a leader keeps renewing: after many TTLs it still leads with the same epoch; observers see the epoch, not the renew revision', async () => {
    const { clock, store, leaders, elected } = await setup(['a', 'b', 'c']);
    await advanceUntil(clock, () => leaders().length > 0, 100);
    const leader = leaders()[0]!;
    const epoch = elected[0]!.epoch;
    await advance(clock, 10 * TTL);
    expect(leaders()).toEqual([leader]);
    expect(elected).toHaveLength(1);
    expect(leader.events.filter((e) => e.kind === 'deposed')).toEqual([]);
    const entry = await store.store.get('election.orders');
    expect(entry!.revision).toBeGreaterThan(epoch + 30); // renewed about every RENEW ms
    expect((await leaseElection({ store: store.store, candidate: 'o', clock }).leader('orders'))?.epoch).toBe(epoch);
  });

  it('resign: the leader steps down and releases; another is elected at once (watch), with a larger epoch', async () => {
    const { clock, candidates, leaders, elected } = await setup(['a', 'b', 'c']);
    await advanceUntil(clock, () => leaders().length > 0, 100);
    const first = leaders()[0]!;
    await first.campaign.resign();
    expect(first.campaign.isLeader()).toBe(false);
    expect(first.campaign.state).toBe('resigned');
    expect(first.events.at(-1)).toMatchObject({ kind: 'deposed', reason: 'resigned', epoch: elected[0]!.epoch });
    const waited = await advanceUntil(clock, () => leaders().length > 0, 2 * TTL);
    expect(waited).toBeLessThan(RENEW); // not the TTL, not even a poll interval
    expect(leaders()).toHaveLength(1);
    expect(leaders()[0]).not.toBe(first);
    expect(elected[1]!.epoch).toBeGreaterThan(elected[0]!.epoch);
    await advance(clock, 3 * TTL);
    expect(first.events.filter((e) => e.kind === 'elected')).toHaveLength(1); // a resigned candidate stays out
    expect(candidates.filter((c) => c.campaign.isLeader())).toHaveLength(1);
  });

  it('a crashed leader (no goodbye) is replaced within TTL + renew interval + margin; epochs strictly increase', async () => {
    const { clock, leaders, elected } = await setup(['a', 'b', 'c']);
    for (let round = 0; round < 2; round++) {
      await advanceUntil(clock, () => leaders().length === 1, 2 * TTL + RENEW);
      await advance(clock, 3 * RENEW + 17 * round); // crash at some point between renews
      const dead = leaders()[0]!;
      dead.cut();
      dead.campaign.actor.stop(); // the process is gone: no timers, no release
      const waited = await advanceUntil(clock, () => leaders().some((c) => c !== dead), 3 * TTL);
      expect(waited).toBeLessThanOrEqual(TTL + RENEW + MARGIN);
      expect(leaders()).toHaveLength(1);
    }
    expect(elected).toHaveLength(3);
    expect(new Set(elected.map((e) => e.candidate)).size).toBe(3);
    for (let i = 1; i < elected.length; i++) expect(elected[i]!.epoch).toBeGreaterThan(elected[i - 1]!.epoch);
  });

  it('a leader cut off from the store deposes itself by its own clock before anyone else is elected', async () => {
    const { clock, leaders, candidates, elected } = await setup(['a', 'b', 'c']);
    await advanceUntil(clock, () => leaders().length === 1, 100);
    const old = leaders()[0]!;
    old.cut();
    const cutAt = clock.now();
    await advanceUntil(clock, () => candidates.some((c) => c !== old && c.campaign.isLeader()), 3 * TTL);
    const deposed = old.events.find((e) => e.kind === 'deposed')!;
    expect(deposed).toMatchObject({ reason: 'lease-expired', epoch: elected[0]!.epoch });
    const next = elected[1]!;
    expect(deposed.atMs).toBeLessThanOrEqual(next.atMs - MARGIN); // a margin of silence between the two
    expect(deposed.atMs - cutAt).toBeLessThanOrEqual(TTL - MARGIN);
    expect(next.epoch).toBeGreaterThan(elected[0]!.epoch);
    expect(old.campaign.isLeader()).toBe(false);
  });

  it('a store outage shorter than the lease margin is ridden out (renew retries); a longer one deposes the leader, and it recovers after', async () => {
    const { clock, store, leaders, elected } = await setup(['a', 'b']);
    await advanceUntil(clock, () => leaders().length === 1, 100);
    const leader = leaders()[0]!;
    store.setAvailable(false);
    await advance(clock, TTL - MARGIN - RENEW - 50);
    store.setAvailable(true);
    await advance(clock, 2 * TTL);
    expect(leaders()).toEqual([leader]);
    expect(elected).toHaveLength(1);

    store.setAvailable(false);
    await advanceUntil(clock, () => leaders().length === 0, TTL);
    expect(leader.events.at(-1)).toMatchObject({ kind: 'deposed', reason: 'lease-expired' });
    store.setAvailable(true);
    await advanceUntil(clock, () => leaders().length === 1, 2 * TTL + RENEW + MARGIN);
    expect(elected.at(-1)!.epoch).toBeGreaterThan(elected[0]!.epoch);
  });

  it('a leader paused past its lease learns it is deposed before acting when it wakes; acting anyway, a fenced resource rejects it', async () => {
    const clock = simulatedClock(1_000_000);
    opened = await open(clock);
    let highest = 0;
    const fenced = (epoch: number): boolean => { if (epoch < highest) return false; highest = epoch; return true; };
    const log: string[] = [];
    const procs = ['a', 'b'].map((name) => {
      const proc = pausable(clock, opened!.store);
      const c = leaseElection({ store: proc.store, candidate: name, clock: proc.clock, ttlMs: TTL, renewIntervalMs: RENEW, safetyMarginMs: MARGIN }).campaign('orders', {
        onDeposed: (d) => log.push(`${name} deposed ${d.reason}`),
      });
      // the application's work loop on the process's own timers: act only when isLeader()
      const work = (): void => {
        const l = c.leadership();
        log.push(`${name} tick ${l ? `acts ${l.epoch}` : 'idle'}`);
        if (l) expect(fenced(l.epoch)).toBe(true);
        proc.clock.setTimeout(work, 50);
      };
      proc.clock.setTimeout(work, 50);
      return { name, proc, c };
    });
    await advanceUntil(clock, () => procs.some((p) => p.c.isLeader()), 100);
    await advance(clock, 300);
    const old = procs.find((p) => p.c.isLeader())!;
    const other = procs.find((p) => p !== old)!;
    const oldEpoch = old.c.leadership()!.epoch;
    old.proc.pause();
    const waited = await advanceUntil(clock, () => other.c.isLeader(), 3 * TTL);
    expect(waited).toBeLessThanOrEqual(TTL + RENEW + MARGIN);
    await advance(clock, 2 * TTL);
    expect(old.c.state).toBe('leader'); // frozen: its chart has not moved
    expect(old.c.isLeader()).toBe(false); // but its own clock says the lease is over
    log.length = 0;
    old.proc.resume();
    await flush();
    // its first tick after waking (held timers run in the order they fell due) does not act
    const firstTick = log.find((l) => l.startsWith(`${old.name} tick`));
    expect(firstTick).toBe(`${old.name} tick idle`);
    expect(log).toContain(`${old.name} deposed lease-expired`);
    expect(log.filter((l) => l.startsWith(`${old.name} tick acts`))).toEqual([]);
    expect(fenced(oldEpoch)).toBe(false); // acting anyway with the old epoch
    expect(other.c.isLeader()).toBe(true);
    await other.c.resign();
    await old.c.resign();
  });

  it('a renew applied by the store but answered with an error (a timeout) does not cost the leadership', async () => {
    const clock = simulatedClock(1_000_000);
    opened = await open(clock);
    const inner = opened.store;
    let loseAnswers = 0;
    const store: KvStore = {
      ...inner,
      kind: inner.kind,
      get: (k) => inner.get(k),
      create: (k, v, o) => inner.create(k, v, o),
      put: (k, v) => inner.put(k, v),
      delete: (k, o) => inner.delete(k, o),
      watch: (p, on, o) => inner.watch(p, on, o),
      keys: (p) => inner.keys(p),
      close: () => inner.close(),
      update: async (k, v, r) => {
        const rev = await inner.update(k, v, r);
        if (loseAnswers > 0) {
          loseAnswers--;
          throw new StoreUnavailableError('memory', 'update: no answer within 100 ms'); // applied, answer lost
        }
        return rev;
      },
    };
    const events: string[] = [];
    const c = leaseElection({ store, candidate: 'x', clock, ttlMs: TTL, renewIntervalMs: RENEW, safetyMarginMs: MARGIN }).campaign('g', {
      onElected: ({ epoch }) => events.push(`elected ${epoch}`),
      onDeposed: ({ epoch, reason }) => events.push(`deposed ${epoch} ${reason}`),
    });
    await advanceUntil(clock, () => c.isLeader(), 100);
    const epoch = c.leadership()!.epoch;
    loseAnswers = 2;
    await advance(clock, 3 * TTL);
    expect(loseAnswers).toBe(0);
    expect(events).toEqual([`elected ${epoch}`]);
    expect(c.leadership()?.epoch).toBe(epoch);
    // someone else's value at a moved revision is not adopted: that is a lost lease
    await inner.put('election.g', new TextEncoder().encode(JSON.stringify({ candidate: 'y', epoch })));
    await advanceUntil(clock, () => !c.isLeader(), RENEW + 10);
    expect(events.at(-1)).toBe(`deposed ${epoch} lost`);
    await c.resign();
  });

  it('a renew that loses its compare-and-set deposes the leader at once', async () => {
    const { clock, store, leaders } = await setup(['a']);
    await advanceUntil(clock, () => leaders().length === 1, 100);
    const leader = leaders()[0]!;
    await store.store.put('election.orders', new TextEncoder().encode('{"candidate":"intruder"}'));
    await advanceUntil(clock, () => leaders().length === 0, RENEW + 10);
    expect(leader.events.at(-1)).toMatchObject({ kind: 'deposed', reason: 'lost' });
  });

  it('a handler that throws is reported to onError and does not break the chart', async () => {
    const clock = simulatedClock(1);
    opened = await open(clock);
    const errors: Error[] = [];
    const c = leaseElection({ store: opened.store, candidate: 'x', clock, ttlMs: TTL }).campaign('g', {
      onElected: () => { throw new Error('handler bug'); },
      onError: (e) => errors.push(e),
    });
    await advanceUntil(clock, () => c.isLeader(), 100);
    expect(errors.map((e) => e.message)).toEqual(['handler bug']);
    await c.resign();
    expect(c.isLeader()).toBe(false);
  });

  it('rejects bad options with a RangeError naming the option, and a second campaign for the same group', async () => {
    const clock = simulatedClock(1);
    opened = await open(clock);
    const store = opened.store;
    expect(() => leaseElection({ store, candidate: '' })).toThrow(/option candidate/);
    expect(() => leaseElection({ store, candidate: 'a', ttlMs: -1 })).toThrow(/option ttlMs/);
    expect(() => leaseElection({ store, candidate: 'a', ttlMs: 1_000, safetyMarginMs: 1_000 })).toThrow(/option safetyMarginMs/);
    expect(() => leaseElection({ store, candidate: 'a', ttlMs: 1_000, renewIntervalMs: 950 })).toThrow(/option renewIntervalMs/);
    expect(() => leaseElection({ store, candidate: 'a', retryIntervalMs: 0 })).toThrow(/option retryIntervalMs/);
    const e = leaseElection({ store, candidate: 'a', clock });
    e.campaign('g');
    expect(() => e.campaign('g')).toThrow(RangeError);
    expect(() => e.campaign('bad group')).toThrow(/key/);
    await e.close();
  });

  it('leader(group) is undefined when nobody holds the group, and surfaces store errors', async () => {
    const clock = simulatedClock(1);
    opened = await open(clock);
    const e = leaseElection({ store: opened.store, candidate: 'o', clock });
    expect(await e.leader('nobody')).toBeUndefined();
    opened.setAvailable(false);
    // an unreachable store may fail at once (memory) or after its call timeout (Raft): let time pass
    const outcome: { error?: unknown } = {};
    e.leader('nobody').then(() => { outcome.error = 'resolved'; }, (err: unknown) => { outcome.error = err; });
    await advanceUntil(clock, () => outcome.error !== undefined, 1_000);
    expect(outcome.error).toBeInstanceOf(StoreUnavailableError);
  });
});
