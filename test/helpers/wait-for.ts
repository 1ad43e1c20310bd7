/**
 * Wait for a condition with a deadline — the only way tests synchronise on asynchronous delivery
 * (never a bare sleep).
 */

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long. @default 5000 */
  timeoutMs?: number;
  /** Pause between checks. @default 5 */
  intervalMs?: number;
  /** Describes the condition in the failure message. */
  message?: string | (() => string);
}

/**
 * Resolves as soon as `predicate` returns (or resolves to) true; rejects after `timeoutMs`.
 * @example
 * await waitFor(() => received.length === 10, { timeoutMs: 2_000, message: () => `got ${received.length}` });
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 5_000, intervalMs = 5, message }: WaitForOptions = {},
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (performance.now() >= deadline) {
      const what = typeof message === 'function' ? message() : (message ?? 'condition');
      throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Retry `fn` until it resolves, while it fails with an error `transient` accepts (other errors fail
 * at once); gives up after `timeoutMs`. For "the cluster is still electing a leader" moments.
 */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T>,
  { timeoutMs = 30_000, transient = () => true }: { timeoutMs?: number; transient?: (err: unknown) => boolean } = {},
): Promise<T> {
  let result: { value: T } | undefined;
  let failures = 0;
  await waitFor(
    async () => {
      try {
        result = { value: await fn() };
        return true;
      } catch (err) {
        if (!transient(err)) throw err;
        failures++;
        return false;
      }
    },
    { timeoutMs, intervalMs: 100, message: () => `${what} (${failures} transient failures so far)` },
  );
  return result!.value;
}
