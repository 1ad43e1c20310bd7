/**
 * election-failover — the lease backend over NATS KV (one nats-server with JetStream, started here; a bucket whose max age is
 * the lease TTL): three candidates, each its own OS process on its own connection. The leader's
 * process is SIGKILLed at a varying point of its renew cycle; measured: kill → the `elected` line
 * of another candidate (the parent's clock, both ends). It cannot be less than the lease left
 * after the last renew (TTL − time since that renew) and should be at most TTL + renew interval
 * + 100 ms. The "baseline" column is that goal; also reported against the TTL alone.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNodeProcess } from '../../framework/node-process.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { median, percentile, type Bench, type BenchRow } from './harness.ts';

const here = dirname(fileURLToPath(import.meta.url));
const entry = resolve(here, 'election-candidate.ts');
const CANDIDATES = ['c1', 'c2', 'c3'];
const TRIALS = 12;
const TTL_MS = 1_000;
const RENEW_MS = 250;
const MARGIN_MS = 100;
const GOAL_MS = TTL_MS + RENEW_MS + 100;

type Line = { candidate: string; text: string; atMs: number };

async function trials(log: (l: string) => void): Promise<number[]> {
  // its own server: the one run.ts shares has no JetStream
  const srv = await startNatsServer({ jetstream: true });
  const natsUrl = srv.url;
  const bucket = 'bench-election';
  const procs = new Map<string, ChildProcess>();
  const lines: Line[] = [];
  /** Who says it leads now (a killed process says nothing more: it is removed by hand). */
  const leading = new Set<string>();
  const start = async (candidate: string): Promise<void> => {
    procs.set(candidate, await startNodeProcess({
      entry,
      env: {
        TROUPE_NATS_URL: natsUrl, TROUPE_CANDIDATE: candidate, TROUPE_BUCKET: bucket,
        TROUPE_TTL_MS: String(TTL_MS), TROUPE_RENEW_MS: String(RENEW_MS), TROUPE_MARGIN_MS: String(MARGIN_MS),
      },
      onLine: (text) => {
        lines.push({ candidate, text, atMs: performance.now() });
        if (text.startsWith('elected ')) leading.add(candidate);
        if (text.startsWith('deposed ')) leading.delete(candidate);
      },
    }));
  };
  const waitLine = async (pred: (l: Line) => boolean, from: number, what: string, timeoutMs = 30_000): Promise<Line> => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = lines.slice(from).find(pred);
      if (hit) return hit;
      if (performance.now() > deadline) throw new Error(`election-failover: ${what} not seen within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  const leader = (): string => {
    if (leading.size !== 1) throw new Error(`election-failover: ${leading.size} candidates say they lead (${[...leading].join(', ')})`);
    return [...leading][0]!;
  };
  try {
    // the first one creates the bucket; the others open it
    await start(CANDIDATES[0]!);
    await Promise.all(CANDIDATES.slice(1).map(start));
    await waitLine((l) => l.text.startsWith('elected '), 0, 'a first election');
    const out: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const victim = leader();
      // let it hold the lease for a while, then kill it at a varying point of its renew cycle
      await new Promise((r) => setTimeout(r, 500 + ((t * 83) % RENEW_MS)));
      const mark = lines.length;
      const killedAt = performance.now();
      procs.get(victim)!.kill('SIGKILL');
      procs.delete(victim);
      leading.delete(victim);
      const next = await waitLine((l) => l.candidate !== victim && l.text.startsWith('elected '), mark, `an election after killing ${victim}`);
      out.push(next.atMs - killedAt);
      log(`  trial ${t + 1}: ${victim} killed → ${next.candidate} ${next.text} after ${Math.round(next.atMs - killedAt)} ms`);
      await start(victim);
    }
    return out;
  } finally {
    for (const p of procs.values()) p.kill('SIGKILL');
    await srv.stop();
  }
}

export const bench: Bench = {
  name: 'election-failover',
  description: `lease election over NATS KV (TTL ${TTL_MS} ms, renew ${RENEW_MS} ms): SIGKILL the leader's process → another candidate elected (${TRIALS} trials)`,
  needsNats: false,
  async run(ctx) {
    const ms = await trials(ctx.log);
    const p50 = median(ms);
    const max = Math.max(...ms);
    ctx.log(`  p50 ${Math.round(p50)} ms, p90 ${Math.round(percentile(ms, 90))} ms, max ${Math.round(max)} ms; TTL ${TTL_MS} ms, goal ≤ ${GOAL_MS} ms`);
    const rows: BenchRow[] = [
      { bench: 'election-failover', metric: 'p50 kill → new leader (ms)', ours: p50, baseline: GOAL_MS, baselineName: `goal TTL + renew + 100 ms (${GOAL_MS})`, ratio: GOAL_MS / p50, target: 1, pass: p50 <= GOAL_MS },
      { bench: 'election-failover', metric: 'max kill → new leader (ms)', ours: max, baseline: GOAL_MS, baselineName: `goal TTL + renew + 100 ms (${GOAL_MS})`, ratio: GOAL_MS / max, target: 1, pass: max <= GOAL_MS },
      { bench: 'election-failover', metric: 'p50 kill → new leader (ms)', ours: p50, baseline: TTL_MS, baselineName: `the lease TTL (${TTL_MS})`, ratio: TTL_MS / p50, target: 0, pass: true },
    ];
    return rows;
  },
};
