/**
 * The one conformance suite every KvStore implementation must pass: what NATS JetStream KV does,
 * the memory store does the same way (and later the Raft KV). Synchronisation is by condition with
 * a deadline (`waitFor`), and "nothing else arrives" is checked with a barrier write that must be
 * delivered after the entries that must not.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidNameError, isKvConflictError, isStoreUnavailableError, KvConflictError } from '../../framework/errors.ts';
import type { KvEntry, KvStore, KvWatch, KvWatchOptions } from '../../framework/store/store.ts';
import { waitFor } from './wait-for.ts';

/** What an implementation under test provides. */
export interface StoreConformanceEnv {
  /** A fresh store with an empty keyspace of its own, retaining `history` revisions per key (default 1). */
  open(opts?: { history?: number }): Promise<KvStore>;
  /** A fresh store whose keys expire `ttlMs` after their last write; `create(…, { ttlMs })` must be accepted. */
  openWithTtl(): Promise<{ store: KvStore; ttlMs: number }>;
  /** Let `ms` pass for the stores, resolving once `condition` holds (advance a simulated clock, or wait with a deadline). */
  elapse(ms: number, condition: () => Promise<boolean>): Promise<void>;
  /** fast-check runs of each concurrency property. */
  propertyRuns: number;
  cleanup(): Promise<void>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  return expect.fail('expected the promise to reject');
}

/** Records what a watch delivers. */
interface Recorder {
  readonly entries: KvEntry[];
  readonly errors: Error[];
  readonly watch: KvWatch;
  /** `put:key=value` / `delete:key`, in delivery order. */
  lines(): string[];
  /** Waits until `n` entries have arrived. */
  waitForCount(n: number): Promise<void>;
}

async function record(store: KvStore, pattern: string, opts?: KvWatchOptions): Promise<Recorder> {
  const entries: KvEntry[] = [];
  const errors: Error[] = [];
  const watch = await store.watch(pattern, (e) => entries.push(e), { ...opts, onError: (e) => errors.push(e) });
  const lines = (): string[] => entries.map((e) => (e.operation === 'put' ? `put:${e.key}=${dec(e.value)}` : `delete:${e.key}`));
  return {
    entries,
    errors,
    watch,
    lines,
    waitForCount: (n) => waitFor(() => entries.length >= n, { timeoutMs: 10_000, message: () => `${n} watch entries (got ${JSON.stringify(lines())})` }),
  };
}

const INVALID_KEYS = ['', '.a', 'a.', 'a..b', 'a b', 'a*', 'a.>', '>', 'a\u00fc', 'a:b', 'a\nb'];
const INVALID_PATTERNS = ['', '.a', 'a.', 'a..b', 'a.*', '*', 'a>', 'a.>.b', '.>', 'a b.>'];

