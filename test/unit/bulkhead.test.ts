/**
 * Bulkhead: admission, queueing, rejection, queue timeouts and aborts on the simulated clock; the
 * mode chart's transitions; one bulkhead per target; and, as a property under random arrivals and
 * durations, that executions never exceed the limit nor waiters the queue.
 */
import fc from 'fast-check';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { BulkheadMode, bulkheadMachine, bulkheadMode, type BulkheadStateEffect } from '../../actors/bulkhead/machine.ts';
import { createBulkhead, createBulkheads, DEFAULT_BULKHEAD_QUEUE } from '../../actors/bulkhead/bulkhead.ts';
import { simulatedClock } from '../../framework/clock.ts';
import { AbortedError, BulkheadRejectedError } from '../../framework/errors.ts';

/** Let every pending promise reaction run (no timers involved). */
const flush = async (rounds = 20): Promise<void> => {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
};

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}
function deferred<T = string>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A promise's state after a flush. */
function track<T>(p: Promise<T>): { state: () => 'pending' | 'fulfilled' | 'rejected'; value: () => T | undefined; error: () => unknown } {
  let state: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  let value: T | undefined;
  let error: unknown;
  p.then((v) => { state = 'fulfilled'; value = v; }, (e: unknown) => { state = 'rejected'; error = e; });
  return { state: () => state, value: () => value, error: () => error };
}

describe('bulkhead options', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['limit 0', { limit: 0 }, /option limit must be an integer ≥ 1, got 0/],
    ['limit 1.5', { limit: 1.5 }, /option limit .* got 1\.5/],
    ['limit missing', {}, /option limit .* got undefined/],
    ['limit NaN', { limit: Number.NaN }, /option limit .* got NaN/],
    ['limit as string', { limit: '3' }, /option limit .* got '3'/],
    ['queue -1', { limit: 1, queue: -1 }, /option queue must be an integer ≥ 0, got -1/],
    ['queue 2.5', { limit: 1, queue: 2.5 }, /option queue .* got 2\.5/],
    ['queueTimeoutMs 0', { limit: 1, queueTimeoutMs: 0 }, /option queueTimeoutMs must be a number > 0 \(or Infinity\), got 0/],
    ['queueTimeoutMs -5', { limit: 1, queueTimeoutMs: -5 }, /option queueTimeoutMs .* got -5/],
    ['queueTimeoutMs NaN', { limit: 1, queueTimeoutMs: Number.NaN }, /option queueTimeoutMs .* got NaN/],
    ['name empty', { limit: 1, name: '' }, /option name must be a non-empty string, got ''/],
  ];
  for (const [what, options, message] of cases) {
    it(`rejects ${what} with a RangeError naming the option and value`, () => {
      expect(() => createBulkhead(options as never)).toThrow(RangeError);
      expect(() => createBulkhead(options as never)).toThrow(message);
    });
  }

  it('defaults: no queue, no queue timeout, name "bulkhead"', () => {
    const b = createBulkhead({ limit: 2, clock: simulatedClock() });
    expect(b.name).toBe('bulkhead');
    expect(b.kind).toBe('bulkhead');
    expect(b.stats()).toEqual({ active: 0, queued: 0, limit: 2, queueCapacity: DEFAULT_BULKHEAD_QUEUE, rejected: 0 });
  });

  it('a registry validates its defaults and every override when it is created', () => {
    expect(() => createBulkheads({ limit: 0 })).toThrow(/option limit .* got 0/);
    expect(() => createBulkheads({ limit: 2, targets: { search: { queue: -2 } } })).toThrow(/option queue .* got -2/);
    expect(() => createBulkheads({ limit: 2 }).for('')).toThrow(/option target must be a non-empty string/);
  });
});

