/**
 * Retry: attempts, backoff waits and give-ups on the simulated clock, aborts, the retryable
 * predicate, the retry budget, the retry chart's transitions (through the policy and alone), and as
 * properties: delays stay inside the backoff's bounds, and the budget caps the extra load.
 */
import fc from 'fast-check';
import { createActor, type InspectionEvent } from 'xstate';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, nextDelayMs, resolveBackoff, type Backoff, type ResolvedBackoff } from '../../actors/retry/backoff.ts';
import { createRetryBudget, createRetryBudgets, RETRY_BUDGET_SLOTS } from '../../actors/retry/budget.ts';
import { retryMachine, type RetryEffect } from '../../actors/retry/machine.ts';
import { createRetry, defaultRetryable, type RetryEvents, type RetryOptions } from '../../actors/retry/retry.ts';
import { createBulkhead } from '../../actors/bulkhead/bulkhead.ts';
import { wrap } from '../../actors/policy/policy.ts';
import { createRng, simulatedClock, type ManualClock } from '../../framework/clock.ts';
import { AbortedError, AskTimeoutError, BulkheadRejectedError, DecodeError, RetryBudgetExhaustedError } from '../../framework/errors.ts';

/** Let every pending promise reaction run (no timers involved). */
const flush = async (rounds = 20): Promise<void> => {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
};

/** A promise's state after a flush. */
function track<T>(p: Promise<T>): { state: () => 'pending' | 'fulfilled' | 'rejected'; value: () => T | undefined; error: () => unknown } {
  let state: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  let value: T | undefined;
  let error: unknown;
  p.then((v) => { state = 'fulfilled'; value = v; }, (e: unknown) => { state = 'rejected'; error = e; });
  return { state: () => state, value: () => value, error: () => error };
}

/** Records the state values of every retry run, per run, from the XState inspection hook. */
function chartRecorder() {
  const runs = new Map<unknown, string[]>();
  const inspect = (e: InspectionEvent): void => {
    if (e.type !== '@xstate.snapshot') return;
    const value = (e.snapshot as { value?: unknown }).value;
    if (typeof value !== 'string') return;
    const seen = runs.get(e.actorRef) ?? [];
    if (seen.at(-1) !== value) seen.push(value);
    runs.set(e.actorRef, seen);
  };
  return { inspect, runs: () => [...runs.values()] };
}

/** A call that fails `failures` times with `error`, then returns 'ok'; records when each attempt ran. */
function flaky(clock: ManualClock, failures: number, error: () => unknown = () => new Error('flaky')) {
  const at: number[] = [];
  const fn = async (): Promise<string> => {
    at.push(clock.now());
    if (at.length <= failures) throw error();
    return 'ok';
  };
  return { fn, at };
}

const constant = (delayMs: number): Backoff => ({ kind: 'constant', delayMs });

