/**
 * The policy contract shared by every resilience pattern (circuit breaker, bulkhead, retry,
 * timeout, fallback), and `wrap()` to compose them — the shape cockatiel users know.
 *
 * Every policy runs an async call: `policy.execute(fn, signal)`. The call receives an AbortSignal
 * that fires when the caller's signal fires or a policy gives up on it (a timeout), so cooperative
 * code can stop early.
 */

/** What a protected call receives. */
export interface PolicyContext {
  /** Fires when the caller aborts or a policy (timeout) gives up on this call. */
  readonly signal: AbortSignal;
}

/** A protected call. */
export type Protected<T> = (ctx: PolicyContext) => PromiseLike<T> | T;

/** A resilience policy. */
export interface Policy {
  /** Kind of policy, for logs and the inspector: 'circuit-breaker', 'bulkhead', 'retry', 'timeout', 'fallback', 'wrap'. */
  readonly kind: string;
  /** Run `fn` under this policy. Rejects with the policy's typed error or whatever `fn` threw. */
  execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T>;
}

/** A signal that never fires (for callers without one). */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;

/**
 * Compose policies, outermost first: `wrap(retry, breaker, bulkhead, timeout)` runs
 * retry(breaker(bulkhead(timeout(fn)))). The documented order: retry outside the breaker (so a
 * broken circuit's fast rejection is not retried in a loop unless the retry predicate says so),
 * the breaker outside the bulkhead (rejections by a full bulkhead do not trip the breaker unless
 * its predicate counts them), the timeout innermost (it bounds each attempt, not the whole retry).
 * @example
 * const policy = wrap(retry({ maxAttempts: 3 }), createCircuitBreaker({ … }), bulkhead({ limit: 10 }), timeout({ timeoutMs: 500 }));
 * await policy.execute(({ signal }) => fetch(url, { signal }));
 */
export function wrap(...policies: Policy[]): Policy {
  if (policies.length === 0) throw new RangeError('wrap needs at least one policy');
  return {
    kind: 'wrap',
    execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T> {
      const run = (i: number, ctx: PolicyContext): Promise<T> => {
        if (i === policies.length) return Promise.resolve(fn(ctx));
        return policies[i]!.execute((inner) => run(i + 1, inner), ctx.signal);
      };
      return run(0, { signal: signal ?? NEVER_ABORTED });
    },
  };
}
