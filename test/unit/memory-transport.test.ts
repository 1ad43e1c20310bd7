import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import { isTransportTimeoutError } from '../../framework/errors.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import { subjectProblem } from '../../framework/transport/subjects.ts';
import type { Transport } from '../../framework/transport/transport.ts';
import { transportConformance } from '../helpers/transport-conformance.ts';
import { waitFor } from '../helpers/wait-for.ts';

transportConformance('memory bus', async () => {
  const bus = createMemoryBus();
  return { connect: async () => bus.connect(), cleanup: () => bus.close() };
});

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('memory bus specifics', () => {
  it('keeps buses isolated from each other', async () => {
    const a = createMemoryBus().connect();
    const b = createMemoryBus().connect();
    let got = 0;
    b.subscribe('x', () => void got++);
    a.publish('x', enc('1'));
    const own = a.subscribe('x', () => void got++);
    a.publish('x', enc('2'));
    await waitFor(() => got === 1);
    own.unsubscribe();
    await Promise.all([a.close(), b.close()]);
    expect(got).toBe(1);
  });

  it('round-robins queue groups deterministically without an rng', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    const who: number[] = [];
    for (let i = 0; i < 3; i++) t.subscribe('job', () => void who.push(i), { queue: 'w' });
    for (let i = 0; i < 6; i++) t.publish('job', enc(String(i)));
    await bus.settle();
    expect(who).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('picks queue members from the injected rng: same seed, same choices', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const bus = createMemoryBus({ rng: createRng(seed) });
      const t = bus.connect();
      const who: number[] = [];
      for (let i = 0; i < 4; i++) t.subscribe('job', () => void who.push(i), { queue: 'w' });
      for (let i = 0; i < 40; i++) t.publish('job', enc(String(i)));
      await bus.settle();
      return who;
    };
    const first = await run(7);
    expect(await run(7)).toEqual(first);
    expect(new Set(first).size).toBe(4);
  });

  it('times requests out on the injected clock', async () => {
    const clock = simulatedClock();
    const bus = createMemoryBus({ clock });
    const t = bus.connect();
    t.subscribe('silent', () => {});
    let settled: unknown;
    const p = t.request('silent', enc('?'), { timeoutMs: 1_000 }).catch((err: unknown) => (settled = err));
    await bus.settle();
    clock.increment(999);
    await Promise.resolve();
    expect(settled).toBeUndefined();
    clock.increment(1);
    await p;
    expect(isTransportTimeoutError(settled)).toBe(true);
    await bus.close();
  });

  it('honours a custom maxPayloadBytes', () => {
    const t = createMemoryBus({ maxPayloadBytes: 8 }).connect();
    expect(t.maxPayloadBytes).toBe(8);
    t.publish('ok', new Uint8Array(8));
    expect(() => t.publish('ok', new Uint8Array(9))).toThrow(/exceeds the limit of 8 bytes/);
  });

  it('copies payloads at publish so a reused buffer does not change what subscribers see', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    const got: string[] = [];
    t.subscribe('buf', (m) => void got.push(new TextDecoder().decode(m.data)));
    const buf = enc('one');
    t.publish('buf', buf);
    buf.set(enc('two'));
    t.publish('buf', buf);
    await bus.settle();
    expect(got).toEqual(['one', 'two']);
  });

  it('does not starve the event loop when handlers ping-pong forever', async () => {
    const bus = createMemoryBus();
    const a = bus.connect();
    const b = bus.connect();
    let hops = 0;
    a.subscribe('ping', (m) => {
      hops++;
      a.publish('pong', m.data);
    });
    b.subscribe('pong', (m) => b.publish('ping', m.data));
    a.publish('ping', enc('x'));
    // A real timer can only fire if delivery yields to the event loop now and then.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(hops).toBeGreaterThan(100);
    await Promise.all([a.close(), b.close()]);
  });

  it('counts what it does in stats()', async () => {
    const bus = createMemoryBus();
    const t = bus.connect();
    t.subscribe('a.*', () => {});
    t.subscribe('a.b', () => {
      throw new Error('x');
    });
    t.publish('a.b', enc('1'));
    t.publish('zzz', enc('2'));
    await bus.settle();
    expect(bus.stats()).toMatchObject({ connections: 1, subscriptions: 2, published: 2, noInterest: 1, delivered: 2, handlerErrors: 1, pending: 0 });
    await t.close();
    expect(bus.stats()).toMatchObject({ connections: 0, subscriptions: 0 });
  });

  it('matches subjects exactly like a reference NATS matcher (property)', async () => {
    const token = fc.constantFrom('a', 'b', 'c');
    const subject = fc.array(token, { minLength: 1, maxLength: 4 });
    const pattern = fc
      .array(fc.constantFrom('a', 'b', '*'), { minLength: 1, maxLength: 4 })
      .chain((ts) => fc.boolean().map((full) => (full ? [...ts.slice(0, -1), '>'] : ts)));
    const reference = (pat: string[], sub: string[]): boolean => {
      for (let i = 0; i < pat.length; i++) {
        if (pat[i] === '>') return sub.length > i;
        if (i >= sub.length) return false;
        if (pat[i] !== '*' && pat[i] !== sub[i]) return false;
      }
      return pat.length === sub.length;
    };
    await fc.assert(
      fc.asyncProperty(fc.array(pattern, { minLength: 1, maxLength: 6 }), fc.array(subject, { minLength: 1, maxLength: 6 }), async (pats, subs) => {
        const bus = createMemoryBus();
        const t: Transport = bus.connect();
        const got = pats.map(() => [] as string[]);
        pats.forEach((p, i) => t.subscribe(p.join('.'), (m) => void got[i]!.push(m.subject)));
        for (const s of subs) t.publish(s.join('.'), enc('x'));
        await bus.settle();
        pats.forEach((p, i) => {
          expect(got[i]).toEqual(subs.filter((s) => reference(p, s)).map((s) => s.join('.')));
        });
        await bus.close();
      }),
      { numRuns: 200, seed: 42 },
    );
  });

  it('validates subject syntax', () => {
    expect(subjectProblem('a.b.c', 'publish')).toBeUndefined();
    expect(subjectProblem('a.*.>', 'subscribe')).toBeUndefined();
    expect(subjectProblem('a.*', 'publish')).toMatch(/wildcards/);
    expect(subjectProblem('a.>.b', 'subscribe')).toMatch(/last token/);
    expect(subjectProblem('a..b', 'subscribe')).toMatch(/empty token/);
    expect(subjectProblem('a b', 'publish')).toMatch(/whitespace/);
  });
});