describe('retry options', () => {
  const cases: Array<[string, RetryOptions | Record<string, unknown>, RegExp]> = [
    ['maxAttempts 0', { maxAttempts: 0 }, /option maxAttempts must be an integer ≥ 1, got 0/],
    ['maxAttempts 2.5', { maxAttempts: 2.5 }, /option maxAttempts .* got 2\.5/],
    ['maxAttempts NaN', { maxAttempts: Number.NaN }, /option maxAttempts .* got NaN/],
    ['name empty', { name: '' }, /option name must be a non-empty string, got ''/],
    ['retryable not a function', { retryable: true }, /option retryable must be a function, got true/],
    ['backoff not an object', { backoff: 5 }, /option backoff must be an object, got 5/],
    ['backoff.kind unknown', { backoff: { kind: 'linear' } }, /option backoff.kind must be 'constant' or 'exponential', got 'linear'/],
    ['backoff.delayMs -1', { backoff: { kind: 'constant', delayMs: -1 } }, /option backoff.delayMs must be a finite number ≥ 0, got -1/],
    ['backoff.delayMs Infinity', { backoff: { kind: 'constant', delayMs: Infinity } }, /option backoff.delayMs .* got Infinity/],
    ['backoff.initialMs 0', { backoff: { kind: 'exponential', initialMs: 0, maxMs: 10 } }, /option backoff.initialMs must be a finite number ≥ 1, got 0/],
    ['backoff.maxMs < initialMs', { backoff: { kind: 'exponential', initialMs: 100, maxMs: 50 } }, /option backoff.maxMs must be a finite number ≥ backoff.initialMs \(100\), got 50/],
    ['backoff.factor 0.5', { backoff: { kind: 'exponential', initialMs: 1, maxMs: 10, factor: 0.5 } }, /option backoff.factor must be a finite number ≥ 1, got 0\.5/],
    ['backoff.jitter unknown', { backoff: { kind: 'exponential', initialMs: 1, maxMs: 10, jitter: 'half' } }, /option backoff.jitter must be one of 'none', 'full', 'decorrelated', got 'half'/],
  ];
  for (const [what, options, message] of cases) {
    it(`rejects ${what} with a RangeError naming the option and value`, () => {
      expect(() => createRetry(options as RetryOptions)).toThrow(RangeError);
      expect(() => createRetry(options as RetryOptions)).toThrow(message);
    });
  }

  const budgetCases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['ratio -0.1', { ratio: -0.1 }, /option ratio must be a finite number ≥ 0, got -0\.1/],
    ['ratio NaN', { ratio: Number.NaN }, /option ratio .* got NaN/],
    ['ratio Infinity', { ratio: Infinity }, /option ratio .* got Infinity/],
    ['minRetriesPerSecond -1', { minRetriesPerSecond: -1 }, /option minRetriesPerSecond must be a finite number ≥ 0, got -1/],
    ['windowMs 5', { windowMs: 5 }, /option windowMs must be an integer ≥ 10, got 5/],
    ['windowMs 100.5', { windowMs: 100.5 }, /option windowMs .* got 100\.5/],
    ['name empty', { name: '' }, /option name must be a non-empty string, got ''/],
  ];
  for (const [what, options, message] of budgetCases) {
    it(`retry budget: rejects ${what} with a RangeError naming the option and value`, () => {
      expect(() => createRetryBudget(options)).toThrow(RangeError);
      expect(() => createRetryBudget(options)).toThrow(message);
      expect(() => createRetryBudgets(options)).toThrow(message);
    });
  }

  it('defaults: 3 attempts, exponential backoff with full jitter from 100 ms to 10 s', () => {
    expect(resolveBackoff(undefined)).toEqual(DEFAULT_BACKOFF);
    expect(DEFAULT_BACKOFF).toEqual({ kind: 'exponential', initialMs: 100, maxMs: 10_000, factor: 2, jitter: 'full' });
    expect(resolveBackoff({ kind: 'exponential', initialMs: 5, maxMs: 50 })).toEqual({ kind: 'exponential', initialMs: 5, maxMs: 50, factor: 2, jitter: 'full' });
    const r = createRetry();
    expect(r.kind).toBe('retry');
    expect(r.name).toBe('retry');
  });
});

