/**
 * retry-nofail — the cost of a retry policy when nothing fails.
 *
 * Measured: `retry.execute(noop)` through troupe's `createRetry({ maxAttempts: 3 })`, where `noop`
 * is an async function that resolves at once — the first attempt succeeds, so no retry chart is
 * ever started. WORKERS loops each keep one call in flight until N calls have completed.
 * Baseline: cockatiel 3's `retry(handleAll, { maxAttempts: 3 }).execute(noop)`, same loops.
 * Completion is verified: every call returned, no attempt was retried.
 */
import { handleAll, retry as cockatielRetry } from 'cockatiel';
import { createRetry } from '../../actors/retry/retry.ts';
import { alternate, median, row, type Bench, driveConcurrent } from './harness.ts';

const N = 300_000;
const MAX_ATTEMPTS = 3;
const WORKERS = 10;
const noop = async (): Promise<number> => 1;

const drive = (execute: () => Promise<number>): Promise<number> => driveConcurrent('retry-nofail', N, WORKERS, execute);

async function oursRound(): Promise<number> {
  const r = createRetry({ name: 'bench', maxAttempts: MAX_ATTEMPTS });
  let retries = 0;
  r.on('retry', () => retries++);
  const rate = await drive(() => r.execute(noop));
  if (retries !== 0) throw new Error(`retry-nofail: ${retries} retries`);
  return rate;
}

async function cockatielRound(): Promise<number> {
  const r = cockatielRetry(handleAll, { maxAttempts: MAX_ATTEMPTS });
  let retries = 0;
  r.onRetry(() => retries++);
  const rate = await drive(() => r.execute(noop));
  if (retries !== 0) throw new Error(`cockatiel retry: ${retries} retries`);
  return rate;
}

export const bench: Bench = {
  name: 'retry-nofail',
  description: 'retry.execute(async noop) when the first attempt succeeds vs cockatiel retry(handleAll, { maxAttempts: 3 })',
  needsNats: false,
  async run(ctx) {
    const [ours, theirs] = await alternate([
      { name: 'troupe createRetry', round: oursRound },
      { name: 'cockatiel retry', round: cockatielRound },
    ], ctx.rounds * 2, ctx.log);
    return [row('retry-nofail', 'throughput, first attempt succeeds (calls/s)', median(ours!), median(theirs!), 'cockatiel retry()', 1.0, 'higher')];
  },
};
