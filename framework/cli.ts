/**
 * `troupe` — the command line.
 *   troupe run <example> [options]   run an example topology (default: embedded in-process bus)
 *   troupe proto [--check] [files…]  generate TypeScript message types from .proto files
 *   troupe diagram <module> [--export NAME] [--out DIR]   SVG + Mermaid of the machines a module exports
 *   troupe inspect [--nats URL] [--port N] [--host H] [--token T] [--allow-send]   the inspector's server and web UI
 *   troupe --help | <command> --help
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ScenarioRun, ScenarioRunOptions } from './sim/scenario.ts';

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
  'load-balancer': { module: 'examples/load-balancer.ts', summary: 'four workers found through the receptionist behind a P2C balancer: a slow one avoided, a failing one ejected and let back' },
  sharding: { module: 'examples/sharding.ts', summary: 'counters placed by key over 4 nodes; a node joins and one leaves mid-workload, shards hand off' },
  'two-nodes': { module: 'examples/two-nodes/main.ts', summary: 'two OS processes over a real nats-server: remote tell, ask, death watch on kill' },
  'leader-election': { module: 'examples/leader-election.ts', summary: 'three candidates over a lease: the leader paused past its lease, killed, resigning; elections with epochs' },
  quorum: { module: 'examples/quorum.ts', summary: 'a quorum replica group under a partition: W/R settings trade availability for stale reads (CAP, as a table)' },
  lock: { module: 'examples/lock.ts', summary: 'a distributed lock with fencing tokens: a paused holder overwrites without them, is refused with them' },
  database: { module: 'examples/database/main.ts', summary: 'case study: a multi-Raft database (3 ranges on 4 nodes) under a workload and faults; throughput, latency, linearizability' },
  ecommerce: { module: 'examples/ecommerce/main.ts', summary: 'case study: a shop in two regions under a partition, a crash and a slow dependency; report (text + HTML)' },
  replication: { module: 'examples/replication.ts', summary: 'a list replicated on 3 nodes (sync, W=1): the primary is killed under load, a backup takes over, the old one catches up' },
};

/**
 * Simulation scenarios: name → module exporting `run(options)` (`framework/sim/scenario.ts`: one
 * seed, run as the scenario's test runs it) and a summary.
 */
const SCENARIOS: Record<string, { module: string; summary: string }> = {
  raft: { module: 'actors/raft/sim-scenario.ts', summary: 'a 3-node replicated KV on Raft under a mixed nemesis; the history is checked for linearizability' },
  'raft-kv-store': { module: 'actors/raft/kv-store-sim-scenario.ts', summary: 'the Raft KvStore (revisions, compare-and-set) on 3 nodes under a mixed nemesis; the history is checked for linearizability' },
  lock: { module: 'actors/lock/sim-scenario.ts', summary: 'five clients take one lock under pauses, crashes and partitions; mutex + fencing model, fenced list checked' },
  'leader-election': { module: 'actors/leader-election/sim-scenario.ts', summary: 'lease election of 3 candidates under a nemesis: one leadership per epoch, only the lease holder acts, liveness returns' },
  quorum: { module: 'actors/quorum/sim-scenario.ts', summary: 'N=3 quorum reads and writes (W/R 2/2, 3/1, 1/3, version vectors) under partitions: acknowledged writes read back, reads monotonic' },
  database: { module: 'examples/database/sim-scenario.ts', summary: 'the database case study (3 Raft ranges on 4 nodes) under kill-leader, partition, pause; linearizability per range' },
  ecommerce: { module: 'examples/ecommerce/sim-scenario.ts', summary: 'the e-commerce case study under partition, crash and slow payments (--inventory, --faults); its invariants checked' },
};