describe('retry attempts and waits (simulated clock)', () => {
  it('a first-attempt success returns at once and never starts a retry chart', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const r = createRetry({ clock, rng: createRng(1), inspect: chart.inspect });
    const attempts: number[] = [];
    r.on('attempt', (e) => attempts.push(e.attempt));
    await expect(r.execute(async () => 'v')).resolves.toBe('v');
    await expect(r.execute(() => 7)).resolves.toBe(7);
    expect(chart.runs()).toEqual([]);
    expect(attempts).toEqual([1, 1]);
  });

  it('retries after each wait on the clock, and every attempt and wait shows in the chart', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const r = createRetry({ maxAttempts: 4, backoff: constant(100), clock, inspect: chart.inspect });
    const events: string[] = [];
    r.on('attempt', (e) => events.push(`attempt ${e.attempt}`));
    r.on('retry', (e) => events.push(`retry after ${e.attempt} in ${e.delayMs}: ${(e.error as Error).message}`));
    r.on('giveUp', () => events.push('giveUp'));
    const call = flaky(clock, 2);
    const result = track(r.execute(call.fn));
    await flush();
    expect(call.at).toEqual([0]);
    expect(chart.runs()).toEqual([['attempting', 'waiting']]);
    clock.increment(99);
    await flush();
    expect(call.at).toEqual([0]);
    clock.increment(1);
    await flush();
    expect(call.at).toEqual([0, 100]);
    clock.increment(100);
    await flush();
    expect(call.at).toEqual([0, 100, 200]);
    expect(result.value()).toBe('ok');
    expect(chart.runs()).toEqual([['attempting', 'waiting', 'attempting', 'waiting', 'attempting', 'succeeded']]);
    expect(events).toEqual(['attempt 1', 'retry after 1 in 100: flaky', 'attempt 2', 'retry after 2 in 100: flaky', 'attempt 3']);
  });

  it('gives up after maxAttempts with the last error as is', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const r = createRetry({ maxAttempts: 3, backoff: constant(10), clock, inspect: chart.inspect });
    const giveUps: Array<RetryEvents['giveUp']> = [];
    r.on('giveUp', (e) => giveUps.push(e));
    let n = 0;
    const result = track(r.execute(async () => { throw new Error(`failure ${++n}`); }));
    for (let i = 0; i < 5; i++) {
      clock.increment(10);
      await flush();
    }
    expect(n).toBe(3);
    expect(result.error()).toEqual(new Error('failure 3'));
    expect(giveUps).toEqual([{ reason: 'attempts-exhausted', attempts: 3, error: new Error('failure 3') }]);
    expect(chart.runs()).toEqual([['attempting', 'waiting', 'attempting', 'waiting', 'attempting', 'failed']]);
  });

  it('maxAttempts 1 never retries', async () => {
    const clock = simulatedClock();
    const r = createRetry({ maxAttempts: 1, clock });
    const call = flaky(clock, 1);
    await expect(r.execute(call.fn)).rejects.toThrow('flaky');
    expect(call.at).toEqual([0]);
  });

  it('a call that throws synchronously is retried like one that rejects', async () => {
    const clock = simulatedClock();
    const r = createRetry({ maxAttempts: 2, backoff: constant(0), clock });
    let n = 0;
    const result = track(r.execute(() => {
      if (++n === 1) throw new Error('sync');
      return 'second';
    }));
    await flush();
    clock.increment(0);
    await flush();
    expect(result.value()).toBe('second');
  });
});

describe('retryable predicate', () => {
  it('the default retries troupe errors flagged retryable and any other error, not the rest', () => {
    expect(defaultRetryable(new AskTimeoutError('a/b', 100))).toBe(true);
    expect(defaultRetryable(new DecodeError('s', 'bad'))).toBe(false);
    expect(defaultRetryable(new AbortedError('x'))).toBe(false);
    expect(defaultRetryable(new Error('whatever'))).toBe(true);
    expect(defaultRetryable('a string')).toBe(true);
  });

  it('a non-retryable error ends the execution after one attempt', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const r = createRetry({ maxAttempts: 5, backoff: constant(1), clock, inspect: chart.inspect });
    const giveUps: Array<RetryEvents['giveUp']> = [];
    r.on('giveUp', (e) => giveUps.push(e));
    const call = flaky(clock, 5, () => new DecodeError('subj', 'garbage'));
    await expect(r.execute(call.fn)).rejects.toBeInstanceOf(DecodeError);
    expect(call.at).toHaveLength(1);
    expect(giveUps[0]).toMatchObject({ reason: 'not-retryable', attempts: 1 });
    expect(chart.runs()).toEqual([['attempting', 'failed']]);
  });

  it('a custom predicate decides; one that throws ends the execution with what it threw', async () => {
    const clock = simulatedClock();
    const r = createRetry({ maxAttempts: 5, backoff: constant(0), clock, retryable: (e) => (e as Error).message === 'again' });
    const call = flaky(clock, 1, () => new Error('again'));
    const ok = track(r.execute(call.fn));
    await flush();
    clock.increment(0);
    await flush();
    expect(ok.value()).toBe('ok');
    await expect(r.execute(async () => { throw new Error('other'); })).rejects.toThrow('other');

    const broken = createRetry({ clock, retryable: () => { throw new Error('predicate bug'); } });
    await expect(broken.execute(async () => { throw new Error('x'); })).rejects.toThrow('predicate bug');
  });
});

