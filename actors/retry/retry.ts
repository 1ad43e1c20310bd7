/**
 * Retry: run a call again when it fails with a retryable error, up to `maxAttempts` attempts in
 * all, waiting between attempts as the backoff says, within a per-target retry budget.
 *
 * A first attempt that succeeds costs no XState work — the hot path is one call and one promise.
 * An execution whose first attempt fails gets a run of {@link retryMachine}, whose states show
 * every attempt and wait; the policy carries out what the chart emits.
 */
import { createActor, type ActorOptions, type AnyActorLogic } from 'xstate';
import { createRng, entropySeed, realClock, type Clock, type Rng } from '../../framework/clock.ts';
import { AbortedError, RetryBudgetExhaustedError, TroupeError } from '../../framework/errors.ts';
import { NEVER_ABORTED, type Policy, type PolicyContext, type Protected } from '../policy/policy.ts';
import { isJittered, resolveBackoff, type Backoff, type ResolvedBackoff } from './backoff.ts';
import type { RetryBudget } from './budget.ts';
import { GiveUpReason, retryMachine, type RetryEvent } from './machine.ts';

export const DEFAULT_RETRY_NAME = 'retry';
/** Attempts in all, the first included: the first attempt and two retries. */
export const DEFAULT_RETRY_MAX_ATTEMPTS = 3;

/**
 * The default retry predicate: a troupe error is retried when its `retryable` flag says so
 * (`AskTimeoutError` yes, `DecodeError` no, …); any other error is retried, because a policy cannot
 * know what a third-party client's errors mean and most of them are transport failures. Pass your
 * own `retryable` to narrow it.
 */
export const defaultRetryable = (err: unknown): boolean => (err instanceof TroupeError ? err.retryable : true);

/** Options of {@link createRetry}. */
export interface RetryOptions {
  /** Name for errors, logs and the inspector (usually the target). @default the budget's name, else 'retry' */
  name?: string;
  /** Attempts in all, the first included; an integer ≥ 1 (1 = never retry). @default 3 */
  maxAttempts?: number;
  /** Wait between attempts. @default exponential, 100 ms doubling up to 10 s, full jitter */
  backoff?: Backoff;
  /** Whether a failure is worth another attempt. Must not throw. @default {@link defaultRetryable} */
  retryable?: (err: unknown) => boolean;
  /** The target's retry budget, shared with every other retry policy calling it. @default none (unlimited) */
  budget?: RetryBudget;
  /** Time source of the waits. @default realClock() */
  clock?: Clock;
  /** Randomness for jitter. @default createRng(entropySeed()) */
  rng?: Rng;
  /** XState inspection observer passed to every retry run (the inspector, tests). */
  inspect?: ActorOptions<AnyActorLogic>['inspect'];
}

/** {@link RetryOptions} after defaults and validation. */
export interface ResolvedRetryOptions {
  readonly name: string;
  readonly maxAttempts: number;
  readonly backoff: ResolvedBackoff;
  readonly retryable: (err: unknown) => boolean;
  readonly budget: RetryBudget | undefined;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly inspect: ActorOptions<AnyActorLogic>['inspect'];
}

/** What `on(event, listener)` delivers, by event name. */
export interface RetryEvents {
  /** An attempt starts (1 for the first). */
  attempt: { readonly attempt: number };
  /** Attempt `attempt` failed and the next one follows after `delayMs`. */
  retry: { readonly attempt: number; readonly delayMs: number; readonly error: unknown };
  /** The execution failed for good: `error` is the last attempt's error. */
  giveUp: { readonly reason: GiveUpReason; readonly attempts: number; readonly error: unknown };
}

