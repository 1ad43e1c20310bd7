/**
 * What every benchmark module shares: the result row, the context run.ts hands to a bench, and the
 * measurement discipline — warm up both variants, then alternate ours/baseline over several rounds
 * and keep the median, because the machines these run on are small and noisy.
 */

/** One line of the results table (and one element of the `--json` array). */
export interface BenchRow {
  bench: string;
  /** What was measured, with its unit, e.g. `throughput (msg/s)` or `p50 latency (µs)`. */
  metric: string;
  ours: number;
  baseline: number;
  baselineName: string;
  /** Higher is always better: ours/baseline for throughputs, baseline/ours for latencies and sizes. */
  ratio: number;
  /** The least acceptable ratio. */
  target: number;
  pass: boolean;
}

/** What run.ts passes to a bench. */
export interface BenchContext {
  /** URL of the nats-server run.ts started for this run (set when the bench declares `needsNats`). */
  natsUrl: string;
  /** Timed rounds per variant (after one warm-up round each). */
  rounds: number;
  /** Progress line on stderr. */
  log(line: string): void;
}

/** A bench module: `test/bench/<name>.ts` exports one of these as `bench`. */
export interface Bench {
  name: string;
  /** One sentence for `--help` and the README. */
  description: string;
  needsNats: boolean;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/** Whether bigger or smaller numbers are better for a metric. */
export type Better = 'higher' | 'lower';

export function row(
  bench: string, metric: string, ours: number, baseline: number, baselineName: string, target: number, better: Better,
): BenchRow {
  const ratio = better === 'higher' ? ours / baseline : baseline / ours;
  return { bench, metric, ours, baseline, baselineName, ratio, target, pass: Number.isFinite(ratio) && ratio >= target };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

/** One variant of a comparison: `round()` runs one timed round and returns its measurement(s). */
export interface Variant<T> {
  name: string;
  round(): Promise<T>;
}

/**
 * Warm up every variant once (result discarded), then run `rounds` rounds in which the variants
 * take turns — the order rotating each round so no variant always runs right after the same one —
 * and return each variant's per-round results, in the order `variants` were given.
 */
export async function alternate<T>(variants: ReadonlyArray<Variant<T>>, rounds: number, log: (line: string) => void): Promise<T[][]> {
  for (const v of variants) await v.round();
  const results: T[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (r + k) % variants.length;
      const v = variants[i]!;
      const res = await v.round();
      results[i]!.push(res);
      log(`  round ${r + 1}/${rounds} ${v.name}: ${JSON.stringify(res, (_k, x: unknown) => (typeof x === 'number' ? Math.round(x * 100) / 100 : x))}`);
    }
  }
  return results;
}

/** A macrotask turn: lets timers and socket reads run (unlike awaiting a resolved promise). */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Yield to the event loop until `done()` holds; throws after `timeoutMs` so a lost message fails the
 * bench loudly instead of hanging it.
 */
export async function until(done: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await tick();
  }
}

/**
 * Yield until the event loop has been idle for `quietTicks` consecutive macrotask turns (each
 * taking under `quietMs`): the work a system deferred (mailbox turns it split across macrotasks,
 * such as the root supervisor's bookkeeping after many spawns) has then run, and is counted.
 */
export async function quiesce(quietTicks = 3, quietMs = 0.25, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let quiet = 0;
  while (quiet < quietTicks) {
    const t0 = performance.now();
    await tick();
    const dt = performance.now() - t0;
    quiet = dt < quietMs ? quiet + 1 : 0;
    if (performance.now() > deadline) throw new Error(`bench: the event loop did not quiesce within ${timeoutMs} ms`);
  }
}

/**
 * Calls per second of `execute()` with `workers` calls in flight until `n` have completed; each
 * call must resolve to 1 (checked), so a lost or wrong call fails the bench.
 */
export async function driveConcurrent(bench: string, n: number, workers: number, execute: () => Promise<number>): Promise<number> {
  await tick();
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async () => {
    while (started < n) {
      started++;
      const one = await execute(); // awaited first: `done += await …` would read `done` before the await
      done += one;
    }
  }));
  const ms = performance.now() - t0;
  if (done !== n) throw new Error(`${bench}: ${done} of ${n} calls completed`);
  return (n / ms) * 1000;
}
