/**
 * `troupe` — the command line.
 *   troupe run <example> [options]   run an example topology (default: embedded in-process bus)
 *   troupe proto [--check] [files…]  generate TypeScript message types from .proto files
 *   troupe --help | <command> --help
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');

/** Runnable examples: name → module (which exports `main(options)`) and a one-line summary. */
const EXAMPLES: Record<string, { module: string; summary: string }> = {
  'ping-pong': { module: 'examples/ping-pong.ts', summary: 'two actors in one process: a rally of tells, an ask, a death watch' },
  'supervised-workers': { module: 'examples/supervised-workers.ts', summary: 'a crashing worker restarted within its window, then escalated' },
  resilience: { module: 'examples/resilience.ts', summary: 'retry + circuit breaker + bulkhead + timeout around a flaky service' },
  'resilience-cluster': { module: 'examples/resilience-cluster/main.ts', summary: 'a breaker shared by two OS processes through NATS KV: one trips, both open' },
  'replicated-cart': { module: 'examples/replicated-cart.ts', summary: 'an XState cart replicated through Raft: every node runs the same chart, across a leader failure' },
  'raft-cluster': { module: 'examples/raft-cluster/main.ts', summary: 'a Raft KV in three OS processes over NATS; the leader is SIGKILLed and no acknowledged write is lost' },
  'two-nodes': { module: 'examples/two-nodes/main.ts', summary: 'two OS processes over a real nats-server: remote tell, ask, death watch on kill' },
  lock: { module: 'examples/lock.ts', summary: 'a distributed lock with fencing tokens: a paused holder overwrites without them, is refused with them' },
};

/** Simulation scenarios: name → module exporting `run(options)` and a summary. */
const SCENARIOS: Record<string, { module: string; summary: string }> = {
  raft: { module: 'actors/raft/sim-scenario.ts', summary: 'a 3-node replicated KV on Raft under a mixed nemesis; the history is checked for linearizability' },
};

const HELP = `troupe — distributed-systems patterns as XState state charts in supervised actors over NATS

Usage:
  troupe run <example> [--nats URL] [--spawn-nats]   run an example topology
  troupe sim <scenario> [--seed N | --seeds N]       deterministic simulation, replayable from its seed
  troupe proto [--check] [files…]                    generate .pb.ts message types from .proto files
  troupe <command> --help                            help on a command

Examples:
${Object.entries(EXAMPLES).map(([n, e]) => `  ${n.padEnd(20)} ${e.summary}`).join('\n')}

Environment:
  LOG_LEVEL   trace | debug | info | warn | error | silent   (default info)
`;

const RUN_HELP = `troupe run <example> [options]

Runs an example. Without --nats everything runs in this process on the embedded in-process bus.

Options:
  --nats URL      connect to this NATS server (examples that span processes need one)
  --spawn-nats    start a local nats-server on a free port for the run (needs nats-server on PATH)
  --help          this text

Examples:
${Object.entries(EXAMPLES).map(([n, e]) => `  ${n.padEnd(20)} ${e.summary}`).join('\n')}
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return v;
}

class UsageError extends Error {}

async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const name = args[0];
  if (!name || name.startsWith('--')) throw new UsageError('which example? e.g. troupe run ping-pong');
  const example = EXAMPLES[name];
  if (!example) throw new UsageError(`no example named '${name}'; try one of: ${Object.keys(EXAMPLES).join(', ')}`);
  const mod = (await import(pathToFileURL(join(repoRoot, example.module)).href)) as {
    main: (o: { nats?: string; spawnNats?: boolean }) => Promise<unknown>;
  };
  const nats = flag(args, '--nats');
  await mod.main({ ...(nats ? { nats } : {}), spawnNats: args.includes('--spawn-nats') });
  return 0;
}

const SIM_HELP = `troupe sim <scenario> [options]

Runs a deterministic simulation: every node, the network and every timer on one seeded scheduler.
The same seed gives the same run; a failing run prints the command that replays it.

Options:
  --seed N          run this seed (default 1)
  --seeds N         run seeds 1..N (or --seed S --seeds N: S..S+N-1)
  --duration MS     simulated time with clients and faults (default 2000)

Scenarios:
${Object.entries(SCENARIOS).map(([n, e]) => `  ${n.padEnd(20)} ${e.summary}`).join('\n')}
`;

async function sim(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SIM_HELP);
    return 0;
  }
  const name = args[0];
  if (!name || name.startsWith('--')) throw new UsageError('which scenario? e.g. troupe sim raft --seed 1');
  const scenario = SCENARIOS[name];
  if (!scenario) throw new UsageError(`no scenario named '${name}'; try one of: ${Object.keys(SCENARIOS).join(', ')}`);
  const num = (flagName: string, fallback: number): number => {
    const v = flag(args, flagName);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flagName} must be a whole number, got '${v}'`);
    return n;
  };
  const first = num('--seed', 1);
  const count = num('--seeds', 1);
  const durationMs = num('--duration', 2_000);
  const mod = (await import(pathToFileURL(join(repoRoot, scenario.module)).href)) as {
    runRaftScenario: (o: { seed: number; durationMs: number }) => Promise<{
      operations: readonly unknown[]; okOps: number; check: { valid: boolean | 'unknown' }; schedule: readonly unknown[]; replay: string;
    }>;
  };
  let failed = 0;
  for (let seed = first; seed < first + count; seed++) {
    const r = await mod.runRaftScenario({ seed, durationMs });
    const verdict = r.check.valid === true ? 'linearizable: yes' : r.check.valid === false ? 'linearizable: NO' : 'linearizable: undecided';
    process.stdout.write(`seed ${seed}: ${verdict}, ${r.operations.length} operations checked (${r.okOps} acknowledged), ${r.schedule.length} faults\n`);
    if (r.check.valid !== true) {
      failed++;
      process.stdout.write(`${JSON.stringify(r.check, null, 2).slice(0, 4_000)}\nreplay: ${r.replay}\n`);
    }
  }
  if (count > 1) process.stdout.write(`${count - failed} of ${count} seeds passed\n`);
  return failed > 0 ? 1 : 0;
}

function proto(args: string[]): number {
  if (args.includes('--help')) {
    process.stdout.write('troupe proto [--check] [files…]\n\nWrites X.pb.ts beside each X.proto (default: every .proto in the repo).\n--check  write nothing; exit 1 if a generated file is out of date\n');
    return 0;
  }
  const r = spawnSync(process.execPath, [...process.execArgv, join(here, 'codec', 'generate.ts'), ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

async function cli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return 0;
    case 'run':
      return run(rest);
    case 'proto':
      return proto(rest);
    case 'sim':
      return sim(rest);
    default:
      throw new UsageError(`unknown command '${command}' (see troupe --help)`);
  }
}

try {
  process.exitCode = await cli(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`troupe: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`troupe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
