import { describe, expect, it } from 'vitest';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import {
  isAbortedError,
  isPayloadTooLargeError,
  isTransportClosedError,
  isTransportTimeoutError,
} from '../../framework/errors.ts';
import { withFaults } from '../../framework/transport/faults.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import type { TransportMsg } from '../../framework/transport/transport.ts';

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const readU32 = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A bus on a simulated clock, a faulty sender and a plain receiver recording `n2.>` and `n3.>`. */
function setup(seed = 1) {
  const clock = simulatedClock();
  const bus = createMemoryBus({ clock });
  const rx = bus.connect({ name: 'rx' });
  const tx = withFaults(bus.connect({ name: 'tx' }), { clock, rng: createRng(seed) });
  const n2: number[] = [];
  const n3: number[] = [];
  rx.subscribe('n2.>', (m) => void n2.push(readU32(m.data)));
  rx.subscribe('n3.>', (m) => void n3.push(readU32(m.data)));
  return { clock, bus, rx, tx, n2, n3 };
}

describe('withFaults', () => {
  it('drop: loses messages with the given probability, the same ones for the same seed', async () => {
    const run = async (seed: number) => {
      const { bus, tx, n2 } = setup(seed);
      tx.drop(0.3);
      for (let i = 0; i < 1_000; i++) tx.publish('n2.in', u32(i));
      await bus.settle();
      expect(n2.length + tx.faultStats().dropped).toBe(1_000);
      return n2;
    };
    const a = await run(11);
    expect(a.length).toBeGreaterThan(600);
    expect(a.length).toBeLessThan(800);
    expect(await run(11)).toEqual(a);
    expect(await run(12)).not.toEqual(a);
    expect(a).toEqual([...a].sort((x, y) => x - y)); // survivors keep their order
  });

  it('duplicate: sends a second copy with the given probability, deterministically', async () => {
    const run = async (seed: number) => {
      const { bus, tx, n2 } = setup(seed);
      tx.duplicate(0.5);
      for (let i = 0; i < 200; i++) tx.publish('n2.in', u32(i));
      await bus.settle();
      expect(n2.length).toBe(200 + tx.faultStats().duplicated);
      const counts = new Map<number, number>();
      for (const v of n2) counts.set(v, (counts.get(v) ?? 0) + 1);
      expect(counts.size).toBe(200);
      expect([...counts.values()].every((c) => c === 1 || c === 2)).toBe(true);
      return n2;
    };
    const a = await run(5);
    expect(a.length).toBeGreaterThan(250);
    expect(await run(5)).toEqual(a);
  });

  it('delay: holds messages on the injected clock; jitter reorders, deterministically', async () => {
    const run = async (seed: number) => {
      const { bus, clock, tx, n2 } = setup(seed);
      tx.delay(10, 50);
      for (let i = 0; i < 100; i++) tx.publish('n2.in', u32(i));
      await bus.settle();
      expect(n2).toHaveLength(0);
      clock.increment(9);
      await bus.settle();
      expect(n2).toHaveLength(0);
      clock.increment(41);
      await bus.settle();
      expect(n2).toHaveLength(100);
      expect(tx.faultStats()).toMatchObject({ delayed: 100, pendingDelayed: 0 });
      return n2;
    };
    const a = await run(3);
    expect(a).not.toEqual([...a].sort((x, y) => x - y));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(await run(3)).toEqual(a);
  });

  it('delay with preserveOrder keeps per-publisher order', async () => {
    const { bus, clock, tx, n2 } = setup(9);
    tx.delay(10, 50, { preserveOrder: true });
    for (let i = 0; i < 100; i++) {
      tx.publish('n2.in', u32(i));
      clock.increment(1);
    }
    clock.increment(50);
    await bus.settle();
    expect(n2).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('partition: cuts off subject prefixes token-wise until heal()', async () => {
    const { bus, clock, tx, rx, n2, n3 } = setup();
    const n20: number[] = [];
    rx.subscribe('n20.>', (m) => void n20.push(readU32(m.data)));
    rx.subscribe('n2', (m) => void m.respond(enc('pong')));
    tx.partition(['n2']);
    tx.publish('n2.in', u32(1));
    tx.publish('n3.in', u32(2));
    tx.publish('n20.in', u32(3));
    let outcome: unknown;
    const req = tx.request('n2', enc('ping'), { timeoutMs: 500 }).then(
      () => (outcome = 'answered'),
      (e: unknown) => (outcome = e),
    );
    await bus.settle();
    expect(n2).toEqual([]);
    expect(n3).toEqual([2]);
    expect(n20).toEqual([3]);
    clock.increment(499);
    await bus.settle();
    expect(outcome).toBeUndefined();
    clock.increment(1);
    await req;
    expect(isTransportTimeoutError(outcome), String(outcome)).toBe(true);
    expect(tx.faultStats().partitioned).toBe(2);

    tx.heal();
    tx.publish('n2.in', u32(4));
    const res = await tx.request('n2', enc('ping'), { timeoutMs: 500 });
    expect(dec(res.data)).toBe('pong');
    await bus.settle();
    expect(n2).toEqual([4]);
  });

  it('partition by predicate', async () => {
    const { bus, tx, n2, n3 } = setup();
    tx.partition((s) => s.endsWith('.secret'));
    tx.publish('n2.secret', u32(1));
    tx.publish('n2.public', u32(2));
    tx.publish('n3.secret', u32(3));
    await bus.settle();
    expect(n2).toEqual([2]);
    expect(n3).toEqual([]);
  });

  it('faults apply to responses sent through the wrapper', async () => {
    const clock = simulatedClock();
    const bus = createMemoryBus({ clock });
    const client = bus.connect();
    const server = withFaults(bus.connect(), { clock, rng: createRng(1) });
    server.subscribe('svc', (m) => void m.respond(enc('late')));
    server.delay(100);
    let reply: TransportMsg | undefined;
    const p = client.request('svc', enc('?'), { timeoutMs: 1_000 }).then((m) => (reply = m));
    await bus.settle();
    clock.increment(99);
    await bus.settle();
    expect(reply).toBeUndefined();
    clock.increment(1);
    await p;
    expect(dec(reply!.data)).toBe('late');
  });

  it('delays requests and gives the inner transport what is left of the timeout', async () => {
    const { bus, clock, tx, rx } = setup();
    const seen: string[] = [];
    rx.subscribe('svc', (m) => {
      seen.push(dec(m.data));
      m.respond(enc(`re:${dec(m.data)}`));
    });
    tx.delay(100);
    let reply: TransportMsg | undefined;
    const ok = tx.request('svc', enc('a'), { timeoutMs: 1_000 }).then((m) => (reply = m));
    await bus.settle();
    expect(seen).toEqual([]);
    clock.increment(100);
    await ok;
    expect(dec(reply!.data)).toBe('re:a');

    // delayed past its timeout: the caller times out, the responder still sees it late
    let outcome: unknown;
    const late = tx.request('svc', enc('b'), { timeoutMs: 50 }).catch((e: unknown) => (outcome = e));
    clock.increment(50);
    await late;
    expect(isTransportTimeoutError(outcome), String(outcome)).toBe(true);
    clock.increment(50);
    await bus.settle();
    expect(seen).toEqual(['a', 'b']);
  });

  it('a duplicated request reaches the responder twice; the caller gets one reply', async () => {
    const { bus, tx, rx } = setup();
    let seen = 0;
    rx.subscribe('svc', (m) => {
      seen++;
      m.respond(enc('once'));
    });
    tx.duplicate(1);
    const res = await tx.request('svc', enc('?'), { timeoutMs: 1_000 });
    await bus.settle();
    expect(dec(res.data)).toBe('once');
    expect(seen).toBe(2);
  });

  it('a dropped request times out on the clock; abort still wins', async () => {
    const { clock, tx, rx } = setup();
    rx.subscribe('svc', (m) => void m.respond(enc('x')));
    tx.drop(1);
    let outcome: unknown;
    const p = tx.request('svc', enc('?'), { timeoutMs: 200 }).catch((e: unknown) => (outcome = e));
    clock.increment(200);
    await p;
    expect(isTransportTimeoutError(outcome)).toBe(true);

    const ac = new AbortController();
    const q = tx.request('svc', enc('?'), { timeoutMs: 200, signal: ac.signal }).catch((e: unknown) => e);
    ac.abort();
    expect(isAbortedError(await q)).toBe(true);

    tx.reset();
    tx.delay(10);
    const ac2 = new AbortController();
    const r = tx.request('svc', enc('?'), { timeoutMs: 200, signal: ac2.signal }).catch((e: unknown) => e);
    ac2.abort();
    expect(isAbortedError(await r)).toBe(true);
  });

  it('still throws synchronous errors whatever the faults; reset() switches everything off', async () => {
    const { bus, tx, n2 } = setup();
    tx.drop(1);
    expect(() => tx.publish('n2.big', new Uint8Array(tx.maxPayloadBytes + 1))).toThrow();
    try {
      tx.publish('n2.big', new Uint8Array(tx.maxPayloadBytes + 1));
    } catch (e) {
      expect(isPayloadTooLargeError(e)).toBe(true);
    }
    expect(() => tx.publish('n2.*', u32(0))).toThrow(/wildcards/);
    tx.publish('n2.in', u32(1));
    tx.reset();
    tx.publish('n2.in', u32(2));
    await bus.settle();
    expect(n2).toEqual([2]);
  });

  it('close() discards held messages and closes the inner transport', async () => {
    const { bus, clock, tx, n2 } = setup();
    tx.delay(100);
    tx.publish('n2.in', u32(1));
    await tx.close();
    expect(tx.status()).toBe('closed');
    clock.increment(100);
    await bus.settle();
    expect(n2).toEqual([]);
    try {
      tx.publish('n2.in', u32(2));
      expect.fail('published after close');
    } catch (e) {
      expect(isTransportClosedError(e)).toBe(true);
    }
  });

  it('validates its controls', () => {
    const { tx } = setup();
    expect(() => tx.drop(1.5)).toThrow(RangeError);
    expect(() => tx.duplicate(-0.1)).toThrow(RangeError);
    expect(() => tx.delay(10, 5)).toThrow(RangeError);
  });
});