describe('retry and abort', () => {
  it('aborting during a wait rejects at once with AbortedError and no further attempt runs', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const r = createRetry({ maxAttempts: 5, backoff: constant(1_000), clock, inspect: chart.inspect });
    const giveUps: Array<RetryEvents['giveUp']> = [];
    r.on('giveUp', (e) => giveUps.push(e));
    const call = flaky(clock, 10);
    const ac = new AbortController();
    const result = track(r.execute(call.fn, ac.signal));
    await flush();
    clock.increment(500);
    ac.abort('caller gone');
    await flush();
    expect(result.state()).toBe('rejected');
    expect(result.error()).toBeInstanceOf(AbortedError);
    expect((result.error() as AbortedError).cause).toBe('caller gone');
    clock.increment(10_000);
    await flush();
    expect(call.at).toEqual([0]);
    expect(giveUps[0]).toMatchObject({ reason: 'aborted', attempts: 1 });
    expect(chart.runs()).toEqual([['attempting', 'waiting', 'aborted']]);
  });

  it('an abort during an attempt waits for it: success is returned, failure becomes AbortedError', async () => {
    const clock = simulatedClock();
    const r = createRetry({ maxAttempts: 5, backoff: constant(10), clock });
    const ac1 = new AbortController();
    let seen: AbortSignal | undefined;
    const ok = track(r.execute(async ({ signal }) => { seen = signal; ac1.abort(); return 'done anyway'; }, ac1.signal));
    await flush();
    expect(ok.value()).toBe('done anyway');
    expect(seen).toBe(ac1.signal);

    const ac2 = new AbortController();
    let n = 0;
    const failed = track(r.execute(async () => { n++; ac2.abort(); throw new Error('x'); }, ac2.signal));
    await flush();
    expect(failed.error()).toBeInstanceOf(AbortedError);
    clock.increment(100);
    await flush();
    expect(n).toBe(1);
  });

  it('a signal that has already aborted is refused without running the call', async () => {
    const r = createRetry({ clock: simulatedClock() });
    const ac = new AbortController();
    ac.abort();
    let ran = false;
    await expect(r.execute(() => { ran = true; }, ac.signal)).rejects.toBeInstanceOf(AbortedError);
    expect(ran).toBe(false);
  });
});

describe('retry budget', () => {
  it('each first attempt deposits ratio tokens, each retry withdraws one; tokens expire after the window', () => {
    const clock = simulatedClock();
    const budget = createRetryBudget({ name: 'svc', ratio: 0.1, minRetriesPerSecond: 0, windowMs: 1_000, clock });
    for (let i = 0; i < 9; i++) budget.deposit();
    expect(budget.available()).toBe(0);
    expect(budget.tryWithdraw()).toBe(false);
    budget.deposit(); // ten deposits of 0.1 are exactly one token
    expect(budget.available()).toBe(1);
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    for (let i = 0; i < 20; i++) budget.deposit();
    expect(budget.available()).toBe(2);
    clock.increment(999);
    expect(budget.available()).toBe(2);
    clock.increment(1);
    expect(budget.available()).toBe(0); // the deposits have left the window
  });

  it('the floor allows minRetriesPerSecond × window without traffic', () => {
    const clock = simulatedClock();
    const budget = createRetryBudget({ ratio: 0, minRetriesPerSecond: 2, windowMs: 3_000, clock });
    expect(budget.available()).toBe(6);
    for (let i = 0; i < 6; i++) expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
    clock.increment(3_000);
    expect(budget.available()).toBe(6);
  });

  it('withdraw() takes a token even when none is left; the overdraft delays later retries', () => {
    const clock = simulatedClock();
    const budget = createRetryBudget({ ratio: 1, minRetriesPerSecond: 0, windowMs: 1_000, clock });
    budget.withdraw();
    expect(budget.available()).toBe(0);
    budget.deposit();
    expect(budget.available()).toBe(0); // the deposit only paid the overdraft back
    budget.deposit();
    expect(budget.tryWithdraw()).toBe(true);
  });

  it('an empty budget ends the execution with RetryBudgetExhaustedError (cause: the last error)', async () => {
    const clock = simulatedClock();
    const chart = chartRecorder();
    const budgets = createRetryBudgets({ ratio: 0.5, minRetriesPerSecond: 0, clock });
    const budget = budgets.for('payments');
    expect(budgets.for('payments')).toBe(budget);
    expect(budgets.for('search')).not.toBe(budget);
    expect(budgets.targets()).toEqual(['payments', 'search']);
    const r = createRetry({ maxAttempts: 3, backoff: constant(10), budget, clock, inspect: chart.inspect });
    expect(r.name).toBe('payments');
    const giveUps: Array<RetryEvents['giveUp']> = [];
    r.on('giveUp', (e) => giveUps.push(e));
    const first = track(r.execute(async () => { throw new Error('down'); })); // deposits 0.5: no retry
    await flush();
    const err = first.error() as RetryBudgetExhaustedError;
    expect(err).toBeInstanceOf(RetryBudgetExhaustedError);
    expect(err).toMatchObject({ target: 'payments', attempts: 1, cause: new Error('down') });
    expect(err.message).toBe("retry budget for 'payments' is exhausted after 1 attempt(s)");
    expect(giveUps[0]).toMatchObject({ reason: 'budget-exhausted', attempts: 1 });

    const second = track(r.execute(async () => { throw new Error('still down'); })); // 1.0: one retry
    await flush();
    clock.increment(10);
    await flush();
    expect((second.error() as RetryBudgetExhaustedError).attempts).toBe(2);
    expect(budget.available()).toBe(0);
    expect(chart.runs()).toEqual([
      ['attempting', 'budgetExhausted'],
      ['attempting', 'waiting', 'attempting', 'budgetExhausted'],
    ]);
  });
});

