import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { isKvConflictError, isStoreUnavailableError, StoreUnavailableError } from '../../framework/errors.ts';
import { createNatsKvStore } from '../../framework/store/nats-kv.ts';
import type { NatsKvStoreOptions } from '../../framework/store/nats-kv.ts';
import type { KvEntry, KvStore } from '../../framework/store/store.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { storeConformance } from '../helpers/store-conformance.ts';
import { waitFor, eventually as retryWhileUnavailable } from '../helpers/wait-for.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/**
 * Retries `fn` while it fails with StoreUnavailableError (what a caller does during a failover),
 * until it succeeds or the deadline passes.
 */
const eventually = <T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> =>
  retryWhileUnavailable(what, fn, { timeoutMs, transient: isStoreUnavailableError });

/** Resolves to the rejection of `p` and how long it took, or fails the test when `p` resolves. */
async function timedRejection(p: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const start = performance.now();
  try {
    await p;
  } catch (err) {
    return { err, ms: performance.now() - start };
  }
  return expect.fail('expected the call to fail');
}

describe.skipIf(!requireNatsServer())('NATS KV store on a real nats-server', () => {
  const servers = natsServerScope();
  const opened: KvStore[] = [];
  let bucketSeq = 0;
  const bucket = (prefix = 'b'): string => `${prefix}${++bucketSeq}`;
  afterAll(async () => {
    await Promise.allSettled(opened.splice(0).map((s) => s.close()));
    await servers.stopAll();
  });
  const open = async (options: NatsKvStoreOptions): Promise<KvStore> => {
    const s = await createNatsKvStore({ reconnectTimeWaitMs: 50, ...options });
    opened.push(s);
    return s;
  };

  storeConformance('nats-kv', async () => {
    const srv = await servers.start({ jetstream: true });
    const TTL_MS = 1_000;
    return {
      open: (opts) => createNatsKvStore({ servers: srv.url, bucket: bucket('conf'), history: opts?.history ?? 1, storage: 'memory' }),
      openWithTtl: async () => ({ store: await createNatsKvStore({ servers: srv.url, bucket: bucket('ttl'), ttlMs: TTL_MS }), ttlMs: TTL_MS }),
      // nats-server removes aged messages on its own schedule: wait for the condition, with a deadline.
      elapse: (ms, condition) => waitFor(condition, { timeoutMs: ms * 10, intervalMs: 50, message: 'the TTL to lapse' }),
      propertyRuns: 10,
      cleanup: () => srv.stop(),
    };
  });

  describe('TTL is the bucket max age (nats-server < 2.11)', () => {
    it('create(…, { ttlMs }) is accepted only when it equals the bucket ttlMs', async () => {
      const srv = await servers.start({ jetstream: true });
      const noTtl = await open({ servers: srv.url, bucket: bucket() });
      await expect(noTtl.create('k', enc('1'), { ttlMs: 1_000 })).rejects.toThrow(/has no TTL/);
      expect(await noTtl.get('k')).toBeUndefined();
      const withTtl = await open({ servers: srv.url, bucket: bucket(), ttlMs: 60_000 });
      await expect(withTtl.create('k', enc('1'), { ttlMs: 1_000 })).rejects.toThrow(RangeError);
      await withTtl.create('k', enc('1'), { ttlMs: 60_000 });
      await withTtl.create('k2', enc('1'));
    });

    it('opening an existing bucket with contradicting settings fails; without them it adopts the bucket', async () => {
      const srv = await servers.start({ jetstream: true });
      const name = bucket();
      const first = await open({ servers: srv.url, bucket: name, ttlMs: 60_000, history: 3 });
      await first.put('shared', enc('1'));
      await expect(createNatsKvStore({ servers: srv.url, bucket: name, ttlMs: 1_000 })).rejects.toThrow(/option ttlMs is 1000 but bucket/);
      await expect(createNatsKvStore({ servers: srv.url, bucket: name, history: 1 })).rejects.toThrow(/option history/);
      const second = await open({ servers: srv.url, bucket: name });
      expect(dec((await second.get('shared'))!.value)).toBe('1');
      await second.create('lease', enc('x'), { ttlMs: 60_000 }); // the adopted bucket's TTL
    });
  });

  describe('options and connection failures', () => {
    it('rejects bad options with a RangeError naming the option, and bad bucket names', async () => {
      await expect(createNatsKvStore({ servers: 'nats://127.0.0.1:1', bucket: 'b', replicas: 0 })).rejects.toThrow(/option replicas/);
      await expect(createNatsKvStore({ servers: 'nats://127.0.0.1:1', bucket: 'b', history: 65 })).rejects.toThrow(/option history/);
      await expect(createNatsKvStore({ servers: 'nats://127.0.0.1:1', bucket: 'b', timeoutMs: 0 })).rejects.toThrow(/option timeoutMs/);
      await expect(createNatsKvStore({ servers: [], bucket: 'b' })).rejects.toThrow(/option servers/);
      await expect(createNatsKvStore({ servers: 'nats://127.0.0.1:1', bucket: 'a.b' })).rejects.toThrow(/bucket name/);
    });

    it('a server without JetStream fails with StoreUnavailableError', async () => {
      const srv = await servers.start();
      const err = await createNatsKvStore({ servers: srv.url, bucket: 'nojs', timeoutMs: 2_000 }).then(
        () => expect.fail('opened a bucket without JetStream'),
        (e: unknown) => e,
      );
      expect(isStoreUnavailableError(err), String(err)).toBe(true);
    });

    it('never echoes credentials: wrong password, or a password in the server URL', async () => {
      const password = 'S3cret-Pa55word!';
      const wrong = 'Wr0ng-Pa55word?';
      const srv = await servers.start({ jetstream: true, user: 'troupe', pass: password });
      const ok = await open({ servers: srv.url, user: 'troupe', pass: password, bucket: bucket() });
      await ok.put('k', enc('1'));
      for (const opts of [
        { servers: srv.url, user: 'troupe', pass: wrong },
        { servers: srv.url.replace('nats://', `nats://troupe:${wrong}@`) },
      ]) {
        const err = await createNatsKvStore({ ...opts, bucket: 'x', connectTimeoutMs: 5_000 }).then(
          () => expect.fail('connected with a wrong password'),
          (e: unknown) => e,
        );
        expect(isStoreUnavailableError(err), String(err)).toBe(true);
        const e = err as StoreUnavailableError;
        expect(e.retryable, e.message).toBe(false);
        const everything = `${e.message} ${e.stack} ${JSON.stringify(e.fields())} ${String((e.cause as Error | undefined)?.message)}`;
        expect(everything).not.toContain(wrong);
        expect(everything).not.toContain(password);
      }
    });
  });

  describe('server loss', () => {
    it('with the server killed every call fails with StoreUnavailableError within the timeout; after a restart the store and its watch recover', async () => {
      const srv = await servers.start({ jetstream: true });
      const TIMEOUT_MS = 1_000;
      const store = await open({ servers: srv.url, bucket: bucket(), timeoutMs: TIMEOUT_MS });
      const rev = await store.put('k', enc('before'));
      const seen: KvEntry[] = [];
      await store.watch('k', (e) => seen.push(e));
      await waitFor(() => seen.length === 1);

      await srv.kill();
      for (const call of [
        () => store.get('k'),
        () => store.create('new', enc('1')),
        () => store.update('k', enc('2'), rev),
        () => store.put('k', enc('2')),
        () => store.delete('k'),
        () => store.keys(),
        () => store.watch('k', () => undefined),
      ]) {
        const { err, ms } = await timedRejection(call());
        expect(isStoreUnavailableError(err), String(err)).toBe(true);
        expect((err as StoreUnavailableError).retryable).toBe(true);
        expect(ms).toBeLessThan(TIMEOUT_MS + 1_000);
      }

      await srv.restart();
      await eventually('a write after the restart', () => store.put('k', enc('after')), 20_000);
      expect(dec((await store.get('k'))!.value)).toBe('after');
      await waitFor(() => seen.some((e) => dec(e.value) === 'after'), { timeoutMs: 10_000, message: 'the watch to resume' });
      expect(seen.map((e) => dec(e.value))).toEqual(['before', 'after']);
    });

    it('a server that stops answering (SIGSTOP) makes calls fail with StoreUnavailableError after timeoutMs, not hang', async () => {
      const srv = await servers.start({ jetstream: true });
      const TIMEOUT_MS = 500;
      const store = await open({ servers: srv.url, bucket: bucket(), timeoutMs: TIMEOUT_MS });
      await store.put('k', enc('1'));
      process.kill(srv.pid, 'SIGSTOP');
      try {
        for (const call of [() => store.get('k'), () => store.put('k', enc('2')), () => store.keys(), () => store.watch('k', () => undefined)]) {
          const { err, ms } = await timedRejection(call());
          expect(isStoreUnavailableError(err), String(err)).toBe(true);
          expect((err as StoreUnavailableError).message).toMatch(/no answer within 500 ms/);
          expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
          expect(ms).toBeLessThan(TIMEOUT_MS + 1_500);
        }
      } finally {
        process.kill(srv.pid, 'SIGCONT');
      }
      await waitFor(async () => (await store.get('k').catch(() => undefined)) !== undefined, { timeoutMs: 10_000, intervalMs: 50 });
    });

    it('calls in flight when the connection drops fail fast with StoreUnavailableError, not after timeoutMs', async () => {
      const srv = await servers.start({ jetstream: true });
      const store = await open({ servers: srv.url, bucket: bucket(), timeoutMs: 20_000 });
      await store.put('k', enc('1'));
      process.kill(srv.pid, 'SIGSTOP'); // the calls below stay unanswered…
      const calls = Array.from({ length: 5 }, (_, i) => store.put(`k${i}`, enc('x')).then(() => 'ok', (e: unknown) => e));
      const start = performance.now();
      await srv.kill(); // …until the connection drops
      const results = await Promise.all(calls);
      expect(performance.now() - start).toBeLessThan(5_000);
      for (const r of results) expect(isStoreUnavailableError(r), String(r)).toBe(true);
    });
  });

  describe('a 3-server cluster with replicas 3', () => {
    it('keeps accepting writes after the bucket leader is killed, and keeps compare-and-set and watches', { timeout: 90_000 }, async () => {
      const cluster = await servers.startCluster(3);
      const name = bucket('ha');
      // JetStream elects its meta leader a moment after the routes are up: until then, opening fails as unavailable.
      const kv = await eventually('JetStream to accept the replicated bucket', () =>
        open({ servers: [...cluster.urls], bucket: name, replicas: 3, timeoutMs: 2_000, watchProbeIntervalMs: 500 }),
      );
      let rev = await kv.create('counter', enc('0'));
      rev = await kv.update('counter', enc('1'), rev);

      const seen: string[] = [];
      await kv.watch('counter', (e) => seen.push(dec(e.value)));
      await waitFor(() => seen.length === 1);
      // Find the server leading the bucket's stream (the hardest one to lose) and kill it.
      const nc = await connect({ servers: [...cluster.urls] });
      const leader = (await (await jetstreamManager(nc)).streams.info(`KV_${name}`)).cluster?.leader;
      await nc.close();
      const index = cluster.servers.findIndex((_, i) => `s${i + 1}` === leader);
      expect(index).toBeGreaterThanOrEqual(0);
      await cluster.kill(index);

      const before = rev;
      rev = await eventually('a write after failover', async () => {
        try {
          return await kv.update('counter', enc('2'), before);
        } catch (err) {
          // An earlier attempt that timed out ("may or may not have been applied") was applied after all.
          const current = isKvConflictError(err) ? await kv.get('counter') : undefined;
          if (current && dec(current.value) === '2') return current.revision;
          throw err;
        }
      });
      // The watch is reopened after the reconnect or when the probe sees the new leader.
      await waitFor(() => seen.includes('2'), { timeoutMs: 20_000, intervalMs: 50, message: () => `the watch to see the write (saw ${seen.join(',')})` });
      expect(seen).toEqual(['1', '2']);
      const e = await kv.get('counter');
      expect(dec(e!.value)).toBe('2');
      expect(e!.revision).toBe(rev);
      await expect(kv.update('counter', enc('3'), rev - 1)).rejects.toSatisfy(isKvConflictError);
      await kv.put('more', enc('x'));
      // keys() needs a new consumer on the just-failed-over stream, which may take a moment.
      expect(await eventually('keys after failover', () => kv.keys())).toEqual(['counter', 'more']);
    });
  });
});