describe('bulkhead admission', () => {
  it('runs up to `limit` at once, queues up to `queue`, rejects the rest at once with the capacity figures', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ name: 'db', limit: 2, queue: 1, clock });
    const rejected: BulkheadRejectedError[] = [];
    b.on('rejected', (e) => rejected.push(e));
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const calls = gates.map((g, i) => track(b.execute(() => { started.push(i); return g.promise; })));
    expect(started).toEqual([0, 1]);
    expect(b.stats()).toEqual({ active: 2, queued: 1, limit: 2, queueCapacity: 1, rejected: 0 });

    const fourth = track(b.execute(() => 'never'));
    await flush();
    expect(fourth.state()).toBe('rejected');
    const err = fourth.error() as BulkheadRejectedError;
    expect(err).toBeInstanceOf(BulkheadRejectedError);
    expect(err.message).toBe("bulkhead 'db' is full: 2/2 executing, 1/1 queued");
    expect(err).toMatchObject({ bulkhead: 'db', limit: 2, queueCapacity: 1, active: 2, queued: 1, reason: 'full', retryable: true });
    expect(rejected).toEqual([err]);
    expect(b.stats().rejected).toBe(1);

    gates[0]!.resolve('a');
    await flush();
    expect(calls[0]!.value()).toBe('a');
    expect(started).toEqual([0, 1, 2]); // the queued call took the freed slot
    expect(b.stats()).toMatchObject({ active: 2, queued: 0 });
    gates[1]!.reject(new Error('boom'));
    gates[2]!.resolve('c');
    await flush();
    expect(calls[1]!.error()).toEqual(new Error('boom'));
    expect(calls[2]!.value()).toBe('c');
    expect(b.stats()).toMatchObject({ active: 0, queued: 0 });
  });

  it('starts queued callers in arrival order', async () => {
    const b = createBulkhead({ limit: 1, queue: 5, clock: simulatedClock() });
    const order: number[] = [];
    const first = deferred();
    void b.execute(() => first.promise);
    const rest = [1, 2, 3, 4, 5].map((i) => b.execute(async () => { order.push(i); }));
    first.resolve('x');
    await Promise.all(rest);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('frees the slot of a call that returns or throws synchronously', async () => {
    const b = createBulkhead({ limit: 1, clock: simulatedClock() });
    await expect(b.execute(() => 42)).resolves.toBe(42);
    await expect(b.execute(() => { throw new Error('sync'); })).rejects.toThrow('sync');
    expect(b.stats().active).toBe(0);
    // a queue of synchronous calls drains without recursion problems
    const q = createBulkhead({ limit: 1, queue: 5_000, clock: simulatedClock() });
    const gate = deferred();
    void q.execute(() => gate.promise);
    const all = Array.from({ length: 5_000 }, (_, i) => q.execute(() => i));
    gate.resolve('go');
    expect((await Promise.all(all)).length).toBe(5_000);
    expect(q.stats()).toMatchObject({ active: 0, queued: 0 });
  });

  it('passes the caller signal to the call', async () => {
    const b = createBulkhead({ limit: 1, clock: simulatedClock() });
    const ac = new AbortController();
    let seen: AbortSignal | undefined;
    await b.execute(({ signal }) => { seen = signal; }, ac.signal);
    expect(seen).toBe(ac.signal);
  });
});

describe('bulkhead queue timeout and abort (simulated clock)', () => {
  it('a caller that waits longer than queueTimeoutMs is rejected with reason queue-timeout', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ name: 'svc', limit: 1, queue: 2, queueTimeoutMs: 100, clock });
    const gate = deferred();
    void b.execute(() => gate.promise);
    let ran = false;
    const waiting = track(b.execute(() => { ran = true; }));
    clock.increment(99);
    await flush();
    expect(waiting.state()).toBe('pending');
    clock.increment(1);
    await flush();
    expect(waiting.state()).toBe('rejected');
    const err = waiting.error() as BulkheadRejectedError;
    expect(err).toBeInstanceOf(BulkheadRejectedError);
    expect(err.reason).toBe('queue-timeout');
    expect(err.message).toBe("bulkhead 'svc': waited too long in the queue (1/1 executing, 1/2 queued)");
    expect(b.stats()).toMatchObject({ active: 1, queued: 0, rejected: 1 });
    gate.resolve('done');
    await flush();
    expect(ran).toBe(false);
  });

  it('a caller that got its slot in time is not timed out later', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ limit: 1, queue: 1, queueTimeoutMs: 100, clock });
    const gate = deferred();
    void b.execute(() => gate.promise);
    const second = deferred();
    const waiting = track(b.execute(() => second.promise));
    clock.increment(50);
    gate.resolve('a');
    await flush();
    clock.increment(200);
    second.resolve('b');
    await flush();
    expect(waiting.value()).toBe('b');
    expect(b.stats().rejected).toBe(0);
  });

  it('a queued caller whose signal aborts leaves the queue with AbortedError and its place is freed', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ name: 'svc', limit: 1, queue: 1, clock });
    const gate = deferred();
    void b.execute(() => gate.promise);
    const ac = new AbortController();
    let ran = false;
    const waiting = track(b.execute(() => { ran = true; }, ac.signal));
    expect(b.stats().queued).toBe(1);
    ac.abort(new Error('user left'));
    await flush();
    expect(waiting.state()).toBe('rejected');
    expect(waiting.error()).toBeInstanceOf(AbortedError);
    expect((waiting.error() as AbortedError).cause).toEqual(new Error('user left'));
    expect(b.stats()).toMatchObject({ queued: 0, rejected: 0 });
    const next = track(b.execute(() => 'next')); // the freed place is usable
    expect(b.stats().queued).toBe(1);
    gate.resolve('x');
    await flush();
    expect(next.value()).toBe('next');
    expect(ran).toBe(false);
  });

  it('a signal that has already aborted is refused without running the call', async () => {
    const b = createBulkhead({ limit: 1, clock: simulatedClock() });
    const ac = new AbortController();
    ac.abort();
    let ran = false;
    await expect(b.execute(() => { ran = true; }, ac.signal)).rejects.toBeInstanceOf(AbortedError);
    expect(ran).toBe(false);
    expect(b.stats().active).toBe(0);
  });
});