const HELP = `troupe — distributed-systems patterns as XState state charts in supervised actors over NATS

Usage:
  troupe run <example> [--nats URL] [--spawn-nats] [--inspect]   run an example topology
  troupe sim <scenario> [--seed N | --seeds N]       deterministic simulation, replayable from its seed
  troupe proto [--check] [files…]                    generate .pb.ts message types from .proto files
  troupe diagram <module> [--export NAME] [--out DIR] SVG + Mermaid of the state machines a module exports
  troupe inspect [--nats URL] [--port N] [--token T] [--allow-send]   serve the inspector (web UI) for a cluster
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
  --inspect       serve the inspector (web UI) for this run; prints its URL and keeps serving after
                  the example ends. With it: --port N, --host H, --token T, --allow-send (see
                  troupe inspect --help), --wait (start once a browser is connected), --pace MS
                  (pause between the example's steps, default 1000)
  --help          this text
  ecommerce only: --inventory quorum|weak|available, --duration MS, --faults partition,kill,slow|all|none,
                  --clients N, --seed N, --report FILE.html (default .scratch/ecommerce-report.html)

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
    main: (o: { nats?: string; spawnNats?: boolean; inspect?: unknown; paceMs?: number; argv?: readonly string[] }) => Promise<unknown>;
  };
  const nats = flag(args, '--nats');
  if (!args.includes('--inspect')) {
    await mod.main({ ...(nats ? { nats } : {}), spawnNats: args.includes('--spawn-nats'), argv: args.slice(1) });
    return 0;
  }
  // embedded inspection: the example's systems publish on a private in-process bus the server reads
  const [{ createMemoryBus }, { createInspectionPublisher }, { startInspectorServer }] = await Promise.all([
    import('./transport/memory.ts'), import('./inspector/publisher.ts'), import('./inspector/server.ts'),
  ]);
  const bus = createMemoryBus();
  const publisher = createInspectionPublisher({ transport: bus.connect({ name: 'publisher' }), cluster: 'embedded' });
  const server = await startInspectorServer({ transport: bus.connect({ name: 'inspector' }), cluster: 'embedded', ...serverFlags(args) });
  process.stdout.write(`inspector: ${server.url}\n`);
  if (args.includes('--wait')) {
    process.stdout.write('waiting for a browser to connect…\n');
    await server.waitForClient();
  }
  const paceMs = Number(flag(args, '--pace') ?? 1_000);
  await mod.main({ ...(nats ? { nats } : {}), spawnNats: args.includes('--spawn-nats'), inspect: publisher.sink, paceMs, argv: args.slice(1) });
  publisher.flush();
  await new Promise((r) => setImmediate(r)); // the bus delivers on the next turn
  if (server.stats().received === 0) {
    process.stderr.write(`troupe: example '${name}' takes no inspection sink, so the inspector recorded nothing (examples that do: resilience, replicated-cart, ping-pong, database)\n`);
  }
  process.stdout.write(`example finished; the inspector keeps serving its history at ${server.url} (Ctrl-C to stop)\n`);
  await untilSignal();
  publisher.close();
  await server.close();
  return 0;
}

/** Options shared by `inspect` and `run --inspect`. */
function serverFlags(args: string[]): { host?: string; port?: number; token?: string; allowSend: boolean } {
  const port = flag(args, '--port');
  const host = flag(args, '--host');
  const token = flag(args, '--token') ?? process.env['TROUPE_INSPECT_TOKEN'];
  if (port !== undefined && !/^\d+$/.test(port)) throw new UsageError(`--port must be a number, got '${port}'`);
  return {
    ...(host !== undefined ? { host } : {}), ...(port !== undefined ? { port: Number(port) } : {}), ...(token ? { token } : {}),
    allowSend: args.includes('--allow-send'),
  };
}

function untilSignal(): Promise<void> {
  return new Promise((resolveSignal) => {
    process.once('SIGINT', () => resolveSignal());
    process.once('SIGTERM', () => resolveSignal());
  });
}

const INSPECT_HELP = `troupe inspect [options]

Serves the inspector's web UI for a cluster whose nodes publish inspection events over NATS
(createInspectionPublisher). Binds 127.0.0.1 unless --host says otherwise; any other host needs
--token (or TROUPE_INSPECT_TOKEN); read-only unless --allow-send.

