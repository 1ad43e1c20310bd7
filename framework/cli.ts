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
  'two-nodes': { module: 'examples/two-nodes/main.ts', summary: 'two OS processes over a real nats-server: remote tell, ask, death watch on kill' },
};

const HELP = `troupe — distributed-systems patterns as XState state charts in supervised actors over NATS

Usage:
  troupe run <example> [--nats URL] [--spawn-nats]   run an example topology
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
