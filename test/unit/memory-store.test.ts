import { describe, expect, it } from 'vitest';
import { simulatedClock } from '../../framework/clock.ts';
import { isKvConflictError, isStoreUnavailableError, StoreUnavailableError } from '../../framework/errors.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import type { KvEntry } from '../../framework/store/store.ts';
import { storeConformance } from '../helpers/store-conformance.ts';
import { waitFor } from '../helpers/wait-for.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

storeConformance('memory', async () => {
  const clock = simulatedClock(1_000);
  const TTL_MS = 1_000;
  return {
    open: async (opts) => createMemoryKvStore({ clock, ...(opts?.history !== undefined ? { history: opts.history } : {}) }),
    openWithTtl: async () => ({ store: createMemoryKvStore({ clock, name: 'ttl' }), ttlMs: TTL_MS }),
    elapse: async (ms, condition) => {
      clock.increment(ms);
      await waitFor(condition, { timeoutMs: 1_000 });
    },
    propertyRuns: 100,
    cleanup: async () => undefined,
  };
});

describe('memory store specifics', () => {
  it('setAvailable(false) makes every call fail with a retryable StoreUnavailableError until it is set back', async () => {
    const store = createMemoryKvStore({ name: 'breakers' });
    const rev = await store.put('b', enc('closed'));
    const seen: KvEntry[] = [];
    await store.watch('b', (e) => seen.push(e));
    await waitFor(() => seen.length === 1);
    store.setAvailable(false);
    for (const call of [
      () => store.get('b'),
      () => store.create('c', enc('1')),
      () => store.update('b', enc('open'), rev),
      () => store.put('b', enc('open')),
      () => store.delete('b'),
      () => store.keys(),
      () => store.watch('b', () => undefined),
    ]) {
      const err = await call().then(() => expect.fail('expected a rejection'), (e: unknown) => e);
      expect(isStoreUnavailableError(err)).toBe(true);
      expect((err as StoreUnavailableError).retryable).toBe(true);
      expect((err as StoreUnavailableError).store).toBe('memory:breakers');
      expect((err as StoreUnavailableError).code).toBe('STORE_UNAVAILABLE');
    }
    store.setAvailable(true);
    expect(dec((await store.get('b'))!.value)).toBe('closed');
    await store.update('b', enc('open'), rev);
    await waitFor(() => seen.length === 2);
    expect(seen.map((e) => dec(e.value))).toEqual(['closed', 'open']);
    await store.close();
  });

  it('every write renews a key TTL (a lease): update keeps it alive, silence lets it lapse', async () => {
    const clock = simulatedClock();
    const store = createMemoryKvStore({ clock });
    let rev = await store.create('leader', enc('a'), { ttlMs: 1_000 });
    for (let i = 0; i < 5; i++) {
      clock.increment(900);
      rev = await store.update('leader', enc('a'), rev);
    }
    expect(dec((await store.get('leader'))!.value)).toBe('a');
    clock.increment(999);
    expect(await store.get('leader')).toBeDefined();
    clock.increment(1);
    expect(await store.get('leader')).toBeUndefined();
    // an expired lease can be taken, and the stale holder's renewal loses
    const taken = await store.create('leader', enc('b'), { ttlMs: 1_000 });
    await expect(store.update('leader', enc('a'), rev)).rejects.toSatisfy(isKvConflictError);
    expect((await store.get('leader'))!.revision).toBe(taken);
    await store.close();
  });

  it('expiry is not delivered to watchers (as on NATS KV before 2.11)', async () => {
    const clock = simulatedClock();
    const store = createMemoryKvStore({ clock });
    const seen: string[] = [];
    await store.watch('>', (e) => seen.push(`${e.operation}:${e.key}`));
    await store.create('t', enc('1'), { ttlMs: 10 });
    await waitFor(() => seen.length === 1);
    clock.increment(10);
    expect(await store.get('t')).toBeUndefined();
    await store.put('barrier', enc('x'));
    await waitFor(() => seen.length === 2);
    expect(seen).toEqual(['put:t', 'put:barrier']);
    await store.close();
  });

  it('the store-wide ttlMs applies to keys written without one, like a NATS KV bucket max age', async () => {
    const clock = simulatedClock();
    const store = createMemoryKvStore({ clock, ttlMs: 100 });
    await store.put('p', enc('1'));
    await store.create('c', enc('1'));
    await store.create('long', enc('1'), { ttlMs: 1_000 });
    clock.increment(100);
    expect(await store.keys()).toEqual(['long']);
    await store.close();
  });

  it('a key deleted and written again starts with the default TTL', async () => {
    const clock = simulatedClock();
    const store = createMemoryKvStore({ clock });
    await store.create('k', enc('1'), { ttlMs: 10 });
    await store.delete('k');
    await store.put('k', enc('2'));
    clock.increment(1_000);
    expect(dec((await store.get('k'))!.value)).toBe('2');
    await store.close();
  });

  it('history keeps at most `history` revisions per key, deletes included', async () => {
    const store = createMemoryKvStore({ history: 2 });
    for (const v of ['1', '2', '3']) await store.put('h', enc(v));
    await store.delete('h');
    const seen: string[] = [];
    await store.watch('h', (e) => seen.push(`${e.operation}:${dec(e.value)}`), { includeHistory: true });
    await store.put('h', enc('4'));
    await waitFor(() => seen.length === 3);
    // '3' then the delete are retained; the delete is delivered because '3' was shown first
    expect(seen).toEqual(['put:3', 'delete:', 'put:4']);
    await store.close();
  });

  it('createdMs comes from the injected clock', async () => {
    const clock = simulatedClock(42_000);
    const store = createMemoryKvStore({ clock });
    await store.put('t', enc('1'));
    expect((await store.get('t'))!.createdMs).toBe(42_000);
    await store.close();
  });

  it('stores are isolated from each other', async () => {
    const a = createMemoryKvStore();
    const b = createMemoryKvStore();
    await a.create('k', enc('a'));
    await b.create('k', enc('b'));
    expect(dec((await a.get('k'))!.value)).toBe('a');
    expect(await b.keys()).toEqual(['k']);
    await Promise.all([a.close(), b.close()]);
  });

  it('rejects bad options with a RangeError naming the option', () => {
    expect(() => createMemoryKvStore({ history: 0 })).toThrow(/option history/);
    expect(() => createMemoryKvStore({ history: 65 })).toThrow(RangeError);
    expect(() => createMemoryKvStore({ ttlMs: -1 })).toThrow(/option ttlMs/);
    expect(() => createMemoryKvStore({ name: '' })).toThrow(/option name/);
  });

  it('rejects a bad create ttlMs with a RangeError', async () => {
    const store = createMemoryKvStore();
    await expect(store.create('k', enc('1'), { ttlMs: 0 })).rejects.toThrow(RangeError);
    await expect(store.create('k', enc('1'), { ttlMs: Number.POSITIVE_INFINITY })).rejects.toThrow(/ttlMs/);
    await store.close();
  });
});
