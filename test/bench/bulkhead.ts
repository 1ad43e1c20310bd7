/**
 * bulkhead — the admit path of a bulkhead.
 *
 * Measured: `bulkhead.execute(noop)` through troupe's `createBulkhead({ limit: 10, queue: 10 })`,
 * where `noop` is an async function that resolves at once. WORKERS (= the limit) loops each keep one
 * call in flight until N calls have completed, so every call is admitted at once (never queued,
 * never rejected) while the bulkhead runs at its limit — the busy case, in which troupe's mode chart
 * crosses the open/saturated threshold on nearly every call (its reports are coalesced to one per
 * clock turn).
 * Baseline: cockatiel 3's `bulkhead(10, 10).execute(noop)`, driven by the same loops.
 * Completion is verified: every call returned, nothing was rejected or left running.
 */
import { bulkhead as cockatielBulkhead } from 'cockatiel';
import { createBulkhead } from '../../actors/bulkhead/bulkhead.ts';
import { alternate, median, row, type Bench, driveConcurrent } from './harness.ts';

const N = 300_000;
const LIMIT = 10;
const QUEUE = 10;
const WORKERS = LIMIT;
const noop = async (): Promise<number> => 1;

const drive = (execute: () => Promise<number>): Promise<number> => driveConcurrent('bulkhead', N, WORKERS, execute);

async function oursRound(): Promise<number> {
  const b = createBulkhead({ name: 'bench', limit: LIMIT, queue: QUEUE });
  const rate = await drive(() => b.execute(noop));
  const s = b.stats();
  if (s.active !== 0 || s.queued !== 0 || s.rejected !== 0) throw new Error(`bulkhead: left ${JSON.stringify(s)}`);
  return rate;
}

async function cockatielRound(): Promise<number> {
  const b = cockatielBulkhead(LIMIT, QUEUE);
  let rejected = 0;
  b.onReject(() => rejected++);
  const rate = await drive(() => b.execute(noop));
  if (b.executionSlots !== LIMIT || rejected !== 0) throw new Error(`cockatiel bulkhead: ${b.executionSlots} free slots, ${rejected} rejected`);
  return rate;
}

export const bench: Bench = {
  name: 'bulkhead',
  description: 'bulkhead.execute(async noop) admit path at the limit (10 in flight) vs cockatiel bulkhead(10, 10)',
  needsNats: false,
  async run(ctx) {
    const [ours, theirs] = await alternate([
      { name: 'troupe createBulkhead', round: oursRound },
      { name: 'cockatiel bulkhead', round: cockatielRound },
    ], ctx.rounds * 2, ctx.log);
    return [row('bulkhead', 'admit throughput (calls/s)', median(ours!), median(theirs!), 'cockatiel bulkhead()', 1.0, 'higher')];
  },
};