describe('bulkhead mode chart', () => {
  it('goes open → saturated → full → saturated → open with the counts at each transition', async () => {
    const clock = simulatedClock(1_000);
    const b = createBulkhead({ name: 'db', limit: 2, queue: 1, clock });
    const states: BulkheadStateEffect[] = [];
    b.on('state', (s) => states.push(s));
    expect(b.snapshot().value).toBe('open');
    const g = [deferred(), deferred(), deferred()];
    void b.execute(() => g[0]!.promise);
    expect(b.snapshot().value).toBe('open');
    void b.execute(() => g[1]!.promise);
    expect(b.snapshot().value).toBe('saturated'); // a first change is reported at once
    expect(b.snapshot().context).toMatchObject({ active: 2, queued: 0, rejected: 0, changedAtMs: 1_000 });

    void b.execute(() => g[2]!.promise);
    expect(b.stats().queued).toBe(1);
    // further changes within the same clock turn are coalesced into one report on the next turn
    expect(b.snapshot().value).toBe('saturated');
    clock.increment(0);
    expect(b.snapshot().value).toBe('full');
    expect(b.snapshot().context).toMatchObject({ active: 2, queued: 1 });

    await expect(b.execute(() => 'x')).rejects.toBeInstanceOf(BulkheadRejectedError);
    clock.increment(10);
    g[0]!.resolve('a');
    await flush();
    clock.increment(0);
    expect(b.snapshot().value).toBe('saturated');
    expect(b.snapshot().context).toMatchObject({ active: 2, queued: 0, rejected: 1, changedAtMs: 1_010 });
    g[1]!.resolve('b');
    g[2]!.resolve('c');
    await flush();
    clock.increment(0);
    expect(b.snapshot().value).toBe('open');
    // the counts as of the transition: the first slot freed made the bulkhead open
    expect(b.snapshot().context).toMatchObject({ active: 1, queued: 0, rejected: 1 });
    expect(b.stats()).toMatchObject({ active: 0, queued: 0, rejected: 1 });
    expect(states.map((s) => s.state)).toEqual(['saturated', 'full', 'saturated', 'open']);
    expect(states[1]).toMatchObject({ type: 'bulkhead.state', name: 'db', limit: 2, queueCapacity: 1, active: 2, queued: 1 });
  });

  it('without a queue goes from open straight to full and back', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ limit: 1, clock });
    const gate = deferred();
    void b.execute(() => gate.promise);
    expect(b.snapshot().value).toBe('full');
    clock.increment(0);
    gate.resolve('x');
    await flush();
    expect(b.snapshot().value).toBe('open');
  });

  it('a flip-flop at the limit within one turn costs no transition; the chart settles on the next turn', async () => {
    const clock = simulatedClock();
    const b = createBulkhead({ limit: 2, clock });
    const states: string[] = [];
    b.on('state', (s) => states.push(s.state));
    void b.execute(() => deferred().promise);
    for (let i = 0; i < 100; i++) await b.execute(async () => i); // each call fills the last slot and frees it
    expect(states).toEqual(['full']);
    clock.increment(0);
    expect(states).toEqual(['full', 'open']);
    expect(b.snapshot().value).toBe('open');
    expect(b.snapshot().context.active).toBe(1);
  });

  it('the machine alone: LOAD moves it by the counts, ignores counts of the same mode, emits bulkhead.state', () => {
    const clock = simulatedClock();
    const actor = createActor(bulkheadMachine, { clock, input: { name: 'm', limit: 3, queueCapacity: 2, nowMs: 0 } });
    const emitted: BulkheadStateEffect[] = [];
    actor.on('bulkhead.state', (e) => emitted.push(e));
    actor.start();
    const load = (active: number, queued: number) => actor.send({ type: 'LOAD', active, queued, rejected: 0, atMs: 5 });
    load(2, 0);
    expect(actor.getSnapshot().value).toBe('open');
    expect(actor.getSnapshot().context.active).toBe(0); // no transition, context not touched
    load(3, 1);
    expect(actor.getSnapshot().value).toBe('saturated');
    load(3, 2);
    expect(actor.getSnapshot().value).toBe('full');
    load(1, 0);
    expect(actor.getSnapshot().value).toBe('open');
    load(3, 2);
    expect(actor.getSnapshot().value).toBe('full');
    load(3, 0);
    expect(actor.getSnapshot().value).toBe('saturated');
    load(0, 0);
    expect(actor.getSnapshot().value).toBe('open');
    expect(emitted.map((e) => e.state)).toEqual(['saturated', 'full', 'open', 'full', 'saturated', 'open']);
    expect(emitted[0]).toEqual({ type: 'bulkhead.state', name: 'm', state: 'saturated', active: 3, queued: 1, limit: 3, queueCapacity: 2, rejected: 0, atMs: 5 });
  });

  it('bulkheadMode maps counts to modes', () => {
    expect(bulkheadMode(0, 0, 1, 0)).toBe(BulkheadMode.Open);
    expect(bulkheadMode(1, 0, 1, 0)).toBe(BulkheadMode.Full);
    expect(bulkheadMode(1, 0, 1, 1)).toBe(BulkheadMode.Saturated);
    expect(bulkheadMode(1, 1, 1, 1)).toBe(BulkheadMode.Full);
  });
});