describe('the retry chart alone', () => {
  const start = (clock: ManualClock, maxAttempts: number, backoff: ResolvedBackoff) => {
    const actor = createActor(retryMachine, { clock, input: { name: 't', maxAttempts, backoff } });
    const effects: RetryEffect[] = [];
    actor.on('*', (e) => effects.push(e));
    actor.start();
    return { actor, effects };
  };
  const failed = (over: Partial<{ retryable: boolean; budgetAvailable: boolean; aborted: boolean; random: number }> = {}) => ({
    type: 'ATTEMPT_FAILED' as const, error: 'Error: x', retryable: true, budgetAvailable: true, aborted: false, random: 0.5, ...over,
  });

  it('attempting → waiting (after the backoff delay on the clock) → attempting → succeeded', () => {
    const clock = simulatedClock();
    const { actor, effects } = start(clock, 3, { kind: 'exponential', initialMs: 100, maxMs: 1_000, factor: 2, jitter: 'none' });
    expect(actor.getSnapshot().value).toBe('attempting');
    actor.send(failed());
    expect(actor.getSnapshot().value).toBe('waiting');
    expect(actor.getSnapshot().context).toMatchObject({ attempt: 1, delayMs: 100, lastError: 'Error: x' });
    clock.increment(99);
    expect(actor.getSnapshot().value).toBe('waiting');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('attempting');
    expect(actor.getSnapshot().context.attempt).toBe(2);
    actor.send({ type: 'ABORT' }); // ignored while an attempt runs
    expect(actor.getSnapshot().value).toBe('attempting');
    actor.send(failed());
    expect(actor.getSnapshot().context.delayMs).toBe(200);
    clock.increment(200);
    actor.send({ type: 'ATTEMPT_SUCCEEDED' });
    expect(actor.getSnapshot().value).toBe('succeeded');
    expect(actor.getSnapshot().status).toBe('done');
    expect(actor.getSnapshot().output).toEqual({ attempts: 3, reason: undefined, delaysMs: [100, 200] });
    expect(effects).toEqual([
      { type: 'retry.wait', attempt: 1, delayMs: 100 },
      { type: 'retry.attempt', attempt: 2 },
      { type: 'retry.wait', attempt: 2, delayMs: 200 },
      { type: 'retry.attempt', attempt: 3 },
      { type: 'retry.done', outcome: 'succeeded', attempts: 3, reason: undefined },
    ]);
  });

  it('decides in order: aborted, not retryable, attempts exhausted, budget empty', () => {
    const clock = simulatedClock();
    const b: ResolvedBackoff = { kind: 'constant', delayMs: 5 };
    const cases: Array<[Parameters<typeof failed>[0], number, string, string]> = [
      [{ aborted: true, retryable: false, budgetAvailable: false }, 3, 'aborted', 'aborted'],
      [{ retryable: false, budgetAvailable: false }, 3, 'failed', 'not-retryable'],
      [{ budgetAvailable: false }, 1, 'failed', 'attempts-exhausted'],
      [{ budgetAvailable: false }, 3, 'budgetExhausted', 'budget-exhausted'],
    ];
    for (const [facts, maxAttempts, state, reason] of cases) {
      const { actor, effects } = start(clock, maxAttempts, b);
      actor.send(failed(facts));
      expect(actor.getSnapshot().value).toBe(state);
      expect(actor.getSnapshot().context.reason).toBe(reason);
      expect(effects.at(-1)).toEqual({ type: 'retry.done', outcome: state, attempts: 1, reason });
    }
  });

  it('ABORT while waiting cancels the pending delay', () => {
    const clock = simulatedClock();
    const { actor, effects } = start(clock, 3, { kind: 'constant', delayMs: 50 });
    actor.send(failed());
    actor.send({ type: 'ABORT' });
    expect(actor.getSnapshot().value).toBe('aborted');
    clock.increment(100);
    expect(effects.filter((e) => e.type === 'retry.attempt')).toEqual([]);
  });
});

