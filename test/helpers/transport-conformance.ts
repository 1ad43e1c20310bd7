/**
 * The one conformance suite every Transport implementation must pass: what NATS does, the
 * in-process bus does the same way. Synchronisation is by condition with a deadline (`waitFor`) and,
 * for "nothing else arrives", by a barrier message published after the ones that must not arrive.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  isAbortedError,
  isInvalidNameError,
  isNoRespondersError,
  isPayloadTooLargeError,
  isTransportClosedError,
  isTransportTimeoutError,
} from '../../framework/errors.ts';
import type { Transport, TransportEvent, TransportMsg } from '../../framework/transport/transport.ts';
import { waitFor } from './wait-for.ts';

/** What a transport under test provides: fresh connections, and cleanup at the end. */
export interface ConformanceEnv {
  connect(): Promise<Transport>;
  cleanup(): Promise<void>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Returns the error a sync call throws (or fails the test when it does not). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  expect.fail('expected the call to throw');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  expect.fail('expected the promise to reject');
}

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const readU32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);

export function transportConformance(name: string, factory: () => Promise<ConformanceEnv>): void {
  describe(`Transport conformance: ${name}`, () => {
    let env: ConformanceEnv | undefined;
    const opened: Transport[] = [];
    let seq = 0;

    beforeAll(async () => {
      env = await factory();
    });
    afterEach(async () => {
      await Promise.allSettled(opened.splice(0).map((t) => t.close()));
    });
    afterAll(async () => {
      await env?.cleanup();
    });

    const connect = async (): Promise<Transport> => {
      if (!env) throw new Error('conformance env did not start');
      const t = await env.connect();
      opened.push(t);
      return t;
    };
    /** A subject prefix no other test uses. */
    const fresh = (): string => `conf${++seq}`;

    /** Records what a subscription receives. */
    const record = (t: Transport, subject: string, queue?: string) => {
      const msgs: TransportMsg[] = [];
      const sub = t.subscribe(subject, (m) => void msgs.push(m), queue !== undefined ? { queue } : undefined);
      return { msgs, sub, subjects: () => msgs.map((m) => m.subject) };
    };

    /** Make sure subscriptions made on `ts` are known to the bus before anyone publishes. */
    const ready = async (...ts: Transport[]): Promise<void> => {
      await Promise.all(ts.map((t) => t.flush()));
    };

    /**
     * Everything `pub` published to `sub`'s subscriptions before this call has been delivered:
     * messages from one publisher reach one subscriber connection in order, so once a marker
     * published now arrives, nothing published earlier is still on its way.
     */
    const barrier = async (pub: Transport, sub: Transport): Promise<void> => {
      const subject = `barrier.${fresh()}`;
      let seen = false;
      const s = sub.subscribe(subject, () => {
        seen = true;
      });
      await ready(sub);
      pub.publish(subject, enc('marker'));
      await waitFor(() => seen, { message: 'barrier marker' });
      s.unsubscribe();
    };

    it('starts connected', async () => {
      const t = await connect();
      expect(t.status()).toBe('connected');
      expect(t.maxPayloadBytes).toBeGreaterThan(0);
    });

    it('invokes handlers asynchronously, never inside publish', async () => {
      const t = await connect();
      const p = fresh();
      const r = record(t, `${p}.x`);
      await ready(t);
      t.publish(`${p}.x`, enc('hi'));
      expect(r.msgs).toHaveLength(0);
      await waitFor(() => r.msgs.length === 1);
      expect(dec(r.msgs[0]!.data)).toBe('hi');
      expect(r.msgs[0]!.reply).toBeUndefined();
      expect(r.msgs[0]!.respond(enc('nobody asked'))).toBe(false);
    });

    it('delivers exact subjects only to exact matches', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const r = record(sub, `${p}.a.b`);
      await ready(sub);
      for (const s of [`${p}.a.b`, `${p}.a.c`, `${p}.a.b.c`, `${p}.a`, `${p}.a.B`, `${p}.a.b`]) pub.publish(s, enc(s));
      await barrier(pub, sub);
      expect(r.subjects()).toEqual([`${p}.a.b`, `${p}.a.b`]);
    });

    it("matches '*' to exactly one token", async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const tail = record(sub, `${p}.a.*`);
      const middle = record(sub, `${p}.*.z`);
      await ready(sub);
      for (const s of [`${p}.a.x`, `${p}.a`, `${p}.a.x.y`, `${p}.b.x`, `${p}.a.y`, `${p}.q.z`, `${p}.q.r.z`, `${p}.a.z`]) {
        pub.publish(s, enc(s));
      }
      await barrier(pub, sub);
      expect(tail.subjects()).toEqual([`${p}.a.x`, `${p}.a.y`, `${p}.a.z`]);
      expect(middle.subjects()).toEqual([`${p}.q.z`, `${p}.a.z`]);
    });

    it("matches '>' to one or more trailing tokens", async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const r = record(sub, `${p}.a.>`);
      const mixed = record(sub, `${p}.*.b.>`);
      await ready(sub);
      for (const s of [`${p}.a.x`, `${p}.a`, `${p}.a.x.y.z`, `${p}.b.x`, `${p}.ab.x`, `${p}.q.b.c`, `${p}.q.b`]) {
        pub.publish(s, enc(s));
      }
      await barrier(pub, sub);
      expect(r.subjects()).toEqual([`${p}.a.x`, `${p}.a.x.y.z`]);
      expect(mixed.subjects()).toEqual([`${p}.q.b.c`]);
    });

    it('delivers a message once per matching subscription, also on one connection', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const exact = record(sub, `${p}.a`);
      const star = record(sub, `${p}.*`);
      const full = record(sub, '>');
      await ready(sub);
      pub.publish(`${p}.a`, enc('1'));
      await barrier(pub, sub);
      expect(exact.msgs).toHaveLength(1);
      expect(star.msgs).toHaveLength(1);
      expect(full.subjects().filter((s) => s === `${p}.a`)).toHaveLength(1);
    });

    it('gives each message to one member per queue group, spread across members; plain subscribers get all', async () => {
      const [pub, s1, s2] = await Promise.all([connect(), connect(), connect()]);
      const p = fresh();
      const subject = `${p}.work`;
      const workers = [record(s1, subject, 'workers'), record(s1, subject, 'workers'), record(s2, subject, 'workers')];
      const auditors = [record(s2, subject, 'auditors'), record(s1, subject, 'auditors')];
      const plain = record(s1, subject);
      await ready(s1, s2);
      const n = 300;
      for (let i = 0; i < n; i++) pub.publish(subject, u32(i));
      const total = (rs: Array<{ msgs: TransportMsg[] }>): number => rs.reduce((a, r) => a + r.msgs.length, 0);
      await waitFor(() => total(workers) >= n && total(auditors) >= n && plain.msgs.length >= n, {
        message: () => `workers ${total(workers)}, auditors ${total(auditors)}, plain ${plain.msgs.length} of ${n}`,
      });
      await barrier(pub, s1);
      await barrier(pub, s2);
      for (const group of [workers, auditors]) {
        const seen = group.flatMap((r) => r.msgs.map((m) => readU32(m.data))).sort((a, b) => a - b);
        expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
        for (const member of group) expect(member.msgs.length).toBeGreaterThan(0);
      }
      expect(plain.msgs.map((m) => readU32(m.data))).toEqual(Array.from({ length: n }, (_, i) => i));
    });

    it('stops delivering to a queue member that unsubscribed', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const a = record(sub, `${p}.q`, 'g');
      const b = record(sub, `${p}.q`, 'g');
      await ready(sub);
      a.sub.unsubscribe();
      await ready(sub);
      for (let i = 0; i < 20; i++) pub.publish(`${p}.q`, u32(i));
      await waitFor(() => b.msgs.length === 20);
      await barrier(pub, sub);
      expect(a.msgs).toHaveLength(0);
    });

    it('request/reply: the responder sees a reply subject and its response comes back', async () => {
      const [client, server] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const seenReply: Array<string | undefined> = [];
      server.subscribe(`${p}.echo`, (m) => {
        seenReply.push(m.reply);
        expect(m.respond(enc(`echo:${dec(m.data)}`))).toBe(true);
      });
      await ready(server);
      const res = await client.request(`${p}.echo`, enc('ping'), { timeoutMs: 5_000 });
      expect(dec(res.data)).toBe('echo:ping');
      expect(seenReply).toHaveLength(1);
      expect(seenReply[0]).toBeTypeOf('string');
      const many = await Promise.all(
        Array.from({ length: 50 }, (_, i) => client.request(`${p}.echo`, enc(String(i)), { timeoutMs: 5_000 })),
      );
      expect(many.map((m) => dec(m.data))).toEqual(Array.from({ length: 50 }, (_, i) => `echo:${i}`));
    });

    it('request/reply through a queue group: each request answered exactly once', async () => {
      const [client, s1, s2] = await Promise.all([connect(), connect(), connect()]);
      const p = fresh();
      const handled: string[] = [];
      for (const [t, id] of [[s1, 'a'], [s2, 'b'], [s2, 'c']] as const) {
        t.subscribe(`${p}.svc`, (m) => {
          handled.push(id);
          m.respond(enc(id));
        }, { queue: 'svc' });
      }
      await ready(s1, s2);
      const replies = await Promise.all(
        Array.from({ length: 30 }, () => client.request(`${p}.svc`, enc('x'), { timeoutMs: 5_000 })),
      );
      expect(replies).toHaveLength(30);
      expect(handled).toHaveLength(30);
    });

    it('a request nobody subscribes to fails fast with NoRespondersError', async () => {
      const t = await connect();
      const p = fresh();
      const started = performance.now();
      const err = await rejection(t.request(`${p}.nobody.home`, enc('?'), { timeoutMs: 10_000 }));
      expect(isNoRespondersError(err), String(err)).toBe(true);
      expect(performance.now() - started).toBeLessThan(3_000);
    });

    it('a request nobody answers fails with TransportTimeoutError after timeoutMs', async () => {
      const [client, server] = await Promise.all([connect(), connect()]);
      const p = fresh();
      let got = 0;
      server.subscribe(`${p}.silent`, () => {
        got++;
      });
      await ready(server);
      const started = performance.now();
      const err = await rejection(client.request(`${p}.silent`, enc('?'), { timeoutMs: 200 }));
      const elapsed = performance.now() - started;
      expect(isTransportTimeoutError(err), String(err)).toBe(true);
      expect(elapsed).toBeGreaterThanOrEqual(150);
      expect(elapsed).toBeLessThan(5_000);
      expect(got).toBe(1);
    });

    it('an aborted request rejects with AbortedError', async () => {
      const [client, server] = await Promise.all([connect(), connect()]);
      const p = fresh();
      let got = 0;
      server.subscribe(`${p}.slow`, () => {
        got++;
      });
      await ready(server);
      const ac = new AbortController();
      const pending = client.request(`${p}.slow`, enc('?'), { timeoutMs: 10_000, signal: ac.signal });
      await waitFor(() => got === 1);
      const started = performance.now();
      ac.abort();
      const err = await rejection(pending);
      expect(isAbortedError(err), String(err)).toBe(true);
      expect(performance.now() - started).toBeLessThan(1_000);

      const pre = new AbortController();
      pre.abort();
      const err2 = await rejection(client.request(`${p}.slow`, enc('?'), { timeoutMs: 10_000, signal: pre.signal }));
      expect(isAbortedError(err2), String(err2)).toBe(true);
    });

    it('preserves per-publisher order (10k messages)', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const got: number[] = [];
      sub.subscribe(`${p}.seq`, (m) => void got.push(readU32(m.data)));
      await ready(sub);
      const n = 10_000;
      for (let i = 0; i < n; i++) pub.publish(`${p}.seq`, u32(i));
      await waitFor(() => got.length >= n, { timeoutMs: 15_000, message: () => `${got.length} of ${n}` });
      expect(got.length).toBe(n);
      let inOrder = true;
      for (let i = 0; i < n; i++) if (got[i] !== i) inOrder = false;
      expect(inOrder).toBe(true);
    });

    it('preserves order per publisher when publishers interleave', async () => {
      const [a, b, sub] = await Promise.all([connect(), connect(), connect()]);
      const p = fresh();
      const got: Array<[string, number]> = [];
      sub.subscribe(`${p}.*`, (m) => void got.push([m.subject, readU32(m.data)]));
      await ready(sub);
      const n = 2_000;
      for (let i = 0; i < n; i++) {
        a.publish(`${p}.a`, u32(i));
        b.publish(`${p}.b`, u32(i));
      }
      await waitFor(() => got.length >= 2 * n, { timeoutMs: 15_000 });
      for (const who of ['a', 'b']) {
        const seqs = got.filter(([s]) => s === `${p}.${who}`).map(([, v]) => v);
        expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i));
      }
    });

    it('rejects an oversize payload with PayloadTooLargeError; the limit itself is accepted', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const max = pub.maxPayloadBytes;
      const over = new Uint8Array(max + 1);
      const err = thrown(() => pub.publish(`${p}.big`, over));
      expect(isPayloadTooLargeError(err), String(err)).toBe(true);
      const rerr = await rejection(pub.request(`${p}.big`, over, { timeoutMs: 1_000 }));
      expect(isPayloadTooLargeError(rerr), String(rerr)).toBe(true);

      const got: number[] = [];
      sub.subscribe(`${p}.big`, (m) => void got.push(m.data.byteLength));
      await ready(sub);
      pub.publish(`${p}.big`, new Uint8Array(max));
      await waitFor(() => got.length === 1, { timeoutMs: 10_000 });
      expect(got).toEqual([max]);
    });

    it('after close: publish/subscribe throw and request rejects with TransportClosedError; close is idempotent', async () => {
      const t = await connect();
      const events: TransportEvent['type'][] = [];
      t.onEvent((ev) => void events.push(ev.type));
      const p = fresh();
      await t.close();
      await t.close();
      expect(t.status()).toBe('closed');
      expect(events).toContain('closed');
      const pubErr = thrown(() => t.publish(`${p}.x`, enc('late')));
      expect(isTransportClosedError(pubErr), String(pubErr)).toBe(true);
      const subErr = thrown(() => t.subscribe(`${p}.x`, () => {}));
      expect(isTransportClosedError(subErr), String(subErr)).toBe(true);
      const reqErr = await rejection(t.request(`${p}.x`, enc('late'), { timeoutMs: 1_000 }));
      expect(isTransportClosedError(reqErr), String(reqErr)).toBe(true);
    });

    it('close on the publisher drains: messages published just before close still arrive', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const got: number[] = [];
      sub.subscribe(`${p}.d`, (m) => void got.push(readU32(m.data)));
      await ready(sub);
      const n = 1_000;
      for (let i = 0; i < n; i++) pub.publish(`${p}.d`, u32(i));
      await pub.close();
      await waitFor(() => got.length >= n, { message: () => `${got.length} of ${n}` });
      expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    });

    it('close on the subscriber drains: in-flight messages are delivered before close resolves', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      let got = 0;
      sub.subscribe(`${p}.d`, () => {
        got++;
      });
      await ready(sub);
      const n = 1_000;
      for (let i = 0; i < n; i++) pub.publish(`${p}.d`, u32(i));
      await pub.flush();
      await sub.close();
      expect(got).toBe(n);
      // and a closed connection's subscriptions receive nothing more
      pub.publish(`${p}.d`, u32(n));
      await pub.flush();
      const watcher = await connect();
      const w = record(watcher, `${p}.d`);
      await ready(watcher);
      pub.publish(`${p}.d`, u32(n + 1));
      await waitFor(() => w.msgs.length === 1);
      expect(got).toBe(n);
    });

    it('unsubscribe stops delivery (and is idempotent); other subscriptions keep receiving', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const a = record(sub, `${p}.u`);
      const b = record(sub, `${p}.u`);
      expect(a.sub.subject).toBe(`${p}.u`);
      await ready(sub);
      pub.publish(`${p}.u`, u32(0));
      await waitFor(() => a.msgs.length === 1 && b.msgs.length === 1);
      a.sub.unsubscribe();
      a.sub.unsubscribe();
      await ready(sub);
      for (let i = 1; i <= 5; i++) pub.publish(`${p}.u`, u32(i));
      await barrier(pub, sub);
      expect(a.msgs).toHaveLength(1);
      expect(b.msgs).toHaveLength(6);
    });

    it('a throwing handler does not break later deliveries; the error is reported as an event', async () => {
      const [pub, sub] = await Promise.all([connect(), connect()]);
      const p = fresh();
      const errors: Error[] = [];
      sub.onEvent((ev) => {
        if (ev.type === 'error') errors.push(ev.error);
      });
      const got: number[] = [];
      sub.subscribe(`${p}.boom`, (m) => {
        const i = readU32(m.data);
        got.push(i);
        if (i % 2 === 0) throw new Error(`handler failed on ${i}`);
      });
      await ready(sub);
      for (let i = 0; i < 10; i++) pub.publish(`${p}.boom`, u32(i));
      await waitFor(() => got.length === 10, { message: () => `${got.length} of 10` });
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => i));
      await waitFor(() => errors.length === 5);
      expect(errors.map((e) => e.message)).toContain('handler failed on 4');
      // an async handler that rejects is reported too
      sub.subscribe(`${p}.async`, async () => {
        throw new Error('async failure');
      });
      await ready(sub);
      pub.publish(`${p}.async`, u32(0));
      await waitFor(() => errors.some((e) => e.message === 'async failure'));
    });

    it('rejects invalid subjects and queue names with InvalidNameError', async () => {
      const t = await connect();
      for (const s of ['', 'a..b', '.a', 'a.', 'a b', 'a\tb', 'a\nb', 'a.*', 'a.>', '*', '>']) {
        const err = thrown(() => t.publish(s, enc('x')));
        expect(isInvalidNameError(err), `publish ${JSON.stringify(s)}: ${String(err)}`).toBe(true);
        const rerr = await rejection(t.request(s, enc('x'), { timeoutMs: 1_000 }));
        expect(isInvalidNameError(rerr), `request ${JSON.stringify(s)}: ${String(rerr)}`).toBe(true);
      }
      const perr = thrown(() => t.publish('ok.subject', enc('x'), { reply: 'bad reply' }));
      expect(isInvalidNameError(perr), String(perr)).toBe(true);
      for (const s of ['', 'a..b', '.a', 'a.', 'a b', 'a.>.b', '>.a']) {
        const err = thrown(() => t.subscribe(s, () => {}));
        expect(isInvalidNameError(err), `subscribe ${JSON.stringify(s)}: ${String(err)}`).toBe(true);
      }
      for (const queue of ['', 'two words']) {
        const err = thrown(() => t.subscribe('ok.subject', () => {}, { queue }));
        expect(isInvalidNameError(err), `queue ${JSON.stringify(queue)}: ${String(err)}`).toBe(true);
      }
      for (const s of ['>', '*', 'a.*.>', '*.*', 'a-b_c.D9', 'a*b.c>']) t.subscribe(s, () => {}).unsubscribe();
      expect(t.status()).toBe('connected');
    });
  });
}
