/**
 * `npm run bench -- [names…] [--rounds N] [--json FILE]` — the side-by-side benchmarks.
 *
 * Runs the named benches (all when none is named), each against its baseline in the same run,
 * prints a table, and with `--json FILE` writes the rows as a JSON array of
 * `{ bench, metric, ours, baseline, baselineName, ratio, target, pass }`. The ratio is
 * ours/baseline for throughputs and baseline/ours for latencies and sizes: higher is better.
 * Benches over NATS share one nats-server that this script starts on a free port (never the one
 * that may be running on 4222) and stops at the end. Exit code 0 even when a target is missed —
 * this measures, it does not gate; a bench that throws exits 1.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.ts';
import type { Bench, BenchRow } from './harness.ts';

const BENCHES: Record<string, () => Promise<Bench>> = {
  'local-tell': async () => (await import('./local-tell.ts')).bench,
  'remote-tell': async () => (await import('./remote-tell.ts')).bench,
  'ask-serial': async () => (await import('./ask-serial.ts')).bench,
  'ask-pipelined': async () => (await import('./ask-pipelined.ts')).bench,
  spawn: async () => (await import('./spawn.ts')).bench,
  bulkhead: async () => (await import('./bulkhead.ts')).bench,
  'retry-nofail': async () => (await import('./retry-nofail.ts')).bench,
  'breaker-closed': async () => (await import('./breaker.ts')).closed,
  'breaker-open': async () => (await import('./breaker.ts')).open,
  'policy-stack': async () => (await import('./breaker.ts')).stack,
  'raft-throughput': async () => (await import('./raft.ts')).throughputBench,
  'raft-latency': async () => (await import('./raft.ts')).latencyBench,
  'raft-failover': async () => (await import('./raft-failover.ts')).bench,
  'election-failover': async () => (await import('./election.ts')).bench,
  'quorum-rw': async () => (await import('./quorum.ts')).bench,
  'lb-throughput': async () => (await import('./load-balancer.ts')).bench,
  'shard-routing': async () => (await import('./sharding.ts')).bench,
  'inspect-off': async () => (await import('./inspect.ts')).off,
  'inspect-on': async () => (await import('./inspect.ts')).on,
  'lock-uncontended': async () => (await import('./lock.ts')).uncontended,
  'lock-contended': async () => (await import('./lock.ts')).contended,
  'replication-sync': async () => (await import('./replication.ts')).bench,
};

const DEFAULT_ROUNDS = 5;

interface Args {
  names: string[];
  json: string | undefined;
  rounds: number;
}

function usage(): string {
  return [
    'usage: npm run bench -- [names…] [--rounds N] [--json FILE]',
    `benches: ${Object.keys(BENCHES).join(', ')} (default: all)`,
  ].join('\n');
}

function parseArgs(argv: string[]): Args {
  const args: Args = { names: [], json: undefined, rounds: DEFAULT_ROUNDS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') {
      const f = argv[++i];
      if (!f) throw new Error('--json needs a file name');
      args.json = f;
    } else if (a === '--rounds') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error('--rounds needs a positive integer');
      args.rounds = n;
    } else if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else if (a.startsWith('-')) {
      throw new Error(`unknown option ${a}\n${usage()}`);
    } else if (!(a in BENCHES)) {
      throw new Error(`unknown bench '${a}'\n${usage()}`);
    } else {
      args.names.push(a);
    }
  }
  if (args.names.length === 0) args.names = Object.keys(BENCHES);
  return args;
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e5) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** The results as a Markdown table (also what the README shows). */
export function table(rows: readonly BenchRow[]): string {
  const head = ['bench', 'metric', 'troupe', 'baseline', 'baseline is', 'ratio', 'target', 'pass'];
  const body = rows.map((r) => [
    r.bench, r.metric, fmt(r.ours), fmt(r.baseline), r.baselineName, fmt(r.ratio),
    r.target > 0 ? `≥ ${r.target}` : '—', r.target > 0 ? (r.pass ? 'yes' : '**no**') : '(reported)',
  ]);
  const lines = [head, head.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const benches = await Promise.all(args.names.map((n) => BENCHES[n]!()));
  let server: NatsServerHandle | undefined;
  const rows: BenchRow[] = [];
  let failed = false;
  const started = performance.now();
  try {
    if (benches.some((b) => b.needsNats)) {
      server = await startNatsServer();
      log(`nats-server for this run: ${server.url}`);
    }
    for (const b of benches) {
      log(`\n# ${b.name} — ${b.description}`);
      const t0 = performance.now();
      try {
        const out = await b.run({ natsUrl: server?.url ?? '', rounds: args.rounds, log });
        rows.push(...out);
        for (const r of out) log(`  → ${r.metric}: troupe ${fmt(r.ours)} vs ${r.baselineName} ${fmt(r.baseline)} = ${fmt(r.ratio)} (target ${r.target})`);
      } catch (err) {
        failed = true;
        log(`  ✗ ${b.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
      log(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await server?.stop();
  }
  console.log(`\n${table(rows)}\n`);
  const judged = rows.filter((r) => r.target > 0);
  console.log(`${judged.filter((r) => r.pass).length}/${judged.length} rows meet their target; total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (args.json) {
    writeFileSync(resolve(args.json), `${JSON.stringify(rows, null, 2)}\n`);
    console.log(`wrote ${args.json}`);
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // NATS sockets or a peer framework's timers must not keep a finished run alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