Options:
  --nats URL       NATS server (default nats://127.0.0.1:4222)
  --cluster NAME   cluster to inspect (default troupe)
  --port N         HTTP port (default: a free one)
  --host H         address to bind (default 127.0.0.1)
  --token T        require this token (?token=T) on every request; wrong or missing → 401
  --allow-send     let the browser send events to actors (of nodes that accept sends)
`;

async function inspect(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(INSPECT_HELP);
    return 0;
  }
  const [{ connectNats }, { startInspectorServer }] = await Promise.all([import('./transport/nats.ts'), import('./inspector/server.ts')]);
  const url = flag(args, '--nats') ?? 'nats://127.0.0.1:4222';
  const transport = await connectNats({ servers: url, name: 'troupe-inspector' });
  const server = await startInspectorServer({ transport, cluster: flag(args, '--cluster') ?? 'troupe', ...serverFlags(args) });
  process.stdout.write(`inspector: ${server.url}\n`);
  await untilSignal();
  await server.close();
  await transport.close();
  return 0;
}

const SIM_HELP = `troupe sim <scenario> [options]

Runs a deterministic simulation: every node, the network and every timer on one seeded scheduler.
The same seed gives the same run; a failing run prints the command that replays it.

Options:
  --seed N          run this seed (default 1)
  --seeds N         run seeds 1..N (or --seed S --seeds N: S..S+N-1)
  --duration MS     simulated time with clients and faults (default: the scenario's test's)
  --faults A,B      fault kinds to apply (scenarios that take them: database — kill-leader,partition,pause or none)
  --report          print the scenario's full report for every seed (scenarios that make one: database, ecommerce; always with one seed)
  --inventory S     ecommerce: quorum (default) | weak | available  (ecommerce's --faults: partition,kill,slow | all | none)

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
  const duration = flag(args, '--duration') === undefined ? {} : { durationMs: num('--duration', 0) };
  const faultsFlag = flag(args, '--faults');
  const faults = faultsFlag === undefined ? {} : { faults: faultsFlag === 'none' ? [] : faultsFlag.split(',') };
  const [mod, { SimulationFailure }] = await Promise.all([
    import(pathToFileURL(join(repoRoot, scenario.module)).href) as Promise<{ run: (o: ScenarioRunOptions) => Promise<ScenarioRun> }>,
    import('./sim/failure.ts'),
  ]);
  let failed = 0;
  for (let seed = first; seed < first + count; seed++) {
    let r: ScenarioRun;
    try {
      r = await mod.run({ seed, ...duration, ...faults, argv: args });
    } catch (err) {
      if (!(err instanceof SimulationFailure)) throw err;
      r = { seed, ok: false, summary: 'an invariant broke during the run', failure: err.message, replay: err.replayCommand };
    }
    if (r.report !== undefined && (args.includes('--report') || count === 1)) process.stdout.write(r.report);
    process.stdout.write(`seed ${seed}: ${r.ok ? 'ok' : 'FAILED'} — ${r.summary}\n`);
    if (!r.ok) {
      failed++;
      process.stdout.write(`${(r.failure ?? '').slice(0, 4_000)}\nreplay: ${r.replay}\n`);
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

const DIAGRAM_HELP = `troupe diagram <machine module> [options]

Writes NAME.svg (laid out by ELK) and NAME.mmd (Mermaid stateDiagram-v2) for every XState machine
the module exports.

Options:
  --export NAME   only this export
  --out DIR       where to write (default: the current directory)
`;

async function diagram(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(DIAGRAM_HELP);
    return 0;
  }
  const file = args[0];
  if (!file || file.startsWith('--')) throw new UsageError('which module? e.g. troupe diagram actors/circuit-breaker/machine.ts');
  const only = flag(args, '--export');
  const out = resolve(flag(args, '--out') ?? '.');
  const { machineGraph, isMachineLike } = await import('./inspector/graph.ts');
  const { renderSvg, toMermaid } = await import('./inspector/diagram.ts');
  const mod = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  const machines = Object.entries(mod).filter(([name, v]) => isMachineLike(v) && (only === undefined || name === only));
  if (machines.length === 0) {
    throw new UsageError(only ? `${file} exports no machine named '${only}'` : `${file} exports no XState machine`);
  }
  mkdirSync(out, { recursive: true });
  for (const [name, machine] of machines) {
    const graph = machineGraph(machine as Parameters<typeof machineGraph>[0]);
    writeFileSync(join(out, `${name}.svg`), await renderSvg(graph));
    writeFileSync(join(out, `${name}.mmd`), toMermaid(graph));
    process.stdout.write(`${name}: ${join(out, `${name}.svg`)}, ${join(out, `${name}.mmd`)}\n`);
  }
  return 0;
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
    case 'diagram':
      return diagram(rest);
    case 'inspect':
      return inspect(rest);
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
