/**
 * Timeout and fallback policies. They keep no state between calls, so they have no state chart:
 * a timeout is a timer on the injected clock per call, a fallback a catch.
 */
import { realClock, type Clock } from '../../framework/clock.ts';
import { AbortedError, CallTimeoutError } from '../../framework/errors.ts';
import type { Policy, PolicyContext, Protected } from './policy.ts';

export interface TimeoutOptions {
  /** Give up on a call after this long. */
  timeoutMs: number;
  /**
   * `aggressive`: reject with `CallTimeoutError` at once (the call's signal fires; the call may go
   * on in the background). `cooperative`: fire the call's signal and wait for it to stop; if it then
   * fails, reject with `CallTimeoutError` (if it still succeeds, its result is returned).
   * @default 'aggressive'
   */
  strategy?: 'aggressive' | 'cooperative';
  /** @default realClock() */
  clock?: Clock;
}

/**
 * @example
 * const t = timeout({ timeoutMs: 500 });
 * await t.execute(({ signal }) => fetch(url, { signal }));
 */
export function timeout(options: TimeoutOptions): Policy & { readonly timeoutMs: number } {
  const { timeoutMs } = options;
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`timeout option timeoutMs must be a finite number > 0, got ${JSON.stringify(timeoutMs)}`);
  }
  const strategy = options.strategy ?? 'aggressive';
  if (strategy !== 'aggressive' && strategy !== 'cooperative') {
    throw new RangeError(`timeout option strategy must be 'aggressive' or 'cooperative', got ${JSON.stringify(strategy)}`);
  }
  const clock = options.clock ?? realClock();
  return {
    kind: 'timeout',
    timeoutMs,
    execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(new AbortedError('call', signal.reason));
      const inner = new AbortController();
      const onOuterAbort = (): void => inner.abort(signal?.reason);
      signal?.addEventListener('abort', onOuterAbort, { once: true });
      let timedOut = false;
      return new Promise<T>((resolve, reject) => {
        const timer = clock.setTimeout(() => {
          timedOut = true;
          inner.abort(new CallTimeoutError(timeoutMs));
          if (strategy === 'aggressive') reject(new CallTimeoutError(timeoutMs));
        }, timeoutMs);
        const ctx: PolicyContext = { signal: inner.signal };
        // the call starts now, inside execute(), so it sees every abort that follows
        let started: PromiseLike<T> | T;
        try {
          started = fn(ctx);
        } catch (err) {
          started = Promise.reject(err);
        }
        Promise.resolve(started)
          .then(
            (value) => resolve(value),
            (err: unknown) => reject(timedOut ? Object.assign(new CallTimeoutError(timeoutMs), { cause: err }) : err),
          )
          .finally(() => {
            clock.clearTimeout(timer);
            signal?.removeEventListener('abort', onOuterAbort);
          });
      });
    },
  };
}

export interface FallbackOptions<F> {
  /** The value (or a function of the error giving it) to return instead of failing. */
  fallback: F | ((error: unknown) => F | PromiseLike<F>);
  /** Which errors fall back. @default every error */
  when?: (error: unknown) => boolean;
}

/**
 * @example
 * const f = fallback({ fallback: [] as Product[] });
 * const products = await wrap(f, breaker).execute(() => catalog.list());
 */
export function fallback<F>(options: FallbackOptions<F>): Policy {
  const when = options.when ?? (() => true);
  const value = options.fallback;
  return {
    kind: 'fallback',
    async execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T> {
      try {
        return await fn({ signal: signal ?? new AbortController().signal });
      } catch (error) {
        if (!when(error)) throw error;
        return (typeof value === 'function' ? await (value as (e: unknown) => F | PromiseLike<F>)(error) : value) as unknown as T;
      }
    },
  };
}