describe('one bulkhead per target', () => {
  it('a slow target fills only its own bulkhead', async () => {
    const clock = simulatedClock();
    const bulkheads = createBulkheads({ limit: 2, queue: 1, clock, targets: { search: { limit: 1, queue: 0 } } });
    const slow = bulkheads.for('search');
    expect(bulkheads.for('search')).toBe(slow);
    expect(slow.name).toBe('search');
    expect(slow.stats()).toMatchObject({ limit: 1, queueCapacity: 0 });
    void slow.execute(() => deferred().promise);
    await expect(slow.execute(() => 'x')).rejects.toThrow("bulkhead 'search' is full: 1/1 executing, 0/0 queued");
    const fast = bulkheads.for('payments');
    expect(fast.stats()).toMatchObject({ limit: 2, queueCapacity: 1 });
    await expect(fast.execute(() => 'paid')).resolves.toBe('paid');
    expect(bulkheads.targets()).toEqual(['search', 'payments']);
    // inherited Object properties are not overrides
    expect(bulkheads.for('toString').stats().limit).toBe(2);
  });
});

describe('bulkhead properties', () => {
  const arrival = fc.record({
    atMs: fc.integer({ min: 0, max: 200 }),
    durationMs: fc.integer({ min: 1, max: 80 }),
    fails: fc.boolean(),
    abortAtMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
  });

  it('never runs more than `limit` at once nor queues more than `queue`, under random arrivals and durations', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 5 }),
        fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
        fc.array(arrival, { minLength: 1, maxLength: 40 }),
        async (limit, queue, queueTimeoutMs, arrivals) => {
          const clock = simulatedClock();
          const b = createBulkhead({ limit, queue, clock, ...(queueTimeoutMs !== undefined ? { queueTimeoutMs } : {}) });
          let running = 0;
          let maxRunning = 0;
          const outcomes: string[] = [];
          for (const a of arrivals) {
            clock.setTimeout(() => {
              const ac = new AbortController();
              if (a.abortAtMs !== undefined) clock.setTimeout(() => ac.abort(), a.abortAtMs);
              b.execute(() => {
                running++;
                maxRunning = Math.max(maxRunning, running);
                return new Promise<string>((resolve, reject) => clock.setTimeout(() => {
                  running--;
                  if (a.fails) reject(new Error('failed'));
                  else resolve('ok');
                }, a.durationMs));
              }, ac.signal).then(
                (v) => outcomes.push(v),
                (e: unknown) => outcomes.push(e instanceof BulkheadRejectedError ? e.reason : e instanceof AbortedError ? 'aborted' : 'failed'),
              );
            }, a.atMs);
          }
          for (let t = 0; t <= 700 && outcomes.length < arrivals.length; t++) {
            clock.increment(1);
            await flush(6);
            const s = b.stats();
            expect(s.active).toBeLessThanOrEqual(limit);
            expect(s.queued).toBeLessThanOrEqual(queue);
            expect(running).toBe(s.active);
            // the chart lags the counters by at most one clock turn
            clock.increment(0);
            expect(b.snapshot().value).toBe(bulkheadMode(s.active, s.queued, limit, queue));
          }
          expect(maxRunning).toBeLessThanOrEqual(limit);
          expect(outcomes).toHaveLength(arrivals.length);
          expect(b.stats()).toMatchObject({ active: 0, queued: 0 });
          expect(b.stats().rejected).toBe(outcomes.filter((o) => o === 'full' || o === 'queue-timeout').length);
          if (queueTimeoutMs === undefined) expect(outcomes).not.toContain('queue-timeout');
        },
      ),
      { numRuns: 150 },
    );
  });
});
