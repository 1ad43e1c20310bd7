/**
 * The distributed-lock scenarios, written once against the `KvStore` contract and run on every
 * backend: a backend is one `LockBackend` object — `realTimeBackend` (a store on a real server, or
 * on the real clock) or `simulatedTimeBackend` (a store on a ManualClock) — so adding a store is one
 * line in a test file: `lockScenarios(simulatedTimeBackend(name, (clock) => open(clock), { ttlMs }))`.
 * Run on the memory store, the Raft KV store and NATS KV.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLock, type Lease, type LockClient, type LockOptions } from '../../actors/lock/lock.ts';
import { FencedResource, fencedWrite, readFenced } from '../../actors/lock/fenced-resource.ts';
import { createRng, realClock, simulatedClock, type Clock, type ManualClock } from '../../framework/clock.ts';
import {
  AbortedError,
  FencingTokenRejectedError,
  LockLostError,
  LockTimeoutError,
  NotLockOwnerError,
} from '../../framework/errors.ts';
import type { ActorRef } from '../../framework/ref.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { faultyStore, freezableClock, type FaultyStore } from './lock-fixtures.ts';
import { waitFor } from './wait-for.ts';

/** One store implementation under test. */
export interface LockBackend {
  readonly name: string;
  /** The lease TTL the backend supports (the NATS KV store: its bucket's). */
  readonly ttlMs: number;
  /** Critical sections per client in the five-client run. */
  readonly sectionsPerClient: number;
  /** Slack on timing bounds: watch and expiry delays of a real server, scheduling. */
  readonly marginMs: number;
  /** A per-test timeout for vitest. */
  readonly testTimeoutMs: number;
  /** A fresh environment for one test. */
  setup(): Promise<LockEnv>;
  /** After the last test (close a store shared by the tests). */
  teardown?(): Promise<void>;
}