/**
 * A retry policy.
 *
 * Guarantees: at most `maxAttempts` attempts per execution; a retry only after a failure the
 * predicate calls retryable; every wait is within the backoff's bounds and runs on the injected
 * clock; with a budget, a retry only when the budget has a token; a caller's abort ends a wait at
 * once with `AbortedError`, and no attempt starts after the caller aborted. Outcomes: the first
 * success's value; the last error as is (not retryable, or attempts exhausted);
 * `RetryBudgetExhaustedError` (cause: the last error); `AbortedError`.
 *
 * Does NOT guarantee: that a running attempt stops on abort (it gets the signal; the retry waits for
 * it to settle); idempotency — only retry calls that are safe to repeat.
 */
export interface Retry extends Policy {
  readonly kind: 'retry';
  readonly name: string;
  execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T>;
  /** Listen to attempts, retries and give-ups; returns the function that stops listening. Listeners must not throw. */
  on<E extends keyof RetryEvents>(event: E, listener: (payload: RetryEvents[E]) => void): () => void;
}

function fail(option: string, expected: string, value: unknown): never {
  throw new RangeError(`option ${option} must be ${expected}, got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
}

/** Fill defaults and validate; throws `RangeError` naming the bad option and its value. */
export function resolveRetryOptions(options: RetryOptions = {}): ResolvedRetryOptions {
  const name = options.name ?? options.budget?.name ?? DEFAULT_RETRY_NAME;
  if (typeof name !== 'string' || name.length === 0) fail('name', 'a non-empty string', name);
  const maxAttempts = options.maxAttempts ?? DEFAULT_RETRY_MAX_ATTEMPTS;
  if (typeof maxAttempts !== 'number' || !Number.isInteger(maxAttempts) || maxAttempts < 1) fail('maxAttempts', 'an integer ≥ 1', maxAttempts);
  const retryable = options.retryable ?? defaultRetryable;
  if (typeof retryable !== 'function') fail('retryable', 'a function', retryable);
  return {
    name,
    maxAttempts,
    backoff: resolveBackoff(options.backoff),
    retryable,
    budget: options.budget,
    clock: options.clock ?? realClock(),
    rng: options.rng ?? createRng(entropySeed()),
    inspect: options.inspect,
  };
}

const NEVER_CONTEXT: PolicyContext = { signal: NEVER_ABORTED };

const isThenable = <T>(x: PromiseLike<T> | T): x is PromiseLike<T> =>
  x !== null && (typeof x === 'object' || typeof x === 'function') && typeof (x as { then?: unknown }).then === 'function';

function describe(err: unknown): string {
  try {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  } catch {
    return '(unprintable error)';
  }
}

class RetryImpl implements Retry {
  readonly kind = 'retry' as const;
  readonly name: string;
  private readonly o: ResolvedRetryOptions;
  private readonly jittered: boolean;
  private readonly attemptListeners: Array<(e: RetryEvents['attempt']) => void> = [];
  private readonly retryListeners: Array<(e: RetryEvents['retry']) => void> = [];
  private readonly giveUpListeners: Array<(e: RetryEvents['giveUp']) => void> = [];

  constructor(o: ResolvedRetryOptions) {
    this.o = o;
    this.name = o.name;
    this.jittered = isJittered(o.backoff);
  }

  execute<T>(fn: Protected<T>, signal: AbortSignal = NEVER_ABORTED): Promise<T> {
    if (signal.aborted) return Promise.reject(new AbortedError(`retry '${this.name}'`, signal.reason));
    if (this.o.budget !== undefined) this.o.budget.deposit();
    if (this.attemptListeners.length > 0) this.emitAttempt(1);
    let result: PromiseLike<T> | T;
    try {
      result = fn(signal === NEVER_ABORTED ? NEVER_CONTEXT : { signal });
    } catch (err) {
      return this.retryAfter(fn, signal, err);
    }
    return isThenable(result) ? this.firstAttempt(result, fn, signal) : Promise.resolve(result);
  }

  on<E extends keyof RetryEvents>(event: E, listener: (payload: RetryEvents[E]) => void): () => void {
    const list = (event === 'attempt' ? this.attemptListeners : event === 'retry' ? this.retryListeners : this.giveUpListeners) as Array<
      (p: RetryEvents[E]) => void
    >;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private async firstAttempt<T>(result: PromiseLike<T>, fn: Protected<T>, signal: AbortSignal): Promise<T> {
    try {
      return await result;
    } catch (err) {
      return this.retryAfter(fn, signal, err);
    }
  }

  private emitAttempt(attempt: number): void {
    for (const l of this.attemptListeners.slice()) l({ attempt });
  }

  /** The first attempt failed: hand the execution to a run of the retry chart. */
  private retryAfter<T>(fn: Protected<T>, signal: AbortSignal, firstError: unknown): Promise<T> {
    const { budget, rng, retryable } = this.o;
    return new Promise<T>((resolve, reject) => {
      let lastError = firstError;
      let value: T | undefined;
      const ctx = signal === NEVER_ABORTED ? NEVER_CONTEXT : { signal };
      const actor = createActor(retryMachine, {
        clock: this.o.clock,
        input: { name: this.name, maxAttempts: this.o.maxAttempts, backoff: this.o.backoff },
        ...(this.o.inspect ? { inspect: this.o.inspect } : {}),
      });
      const onAbort = (): void => void actor.send({ type: 'ABORT' });
      const finish = (): void => {
        if (signal !== NEVER_ABORTED) signal.removeEventListener('abort', onAbort);
      };
      /** Report a failed attempt; a throwing predicate ends the execution with what it threw. */
      const attemptFailed = (err: unknown): void => {
        lastError = err;
        let event: RetryEvent;
        try {
          event = {
            type: 'ATTEMPT_FAILED',
            error: describe(err),
            retryable: Boolean(retryable(err)),
            budgetAvailable: budget === undefined || budget.available() >= 1,
            aborted: signal.aborted,
            random: this.jittered ? rng.next() : 0,
          };
        } catch (predicateError) {
          finish();
          actor.stop();
          reject(predicateError);
          return;
        }
        actor.send(event);
      };
      actor.on('retry.attempt', ({ attempt }) => {
        if (this.attemptListeners.length > 0) this.emitAttempt(attempt);
        // Outcomes always arrive asynchronously, also for a call that returns or throws synchronously.
        new Promise<T>((res) => res(fn(ctx))).then(
          (v) => {
            value = v;
            actor.send({ type: 'ATTEMPT_SUCCEEDED' });
          },
          attemptFailed,
        );
      });
      actor.on('retry.wait', ({ attempt, delayMs }) => {
        // The chart saw `budgetAvailable` in this same synchronous turn: take the token it granted.
        budget?.withdraw();
        for (const l of this.retryListeners.slice()) l({ attempt, delayMs, error: lastError });
      });
      actor.on('retry.done', ({ outcome, attempts, reason }) => {
        finish();
        if (outcome === 'succeeded') {
          resolve(value as T);
          return;
        }
        for (const l of this.giveUpListeners.slice()) l({ reason: reason!, attempts, error: lastError });
        if (outcome === 'failed') reject(lastError);
        else if (outcome === 'budgetExhausted') reject(new RetryBudgetExhaustedError(budget?.name ?? this.name, attempts, { cause: lastError }));
        else reject(new AbortedError(`retry '${this.name}'`, signal.reason));
      });
      if (signal !== NEVER_ABORTED) signal.addEventListener('abort', onAbort, { once: true });
      actor.start();
      attemptFailed(firstError);
    });
  }
}

/**
 * Create a retry policy.
 * @example
 * const budgets = createRetryBudgets({ ratio: 0.1 });
 * const retry = createRetry({
 *   maxAttempts: 4,
 *   backoff: { kind: 'exponential', initialMs: 50, maxMs: 2_000, jitter: 'decorrelated' },
 *   budget: budgets.for('payments'),
 * });
 * const receipt = await retry.execute(({ signal }) => pay(order, { signal }), callerSignal);
 */
export function createRetry(options: RetryOptions = {}): Retry {
  return new RetryImpl(resolveRetryOptions(options));
}