describe('backoff', () => {
  it('constant and exponential without jitter give exact delays, capped at maxMs', () => {
    expect([1, 2, 3].map((n) => nextDelayMs({ kind: 'constant', delayMs: 7 }, n, 0, 0.9))).toEqual([7, 7, 7]);
    const exp: ResolvedBackoff = { kind: 'exponential', initialMs: 10, maxMs: 100, factor: 3, jitter: 'none' };
    expect([1, 2, 3, 4, 60].map((n) => nextDelayMs(exp, n, 0, 0.5))).toEqual([10, 30, 90, 100, 100]);
    expect(nextDelayMs({ ...exp, factor: 1e6 }, 2_000, 0, 0.5)).toBe(100); // overflow stays at the cap
  });

  it('the same seed gives the same jittered delays', async () => {
    const delays = async (seed: number): Promise<number[]> => {
      const clock = simulatedClock();
      const r = createRetry({ maxAttempts: 6, backoff: { kind: 'exponential', initialMs: 10, maxMs: 1_000, jitter: 'decorrelated' }, clock, rng: createRng(seed) });
      const out: number[] = [];
      r.on('retry', (e) => out.push(e.delayMs));
      void r.execute(async () => { throw new Error('x'); }).catch(() => undefined);
      for (let i = 0; i < 10; i++) {
        await flush();
        clock.increment(1_000);
      }
      return out;
    };
    const a = await delays(7);
    expect(a).toHaveLength(5);
    expect(await delays(7)).toEqual(a);
    expect(await delays(8)).not.toEqual(a);
  });

  it('property: every delay stays inside the configured bounds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 1, max: 4, noNaN: true }),
        fc.constantFrom('none', 'full', 'decorrelated' as const),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 30 }),
        (initialMs, extraMs, factor, jitter, randoms) => {
          const b: ResolvedBackoff = { kind: 'exponential', initialMs, maxMs: initialMs + extraMs, factor, jitter };
          let prev = 0;
          randoms.forEach((u, i) => {
            const retry = i + 1;
            const d = nextDelayMs(b, retry, prev, u);
            const cap = Math.min(b.maxMs, initialMs * factor ** (retry - 1));
            if (jitter === 'none') expect(d).toBe(cap);
            if (jitter === 'full') {
              expect(d).toBeGreaterThanOrEqual(0);
              expect(d).toBeLessThanOrEqual(cap);
            }
            if (jitter === 'decorrelated') {
              expect(d).toBeGreaterThanOrEqual(initialMs);
              expect(d).toBeLessThanOrEqual(Math.min(b.maxMs, Math.max(initialMs, prev) * 3));
            }
            expect(d).toBeLessThanOrEqual(b.maxMs);
            prev = d;
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('property: through the policy, each retry starts exactly its delay after the failure, within bounds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.constantFrom('none', 'full', 'decorrelated' as const),
        fc.integer({ min: 2, max: 6 }),
        fc.integer(),
        async (initialMs, extraMs, jitter, maxAttempts, seed) => {
          const clock = simulatedClock();
          const maxMs = initialMs + extraMs;
          const r = createRetry({ maxAttempts, backoff: { kind: 'exponential', initialMs, maxMs, jitter }, clock, rng: createRng(seed) });
          const delays: number[] = [];
          r.on('retry', (e) => delays.push(e.delayMs));
          const call = flaky(clock, Infinity);
          const result = track(r.execute(call.fn));
          for (let i = 0; i < maxAttempts; i++) {
            await flush();
            if (result.state() !== 'pending') break;
            clock.increment(delays.at(-1)!); // exactly the announced wait
          }
          expect(result.state()).toBe('rejected');
          expect(call.at).toHaveLength(maxAttempts);
          expect(delays).toHaveLength(maxAttempts - 1);
          for (const [i, d] of delays.entries()) {
            expect(d).toBeGreaterThanOrEqual(jitter === 'decorrelated' ? initialMs : 0);
            expect(d).toBeLessThanOrEqual(maxMs);
            expect(call.at[i + 1]! - call.at[i]!).toBe(d);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('retry budget properties', () => {
  it('a retry storm against a failing target adds at most ratio × first attempts + the floor', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 60 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 2, max: 8 }),
        async (callers, ratio, minRetriesPerSecond, maxAttempts) => {
          const clock = simulatedClock();
          const windowMs = 1_000;
          const budget = createRetryBudget({ ratio, minRetriesPerSecond, windowMs, clock });
          const r = createRetry({ maxAttempts, backoff: constant(0), budget, clock });
          let attempts = 0;
          const all = Array.from({ length: callers }, () => r.execute(async () => { attempts++; throw new Error('down'); }).catch((e: unknown) => e));
          // time never moves: every retry happens within one window
          for (let i = 0; i < maxAttempts + 2; i++) {
            await flush();
            clock.increment(0);
          }
          const outcomes = await Promise.all(all);
          const retries = attempts - callers;
          expect(retries).toBeLessThanOrEqual(ratio * callers + minRetriesPerSecond * (windowMs / 1_000) + 1e-9);
          // and the budget is spent, not just refused (ratio is kept to 6 decimals, hence the 1e-4)
          expect(retries).toBeGreaterThanOrEqual(Math.min(callers * (maxAttempts - 1), Math.floor(ratio * callers + minRetriesPerSecond - 1e-4)));
          const exhausted = outcomes.filter((e) => e instanceof RetryBudgetExhaustedError).length;
          if (retries < callers * (maxAttempts - 1)) expect(exhausted).toBeGreaterThan(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('at every moment, retries in the current window ≤ ratio × first attempts in it + the floor', () => {
    const op = fc.oneof(
      fc.constant({ kind: 'deposit' as const }),
      fc.constant({ kind: 'withdraw' as const }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 700 }) }),
    );
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 50 }).map((k) => k * RETRY_BUDGET_SLOTS * 10),
        fc.array(op, { maxLength: 300 }),
        (ratio, minRetriesPerSecond, windowMs, ops) => {
          const clock = simulatedClock();
          const budget = createRetryBudget({ ratio, minRetriesPerSecond, windowMs, clock });
          const slotMs = windowMs / RETRY_BUDGET_SLOTS;
          const log: Array<{ atMs: number; kind: 'deposit' | 'withdraw' }> = [];
          for (const o of ops) {
            if (o.kind === 'advance') clock.increment(o.ms);
            else if (o.kind === 'deposit') {
              budget.deposit();
              log.push({ atMs: clock.now(), kind: 'deposit' });
            } else if (budget.tryWithdraw()) {
              log.push({ atMs: clock.now(), kind: 'withdraw' });
              const windowStart = (Math.floor(clock.now() / slotMs) - RETRY_BUDGET_SLOTS + 1) * slotMs;
              const inWindow = log.filter((e) => e.atMs >= windowStart);
              const withdrawals = inWindow.filter((e) => e.kind === 'withdraw').length;
              const deposits = inWindow.length - withdrawals;
              expect(withdrawals).toBeLessThanOrEqual(ratio * deposits + minRetriesPerSecond * (windowMs / 1_000) + 1e-9);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('retry composed with a bulkhead', () => {
  it('wrap(retry, bulkhead): a full bulkhead is retryable, the retry gets in once a slot frees', async () => {
    const clock = simulatedClock();
    const bulkhead = createBulkhead({ name: 'db', limit: 1, clock });
    const retry = createRetry({ maxAttempts: 3, backoff: constant(50), clock });
    const retried: unknown[] = [];
    retry.on('retry', (e) => retried.push(e.error));
    let release!: () => void;
    void bulkhead.execute(() => new Promise<void>((r) => { release = r; }));
    const result = track(wrap(retry, bulkhead).execute(async () => 'in'));
    await flush();
    expect(retried).toHaveLength(1);
    expect(retried[0]).toBeInstanceOf(BulkheadRejectedError);
    release();
    await flush();
    clock.increment(50);
    await flush();
    expect(result.value()).toBe('in');
  });
});