/** What one test runs on. */
export interface LockEnv {
  /** The store every client of the test shares (each through its own faulty link). */
  readonly store: KvStore;
  readonly clock: Clock;
  /** Hosts the fenced resource. */
  readonly system: ActorSystem;
  /** Let time pass (simulated or real) until `cond` holds; fails after `maxMs` of it. */
  until(cond: () => boolean, what: string, maxMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A backend on the real clock around one store shared by every test of the file (opened on first
 * use, closed after the last): what a store on a real server needs. Adding a backend is one line:
 * @example
 * lockScenarios(realTimeBackend('troupe Raft KV', () => openRaftKvStore(cluster), { ttlMs: 1_500 }));
 */
export function realTimeBackend(
  name: string,
  openStore: () => Promise<KvStore>,
  options: { ttlMs: number; sectionsPerClient?: number; marginMs?: number; testTimeoutMs?: number },
): LockBackend {
  let store: Promise<KvStore> | undefined;
  return {
    name,
    ttlMs: options.ttlMs,
    sectionsPerClient: options.sectionsPerClient ?? 100,
    marginMs: options.marginMs ?? 700,
    testTimeoutMs: options.testTimeoutMs ?? 60_000,
    async setup() {
      const kv = await (store ??= openStore());
      const clock = realClock();
      const system = createSystem({ cluster: 'test', node: 'n1', clock, logger: silentLogger() });
      return {
        store: kv,
        clock,
        system,
        until: (cond, what, maxMs) => waitFor(cond, { timeoutMs: maxMs, intervalMs: 2, message: what }),
        close: () => system.shutdown(),
      };
    },
    async teardown() {
      if (store) await (await store).close();
    },
  };
}

/** Let promise chains and in-process deliveries run (no time passes). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

/**
 * A backend on a simulated clock: every test gets a fresh clock and a store opened on it, and
 * `until` advances the clock 1 ms at a time, letting answers arrive in between. Timing bounds are
 * then exact (margin: a few ms), and the suite takes seconds, not TTLs of wall time.
 * @example
 * lockScenarios(simulatedTimeBackend('the memory store', async (clock) => createMemoryKvStore({ clock }), { ttlMs: 3_000 }));
 */
export function simulatedTimeBackend(
  name: string,
  openStore: (clock: ManualClock) => Promise<KvStore>,
  options: { ttlMs: number; sectionsPerClient?: number; marginMs?: number; testTimeoutMs?: number },
): LockBackend {
  return {
    name,
    ttlMs: options.ttlMs,
    sectionsPerClient: options.sectionsPerClient ?? 1_000,
    marginMs: options.marginMs ?? 10,
    testTimeoutMs: options.testTimeoutMs ?? 60_000,
    async setup() {
      const clock = simulatedClock(1_000_000);
      const store = await openStore(clock);
      const system = createSystem({ cluster: 'test', node: 'n1', clock, logger: silentLogger(), rng: createRng(7) });
      return {
        store,
        clock,
        system,
        async until(cond, what, maxMs) {
          const deadline = clock.now() + maxMs;
          for (;;) {
            await settle();
            if (cond()) return;
            if (clock.now() >= deadline) throw new Error(`${what}: not within ${maxMs} simulated ms`);
            clock.increment(1);
          }
        },
        async close() {
          await system.shutdown();
          await store.close();
        },
      };
    },
  };
}

const dec = (b: Uint8Array): { owner: string; leaseId: string } => JSON.parse(new TextDecoder().decode(b)) as { owner: string; leaseId: string };

export function lockScenarios(backend: LockBackend): void {
  describe(`distributed lock on ${backend.name}`, { timeout: backend.testTimeoutMs }, () => {
    const ttlMs = backend.ttlMs;
    const renewMs = ttlMs / 3;
    let env: LockEnv;
    let seq = 0;
    let name = '';
    const clients: LockClient[] = [];

    beforeEach(async () => {
      env = await backend.setup();
      name = `l${++seq}-${createRng(seq).hex(6)}`;
    });
    afterEach(async () => {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      await env.close();
    });
    afterAll(async () => {
      await backend.teardown?.();
    });

    function client(owner: string, extra: Partial<LockOptions> = {}): { lock: LockClient; link: FaultyStore } {
      const link = faultyStore(env.store);
      const lock = createLock(link, { clock: env.clock, owner, rng: createRng(clients.length + 1), ttlMs, ...extra });
      clients.push(lock);
      return { lock, link };
    }

    /** Starts `p` and returns a box that fills when it settles. */
    function track<T>(p: Promise<T>): { value?: T; error?: unknown; settledAtMs?: number; readonly settled: boolean } {
      const box: { value?: T; error?: unknown; settledAtMs?: number; settled: boolean } = { settled: false };
      p.then(
        (v) => Object.assign(box, { value: v, settled: true, settledAtMs: env.clock.now() }),
        (e: unknown) => Object.assign(box, { error: e, settled: true, settledAtMs: env.clock.now() }),
      );
      return box;
    }

    function spawnResource(): ActorRef {
      return env.system.spawn(FencedResource, { name: `res-${name}` }) as unknown as ActorRef;
    }

    it(`5 clients × ${backend.sectionsPerClient} critical sections append to a fenced list: none lost or duplicated, tokens strictly increase`, async () => {
      const resource = spawnResource();
      const n = backend.sectionsPerClient;
      let inside = 0;
      let maxInside = 0;
      let finished = 0;
      const failures: unknown[] = [];
      const grants = new Map<string, number>();
      const run = async (owner: string): Promise<void> => {
        const { lock } = client(owner);
        for (let k = 0; k < n; k++) {
          const lease = await lock.acquire(name, { waitMs: Infinity });
          inside++;
          maxInside = Math.max(maxInside, inside);
          grants.set(owner, (grants.get(owner) ?? 0) + 1);
          await fencedWrite(env.system, resource, lease.token, `${owner}-${k}`, { timeoutMs: 60_000 });
          inside--;
          await lease.release();
        }
      };
      for (const owner of ['c1', 'c2', 'c3', 'c4', 'c5']) {
        run(owner).then(() => finished++, (err: unknown) => { failures.push(err); finished++; });
      }
      await env.until(() => finished === 5, `all critical sections (${failures.length} failed)`, 5 * n * ttlMs);
      expect(failures).toEqual([]);
      expect(maxInside).toBe(1);
      const state = await readFenced(env.system, resource, { timeoutMs: 60_000 });
      expect(state.values).toHaveLength(5 * n);
      expect(new Set(state.values).size).toBe(5 * n);
      expect(state.rejected).toBe(0);
      for (let i = 1; i < state.tokens.length; i++) expect(state.tokens[i]!).toBeGreaterThan(state.tokens[i - 1]!);
      expect([...grants.values()]).toEqual([n, n, n, n, n]);
    });

    it('a holder paused past its TTL: another client acquires, and the woken holder\'s write is rejected by the resource', async () => {
      const resource = spawnResource();
      const paused = freezableClock(env.clock);
      const { lock: a } = client('a', { clock: paused });
      const { lock: b } = client('b');
      const leaseA = await a.acquire(name);
      let lostA: LockLostError | undefined;
      leaseA.onLost((err) => { lostA = err; });
      expect(await fencedWrite(env.system, resource, leaseA.token, 'a-1')).toBe(0);
      paused.freeze(); // e.g. a long GC pause, right after A checked it still holds the lock
      const expiresAtMs = leaseA.expiresAtMs;
      const gotB = track(b.acquire(name, { waitMs: Infinity }));
      await env.until(() => gotB.settled, 'B granted', 2 * ttlMs + backend.marginMs);
      const leaseB = gotB.value!;
      expect(gotB.settledAtMs!).toBeGreaterThanOrEqual(expiresAtMs);
      expect(leaseB.token).toBeGreaterThan(leaseA.token);
      await fencedWrite(env.system, resource, leaseB.token, 'b-1');
      paused.thaw(); // A wakes up and, believing it still holds the lock, writes
      const stale = await fencedWrite(env.system, resource, leaseA.token, 'a-2').catch((e: unknown) => e);
      expect(stale).toBeInstanceOf(FencingTokenRejectedError);
      expect((stale as FencingTokenRejectedError).fields()).toMatchObject({ token: leaseA.token, highest: leaseB.token });
      await env.until(() => lostA !== undefined, 'A told its lease is lost', ttlMs);
      expect(lostA).toBeInstanceOf(LockLostError);
      expect(leaseA.signal.aborted).toBe(true);
      await expect(leaseA.release()).rejects.toBeInstanceOf(LockLostError);
      expect(leaseB.status).toBe('held');
      expect((await readFenced(env.system, resource)).values).toEqual(['a-1', 'b-1']);
    });

    it('a killed holder: the lock is free no sooner than its TTL, no later than TTL + renew interval + margin', async () => {
      const dead = freezableClock(env.clock);
      const { lock: a } = client('a', { clock: dead });
      const { lock: b } = client('b');
      const leaseA = await a.acquire(name);
      const first = leaseA.expiresAtMs;
      await env.until(() => leaseA.expiresAtMs > first, 'A renewed its lease', ttlMs);
      dead.freeze(); // killed right after a renewal: no release, no more renewals
      const killedAtMs = env.clock.now();
      const expiresAtMs = leaseA.expiresAtMs;
      const gotB = track(b.acquire(name, { waitMs: Infinity }));
      await env.until(() => gotB.settled, 'B granted', ttlMs + renewMs + backend.marginMs + ttlMs);
      expect(gotB.value?.token).toBeGreaterThan(leaseA.token);
      expect(gotB.settledAtMs!).toBeGreaterThanOrEqual(expiresAtMs);
      expect(gotB.settledAtMs! - killedAtMs).toBeLessThanOrEqual(ttlMs + renewMs + backend.marginMs);
    });

    it('the reply to an acquire is lost: the client finds its lease by its lease id and holds it', async () => {
      const { lock: a, link } = client('a');
      const { lock: b } = client('b');
      link.mode = { loseCreateReply: '.holder', then: 'ok' };
      const leaseA = await a.acquire(name);
      const entry = await env.store.get(`locks.${name}.holder`);
      expect(entry && dec(entry.value).leaseId).toBe(leaseA.leaseId);
      expect(leaseA.token).toBe(entry!.revision);
      expect(link.calls.get('create:.holder')).toBe(1); // reconciled by reading, not by creating again
      expect(link.calls.get('update:.holder')).toBeUndefined();
      const gotB = track(b.acquire(name, { waitMs: Infinity }));
      await leaseA.release();
      await env.until(() => gotB.settled, 'B granted after A released', ttlMs);
      expect(gotB.value?.token).toBeGreaterThan(leaseA.token);
    });

    it('the reply to an acquire is lost and the client is cut off: it gives up, and the orphan lease expires (no lock held for ever)', async () => {
      const { lock: a, link } = client('a');
      const { lock: b } = client('b');
      link.mode = { loseCreateReply: '.holder', then: 'down' };
      const startedAtMs = env.clock.now();
      const gotA = track(a.acquire(name, { waitMs: ttlMs / 2 }));
      await env.until(() => gotA.settled, 'A gives up', ttlMs + backend.marginMs);
      expect(gotA.error).toBeInstanceOf(LockTimeoutError);
      expect(await env.store.get(`locks.${name}.holder`)).toBeDefined(); // the orphan A never learnt of
      const gotB = track(b.acquire(name, { waitMs: Infinity }));
      await env.until(() => gotB.settled, 'B granted', 2 * ttlMs + renewMs + backend.marginMs);
      expect(gotB.value).toBeDefined();
      expect(gotB.settledAtMs! - startedAtMs).toBeGreaterThanOrEqual(ttlMs);
      expect(gotB.settledAtMs! - startedAtMs).toBeLessThanOrEqual(ttlMs + 2 * renewMs + backend.marginMs);
    });

    it('release by a non-owner fails and leaves the lock held', async () => {
      const { lock: a } = client('a');
      const { lock: b } = client('b');
      const leaseA = await a.acquire(name);
      const err = await b.release(name, leaseA.token).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotLockOwnerError);
      expect((err as NotLockOwnerError).fields()).toMatchObject({ lock: name, owner: 'b', holder: 'a' });
      await expect(a.release(name, leaseA.token + 1_000)).rejects.toBeInstanceOf(NotLockOwnerError); // not this lease
      const gotB = track(b.acquire(name, { waitMs: renewMs }));
      await env.until(() => gotB.settled, 'B times out', renewMs + backend.marginMs);
      expect(gotB.error).toBeInstanceOf(LockTimeoutError);
      expect(leaseA.status).toBe('held');
      expect(dec((await env.store.get(`locks.${name}.holder`))!.value).leaseId).toBe(leaseA.leaseId);
    });

    it('double release is idempotent', async () => {
      const { lock: a } = client('a');
      const { lock: b, link: bLink } = client('b');
      const lease = await a.acquire(name);
      await lease.release();
      await lease.release();
      await a.release(name, lease.token);
      expect(lease.status).toBe('released');
      const next = await b.acquire(name);
      expect(bLink.calls.get('create:.q')).toBeUndefined(); // the lock was free: b never had to queue
      expect(next.token).toBeGreaterThan(lease.token);
      await lease.release(); // still a no-op while someone else holds the lock
      expect(next.status).toBe('held');
    });

    it('waiters are served in FIFO order, and a release wakes only the first of them (no thundering herd)', async () => {
      const { lock: a } = client('a');
      const leaseA = await a.acquire(name);
      const order: string[] = [];
      const leases = new Map<string, Lease>();
      const links = new Map<string, FaultyStore>();
      for (const [i, owner] of ['b', 'c', 'd'].entries()) {
        const { lock, link } = client(owner);
        links.set(owner, link);
        void lock.acquire(name, { waitMs: Infinity }).then((l) => { order.push(owner); leases.set(owner, l); });
        let queued = 0;
        const check = (): boolean => queued === i + 1;
        await env.until(() => { void env.store.keys(`locks.${name}.q.>`).then((k) => { queued = k.length; }, () => undefined); return check(); }, `${owner} queued`, ttlMs);
      }
      // writes that try to take the lock: a create of the holder key, or an update of its release marker
      const creates = (o: string): number => (links.get(o)!.calls.get('create:.holder') ?? 0) + (links.get(o)!.calls.get('update:.holder') ?? 0);
      const before = { b: creates('b'), c: creates('c'), d: creates('d') };
      await leaseA.release();
      await env.until(() => order.length === 1, 'b granted', ttlMs);
      expect(order).toEqual(['b']);
      expect(creates('b')).toBe(before.b + 1);
      expect([creates('c'), creates('d')]).toEqual([before.c, before.d]); // nobody else tried
      await leases.get('b')!.release();
      await env.until(() => order.length === 2, 'c granted', ttlMs);
      await leases.get('c')!.release();
      await env.until(() => order.length === 3, 'd granted', ttlMs);
      expect(order).toEqual(['b', 'c', 'd']);
      expect(creates('d')).toBe(before.d + 1);
      const tokens = ['b', 'c', 'd'].map((o) => leases.get(o)!.token);
      expect([...tokens].sort((x, y) => x - y)).toEqual(tokens);
    });

    it('waitMs elapses with LockTimeoutError, an abort with AbortedError; neither leaves a place in the queue', async () => {
      const { lock: a } = client('a');
      const { lock: b } = client('b');
      await a.acquire(name);
      const startedAtMs = env.clock.now();
      const gotB = track(b.acquire(name, { waitMs: renewMs }));
      await env.until(() => gotB.settled, 'B times out', renewMs + backend.marginMs);
      expect(gotB.error).toBeInstanceOf(LockTimeoutError);
      expect(gotB.settledAtMs! - startedAtMs).toBeGreaterThanOrEqual(renewMs);
      const abort = new AbortController();
      const gotC = track(b.acquire(name, { signal: abort.signal, waitMs: Infinity }));
      let queued = -1;
      await env.until(() => { void env.store.keys(`locks.${name}.q.>`).then((k) => { queued = k.length; }, () => undefined); return queued === 1; }, 'C queued', ttlMs);
      abort.abort(new Error('user gave up'));
      await env.until(() => gotC.settled, 'C aborted', backend.marginMs + renewMs);
      expect(gotC.error).toBeInstanceOf(AbortedError);
      await env.until(() => { void env.store.keys(`locks.${name}.q.>`).then((k) => { queued = k.length; }, () => undefined); return queued === 0; }, 'queue empty', ttlMs);
    });

    it('a holder whose store stops answering is told its lease is lost when it expires, not when a call times out', async () => {
      const { lock: a, link } = client('a');
      const leaseA = await a.acquire(name);
      let lostAtMs: number | undefined;
      leaseA.onLost(() => { lostAtMs = env.clock.now(); });
      link.mode = 'hang';
      const expiresAtMs = leaseA.expiresAtMs;
      await env.until(() => lostAtMs !== undefined, 'A told', ttlMs + backend.marginMs);
      expect(lostAtMs!).toBeGreaterThanOrEqual(expiresAtMs);
      expect(lostAtMs! - expiresAtMs).toBeLessThanOrEqual(backend.marginMs);
      expect(leaseA.signal.aborted).toBe(true);
    });

    it('a holder cut off from the store is told its lease is lost by the time it expires', async () => {
      const { lock: a, link } = client('a');
      const leaseA = await a.acquire(name);
      let lostAtMs: number | undefined;
      leaseA.onLost(() => { lostAtMs = env.clock.now(); });
      link.mode = 'down';
      const expiresAtMs = leaseA.expiresAtMs;
      await env.until(() => lostAtMs !== undefined, 'A told', ttlMs + backend.marginMs);
      expect(lostAtMs!).toBeGreaterThanOrEqual(expiresAtMs);
      expect(lostAtMs!).toBeLessThanOrEqual(expiresAtMs + renewMs + backend.marginMs);
      expect(leaseA.status).toBe('lost');
    });
  });
}
