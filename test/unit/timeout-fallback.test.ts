/**
 * Timeout (aggressive and cooperative), fallback, and wrap's composition order — on a simulated clock.
 */
import { describe, expect, it } from 'vitest';
import { wrap, type Policy } from '../../actors/policy/policy.ts';
import { fallback, timeout } from '../../actors/policy/timeout.ts';
import { simulatedClock } from '../../framework/clock.ts';
import { AbortedError, CallTimeoutError } from '../../framework/errors.ts';

const flush = async (): Promise<void> => { for (let i = 0; i < 10; i++) await Promise.resolve(); };

describe('timeout', () => {
  it('aggressive: rejects exactly at timeoutMs and fires the call\'s signal, even if the call ignores it', async () => {
    const clock = simulatedClock();
    const t = timeout({ timeoutMs: 100, clock });
    let seen: AbortSignal | undefined;
    let settled = false;
    const p = t.execute(({ signal }) => { seen = signal; return new Promise<string>(() => undefined); }).finally(() => { settled = true; });
    clock.increment(99);
    await flush();
    expect(settled).toBe(false);
    expect(seen!.aborted).toBe(false);
    clock.increment(1);
    await expect(p).rejects.toBeInstanceOf(CallTimeoutError);
    expect(seen!.aborted).toBe(true);
  });

  it('a call that finishes in time returns its value and leaves no timer behind', async () => {
    const clock = simulatedClock();
    const t = timeout({ timeoutMs: 100, clock });
    await expect(t.execute(async () => 7)).resolves.toBe(7);
    clock.increment(1_000); // the timer was cleared: nothing fires
  });

  it('cooperative: fires the signal and waits; a call that then fails becomes CallTimeoutError, one that succeeds is returned', async () => {
    const clock = simulatedClock();
    const t = timeout({ timeoutMs: 50, strategy: 'cooperative', clock });
    const honours = t.execute(({ signal }) => new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')))));
    const finishesAnyway = t.execute(({ signal }) => new Promise<string>((resolve) => signal.addEventListener('abort', () => clock.setTimeout(() => resolve('late but done'), 10))));
    clock.increment(50);
    const err = await honours.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallTimeoutError);
    expect((err as Error).cause).toMatchObject({ message: 'stopped' });
    clock.increment(10);
    await expect(finishesAnyway).resolves.toBe('late but done');
  });

  it('the caller\'s abort reaches the call; an already aborted signal is refused', async () => {
    const clock = simulatedClock();
    const t = timeout({ timeoutMs: 100, clock });
    const ac = new AbortController();
    let inner: AbortSignal | undefined;
    const p = t.execute(({ signal }) => { inner = signal; return new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))); }, ac.signal);
    ac.abort(new Error('user left'));
    await expect(p).rejects.toThrow('user left');
    expect(inner!.aborted).toBe(true);
    await expect(t.execute(async () => 1, ac.signal)).rejects.toBeInstanceOf(AbortedError);
  });

  it.each([[0], [-5], [Number.NaN], [Number.POSITIVE_INFINITY]])('timeoutMs %s → RangeError naming it', (v) => {
    expect(() => timeout({ timeoutMs: v })).toThrow(/timeout option timeoutMs must be a finite number > 0/);
  });

  it('a bad strategy → RangeError naming it', () => {
    expect(() => timeout({ timeoutMs: 5, strategy: 'eager' as never })).toThrow(/timeout option strategy must be 'aggressive' or 'cooperative', got "eager"/);
  });
});

describe('fallback and wrap', () => {
  it('fallback replaces failures its predicate accepts, and only those', async () => {
    class Missing extends Error {}
    const f = fallback({ fallback: (e: unknown) => `fallback for ${(e as Error).message}`, when: (e) => e instanceof Missing });
    await expect(f.execute(async () => { throw new Missing('x'); })).resolves.toBe('fallback for x');
    await expect(f.execute(async () => { throw new Error('other'); })).rejects.toThrow('other');
    await expect(f.execute(async () => 'fine')).resolves.toBe('fine');
  });

  it('wrap runs policies outermost first', async () => {
    const log: string[] = [];
    const tracer = (name: string): Policy => ({
      kind: name,
      async execute(fn, signal) {
        log.push(`${name}>`);
        try { return await fn({ signal: signal ?? new AbortController().signal }); } finally { log.push(`<${name}`); }
      },
    });
    await wrap(tracer('retry'), tracer('breaker'), tracer('bulkhead')).execute(async () => { log.push('call'); });
    expect(log).toEqual(['retry>', 'breaker>', 'bulkhead>', 'call', '<bulkhead', '<breaker', '<retry']);
    expect(() => wrap()).toThrow(RangeError);
  });
});