export function storeConformance(name: string, factory: () => Promise<StoreConformanceEnv>): void {
  describe(`KvStore conformance: ${name}`, () => {
    let env: StoreConformanceEnv | undefined;
    const opened: KvStore[] = [];
    let seq = 0;

    beforeAll(async () => {
      env = await factory();
    });
    afterEach(async () => {
      await Promise.allSettled(opened.splice(0).map((s) => s.close()));
    });
    afterAll(async () => {
      await env?.cleanup();
    });

    const theEnv = (): StoreConformanceEnv => {
      if (!env) throw new Error('store conformance env did not start');
      return env;
    };
    const open = async (opts?: { history?: number }): Promise<KvStore> => {
      const s = await theEnv().open(opts);
      opened.push(s);
      return s;
    };
    /** A key no other test uses. */
    const fresh = (prefix = 'k'): string => `${prefix}${++seq}`;

    describe('get / create / update', () => {
      it('create then get returns the value, its revision and operation put', async () => {
        const store = await open();
        const rev = await store.create('greeting', enc('hello'));
        expect(Number.isSafeInteger(rev) && rev > 0).toBe(true);
        const e = await store.get('greeting');
        expect(e).toBeDefined();
        expect(e!.key).toBe('greeting');
        expect(dec(e!.value)).toBe('hello');
        expect(e!.revision).toBe(rev);
        expect(e!.operation).toBe('put');
        expect(typeof e!.createdMs === 'number' || e!.createdMs === undefined).toBe(true);
      });

      it('get of a missing key resolves to undefined', async () => {
        const store = await open();
        expect(await store.get('missing')).toBeUndefined();
      });

      it('create on an existing key fails with a non-retryable KvConflictError carrying the current revision', async () => {
        const store = await open();
        const rev = await store.create('a', enc('1'));
        const err = await rejection(store.create('a', enc('2')));
        expect(isKvConflictError(err)).toBe(true);
        const c = err as KvConflictError;
        expect(c.key).toBe('a');
        expect(c.expectedRevision).toBeUndefined();
        expect(c.actualRevision).toBe(rev);
        expect(c.retryable).toBe(false);
        expect(c.code).toBe('KV_CONFLICT');
        expect(dec((await store.get('a'))!.value)).toBe('1');
      });

      it('update with the current revision succeeds and returns a larger revision', async () => {
        const store = await open();
        const r1 = await store.create('u', enc('1'));
        const r2 = await store.update('u', enc('2'), r1);
        expect(r2).toBeGreaterThan(r1);
        const e = await store.get('u');
        expect(dec(e!.value)).toBe('2');
        expect(e!.revision).toBe(r2);
      });

      it('update with a stale revision fails with KvConflictError and changes nothing', async () => {
        const store = await open();
        const r1 = await store.create('u', enc('1'));
        const r2 = await store.update('u', enc('2'), r1);
        const err = await rejection(store.update('u', enc('3'), r1));
        expect(isKvConflictError(err)).toBe(true);
        expect((err as KvConflictError).expectedRevision).toBe(r1);
        expect((err as KvConflictError).actualRevision).toBe(r2);
        const e = await store.get('u');
        expect(dec(e!.value)).toBe('2');
        expect(e!.revision).toBe(r2);
      });

      it('update of a missing key fails with KvConflictError', async () => {
        const store = await open();
        const other = await store.put('other', enc('x'));
        const err = await rejection(store.update('nope', enc('1'), other));
        expect(isKvConflictError(err)).toBe(true);
        expect((err as KvConflictError).actualRevision).toBeUndefined();
        expect(await store.get('nope')).toBeUndefined();
      });

      it('values are binary-safe, and the store keeps its own copy', async () => {
        const store = await open();
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        await store.put('bin', bytes);
        bytes[0] = 99;
        const e = await store.get('bin');
        expect(Array.from(e!.value)).toEqual(Array.from({ length: 256 }, (_, i) => i));
        await store.put('empty', new Uint8Array(0));
        const empty = await store.get('empty');
        expect(empty?.operation).toBe('put');
        expect(empty?.value.length).toBe(0);
      });
    });

    describe('put / delete', () => {
      it('put writes unconditionally and returns increasing revisions', async () => {
        const store = await open();
        const r1 = await store.put('p', enc('1'));
        const r2 = await store.put('p', enc('2'));
        expect(r2).toBeGreaterThan(r1);
        expect(dec((await store.get('p'))!.value)).toBe('2');
        expect((await store.get('p'))!.revision).toBe(r2);
      });

      it('delete makes the key read as missing; deleting again or deleting a missing key is a no-op', async () => {
        const store = await open();
        await store.create('d', enc('1'));
        await store.delete('d');
        expect(await store.get('d')).toBeUndefined();
        await store.delete('d');
        await store.delete('never-existed');
        expect(await store.get('d')).toBeUndefined();
        expect(await store.get('never-existed')).toBeUndefined();
      });

      it('create after delete succeeds with a larger revision', async () => {
        const store = await open();
        const r1 = await store.create('c', enc('1'));
        await store.delete('c');
        const r2 = await store.create('c', enc('2'));
        expect(r2).toBeGreaterThan(r1);
        const e = await store.get('c');
        expect(dec(e!.value)).toBe('2');
        expect(e!.revision).toBe(r2);
        await expect(store.create('c', enc('3'))).rejects.toSatisfy(isKvConflictError);
      });

      it('delete with a wrong expectedRevision fails with KvConflictError and keeps the value', async () => {
        const store = await open();
        const r1 = await store.create('d', enc('1'));
        const r2 = await store.update('d', enc('2'), r1);
        const err = await rejection(store.delete('d', { expectedRevision: r1 }));
        expect(isKvConflictError(err)).toBe(true);
        expect((err as KvConflictError).expectedRevision).toBe(r1);
        expect((err as KvConflictError).actualRevision).toBe(r2);
        expect(dec((await store.get('d'))!.value)).toBe('2');
        await store.delete('d', { expectedRevision: r2 });
        expect(await store.get('d')).toBeUndefined();
      });

      it('delete with an expectedRevision of a missing key fails with KvConflictError', async () => {
        const store = await open();
        const other = await store.put('other', enc('x'));
        await expect(store.delete('missing', { expectedRevision: other })).rejects.toSatisfy(isKvConflictError);
      });

      it('revisions are positive integers increasing across keys and operations', async () => {
        const store = await open();
        const revs = [
          await store.create('r.a', enc('1')),
          await store.put('r.b', enc('1')),
          await store.put('r.a', enc('2')),
        ];
        revs.push(await store.update('r.b', enc('2'), revs[1]!));
        await store.delete('r.a');
        revs.push(await store.create('r.a', enc('3')));
        for (const r of revs) expect(Number.isSafeInteger(r) && r > 0).toBe(true);
        for (let i = 1; i < revs.length; i++) expect(revs[i]!).toBeGreaterThan(revs[i - 1]!);
      });
    });

    describe('keys', () => {
      it('lists live keys matching a pattern, sorted, without deleted ones', async () => {
        const store = await open();
        for (const k of ['a.2', 'a.1', 'a.x.y', 'a', 'ab.1', 'b.1']) await store.put(k, enc(k));
        await store.put('a.gone', enc('x'));
        await store.delete('a.gone');
        expect(await store.keys('a.>')).toEqual(['a.1', 'a.2', 'a.x.y']);
        expect(await store.keys()).toEqual(['a', 'a.1', 'a.2', 'a.x.y', 'ab.1', 'b.1']);
        expect(await store.keys('>')).toEqual(['a', 'a.1', 'a.2', 'a.x.y', 'ab.1', 'b.1']);
        expect(await store.keys('a')).toEqual(['a']);
        expect(await store.keys('zzz.>')).toEqual([]);
      });

      it('an empty store has no keys', async () => {
        const store = await open();
        expect(await store.keys()).toEqual([]);
      });
    });

    describe('watch', () => {
      it('delivers the current value first, then updates, deletes as operation delete, and re-creation', async () => {
        const store = await open();
        const r1 = await store.create('w', enc('1'));
        const rec = await record(store, 'w');
        await rec.waitForCount(1);
        expect(rec.entries[0]).toMatchObject({ key: 'w', revision: r1, operation: 'put' });
        const r2 = await store.update('w', enc('2'), r1);
        await store.delete('w');
        const r4 = await store.create('w', enc('3'));
        await rec.waitForCount(4);
        expect(rec.lines()).toEqual(['put:w=1', 'put:w=2', 'delete:w', 'put:w=3']);
        expect(rec.entries[1]!.revision).toBe(r2);
        expect(rec.entries[2]!.value.length).toBe(0);
        expect(rec.entries[2]!.revision).toBeGreaterThan(r2);
        expect(rec.entries[3]!.revision).toBe(r4);
        expect(rec.errors).toEqual([]);
      });

      it('a watch of a missing key delivers only changes', async () => {
        const store = await open();
        const rec = await record(store, 'later');
        await store.put('later', enc('1'));
        await rec.waitForCount(1);
        expect(rec.lines()).toEqual(['put:later=1']);
      });

      it('a prefix watch a.> delivers current values of a.* in revision order, then their changes, and nothing else', async () => {
        const store = await open();
        await store.put('a.2', enc('x'));
        await store.put('a.1', enc('y'));
        await store.put('a', enc('not-under-a.'));
        await store.put('ab.1', enc('no'));
        await store.put('a.gone', enc('z'));
        await store.delete('a.gone');
        const rec = await record(store, 'a.>');
        await rec.waitForCount(2);
        expect(rec.lines()).toEqual(['put:a.2=x', 'put:a.1=y']);
        await store.put('b.1', enc('no'));
        await store.put('a', enc('no'));
        await store.put('a.1', enc('y2'));
        await store.delete('a.2');
        await store.delete('a.never');
        await store.put('a.deep.er', enc('d'));
        await store.put('a.barrier', enc('end'));
        await rec.waitForCount(6);
        expect(rec.lines()).toEqual(['put:a.2=x', 'put:a.1=y', 'put:a.1=y2', 'delete:a.2', 'put:a.deep.er=d', 'put:a.barrier=end']);
        const revs = rec.entries.map((e) => e.revision);
        expect([...revs].sort((x, y) => x - y)).toEqual(revs);
      });

      it('includeHistory replays every retained revision, deletes included', async () => {
        const store = await open({ history: 5 });
        await store.put('h', enc('1'));
        await store.put('h', enc('2'));
        await store.delete('h');
        await store.put('h', enc('3'));
        await store.put('other', enc('x'));
        const rec = await record(store, 'h', { includeHistory: true });
        await rec.waitForCount(4);
        await store.put('h', enc('4'));
        await rec.waitForCount(5);
        expect(rec.lines()).toEqual(['put:h=1', 'put:h=2', 'delete:h', 'put:h=3', 'put:h=4']);
      });

      it('entries arrive asynchronously, never inside the write call', async () => {
        const store = await open();
        const rec = await record(store, 'async');
        const writing = store.put('async', enc('1'));
        expect(rec.entries.length).toBe(0);
        await writing;
        await rec.waitForCount(1);
      });

      it('stop ends delivery: a later write reaches another watch but not the stopped one', async () => {
        const store = await open();
        const stopped = await record(store, 's');
        const live = await record(store, 's');
        await store.put('s', enc('1'));
        await stopped.waitForCount(1);
        await live.waitForCount(1);
        stopped.watch.stop();
        stopped.watch.stop();
        await store.put('s', enc('2'));
        await live.waitForCount(2);
        expect(stopped.lines()).toEqual(['put:s=1']);
      });

      it('an exception in onEntry goes to onError and delivery continues', async () => {
        const store = await open();
        const seen: string[] = [];
        const errors: Error[] = [];
        await store.watch(
          'boom',
          (e) => {
            seen.push(dec(e.value));
            if (dec(e.value) === '1') throw new Error('handler failed');
          },
          { onError: (err) => errors.push(err) },
        );
        await store.put('boom', enc('1'));
        await store.put('boom', enc('2'));
        await waitFor(() => seen.length === 2, { timeoutMs: 10_000, message: () => `2 entries (got ${seen.join(',')})` });
        expect(seen).toEqual(['1', '2']);
        expect(errors.map((e) => e.message)).toEqual(['handler failed']);
      });
    });

    describe('concurrency', () => {
      it('two concurrent updates with the same expected revision: exactly one wins', async () => {
        const store = await open();
        const r1 = await store.create('race', enc('0'));
        const results = await Promise.allSettled([store.update('race', enc('a'), r1), store.update('race', enc('b'), r1)]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won.length).toBe(1);
        expect(lost.length).toBe(1);
        expect(isKvConflictError(lost[0]!.reason)).toBe(true);
        const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
        const e = await store.get('race');
        expect(dec(e!.value)).toBe(winner);
        expect(e!.revision).toBe((won[0] as PromiseFulfilledResult<number>).value);
      });

      it('concurrent creates of one key: exactly one wins', async () => {
        const store = await open();
        const results = await Promise.allSettled([1, 2, 3, 4].map((i) => store.create('once', enc(String(i)))));
        expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
        for (const r of results) if (r.status === 'rejected') expect(isKvConflictError(r.reason)).toBe(true);
      });

      it('property: of k updates racing from one revision, in any interleaving, exactly one wins', async () => {
        const store = await open();
        await fc.assert(
          fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 5 }), async (s, k) => {
            const key = fresh('cas');
            const r0 = await store.create(key, enc('init'));
            const attempts = Array.from({ length: k }, (_, i) =>
              s.schedule(Promise.resolve(`update#${i}`)).then(() => store.update(key, enc(`w${i}`), r0)),
            );
            const results = await s.waitFor(Promise.allSettled(attempts));
            const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, rev: r.value }] : []));
            expect(won.length).toBe(1);
            for (const r of results) {
              if (r.status === 'rejected') {
                expect(isKvConflictError(r.reason)).toBe(true);
                expect((r.reason as KvConflictError).expectedRevision).toBe(r0);
                expect((r.reason as KvConflictError).actualRevision).toBe(won[0]!.rev);
              }
            }
            const e = await store.get(key);
            expect(dec(e!.value)).toBe(`w${won[0]!.i}`);
            expect(e!.revision).toBe(won[0]!.rev);
          }),
          { numRuns: theEnv().propertyRuns },
        );
      });

      it('property: read-modify-write counters with CAS retries lose no increment under any interleaving', async () => {
        const store = await open();
        await fc.assert(
          fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 3 }), async (s, clients, each) => {
            const key = fresh('ctr');
            await store.create(key, enc('0'));
            const step = <T>(label: string, f: () => Promise<T>): Promise<T> => s.schedule(Promise.resolve(label)).then(f);
            const won: number[] = [];
            const client = async (c: number): Promise<void> => {
              for (let i = 0; i < each; i++) {
                for (;;) {
                  const e = await step(`get#${c}`, () => store.get(key));
                  try {
                    won.push(await step(`update#${c}`, () => store.update(key, enc(String(Number(dec(e!.value)) + 1)), e!.revision)));
                    break;
                  } catch (err) {
                    if (!isKvConflictError(err)) throw err;
                  }
                }
              }
            };
            await s.waitFor(Promise.all(Array.from({ length: clients }, (_, c) => client(c))));
            const final = await store.get(key);
            expect(Number(dec(final!.value))).toBe(clients * each);
            expect(new Set(won).size).toBe(won.length);
            expect(final!.revision).toBe(Math.max(...won));
          }),
          { numRuns: theEnv().propertyRuns },
        );
      });
    });

    describe('validation', () => {
      it('invalid keys are rejected with InvalidNameError by every operation', async () => {
        const store = await open();
        const ok = await store.put('valid', enc('1'));
        for (const key of INVALID_KEYS) {
          for (const call of [
            () => store.get(key),
            () => store.create(key, enc('x')),
            () => store.update(key, enc('x'), ok),
            () => store.put(key, enc('x')),
            () => store.delete(key),
          ]) {
            const err = await rejection(call());
            expect(isInvalidNameError(err), `key ${JSON.stringify(key)}: ${String(err)}`).toBe(true);
          }
        }
      });

      it('invalid watch and keys patterns are rejected with InvalidNameError', async () => {
        const store = await open();
        for (const pattern of INVALID_PATTERNS) {
          expect(isInvalidNameError(await rejection(store.watch(pattern, () => undefined))), pattern).toBe(true);
          expect(isInvalidNameError(await rejection(store.keys(pattern))), pattern).toBe(true);
        }
      });

      it('keys may use - / _ = . and mixed case', async () => {
        const store = await open();
        const key = 'Svc-1/shard_2=A.b.C';
        await store.create(key, enc('ok'));
        expect(dec((await store.get(key))!.value)).toBe('ok');
        expect(await store.keys('Svc-1/shard_2=A.>')).toEqual([key]);
      });

      it('a revision that is not a positive integer is a RangeError', async () => {
        const store = await open();
        await store.put('v', enc('1'));
        for (const bad of [0, -1, 1.5, Number.NaN]) {
          expect(await rejection(store.update('v', enc('2'), bad))).toBeInstanceOf(RangeError);
          expect(await rejection(store.delete('v', { expectedRevision: bad }))).toBeInstanceOf(RangeError);
        }
        expect(dec((await store.get('v'))!.value)).toBe('1');
      });
    });

    describe('ttl', () => {
      it('a key created with ttlMs disappears after it, and can then be created again', async () => {
        const { store, ttlMs } = await theEnv().openWithTtl();
        opened.push(store);
        await store.create('lease', enc('holder-a'), { ttlMs });
        expect(dec((await store.get('lease'))!.value)).toBe('holder-a');
        await expect(store.create('lease', enc('holder-b'), { ttlMs })).rejects.toSatisfy(isKvConflictError);
        await theEnv().elapse(ttlMs, async () => (await store.get('lease')) === undefined);
        expect(await store.keys()).toEqual([]);
        await store.create('lease', enc('holder-b'), { ttlMs });
        expect(dec((await store.get('lease'))!.value)).toBe('holder-b');
      });
    });

    describe('close', () => {
      it('after close every call fails with a non-retryable StoreUnavailableError and watches stop; close is idempotent', async () => {
        const store = await open();
        await store.put('x', enc('1'));
        const rec = await record(store, 'x');
        await rec.waitForCount(1);
        await store.close();
        await store.close();
        for (const call of [
          () => store.get('x'),
          () => store.create('y', enc('1')),
          () => store.update('x', enc('2'), 1),
          () => store.put('x', enc('2')),
          () => store.delete('x'),
          () => store.keys(),
          () => store.watch('x', () => undefined),
        ]) {
          const err = await rejection(call());
          expect(isStoreUnavailableError(err), String(err)).toBe(true);
          expect((err as { retryable: boolean }).retryable).toBe(false);
        }
        expect(rec.lines()).toEqual(['put:x=1']);
      });
    });
  });
}
