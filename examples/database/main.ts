/**
 * database — case study 2: a distributed database. The key space is split into 3 ranges, each a
 * 3-replica Raft group placed across 4 nodes (multi-Raft, as CockroachDB and TiKV do); leaders are
 * found through Raft's own election. 8 clients read and write through one circuit breaker and one
 * bulkhead per range while faults hit: a range leader is killed (and restarts from its log), a
 * node is partitioned, a leader is paused. The report gives throughput, latency p50/p99 over time
 * with the faults marked, errors by type, and the linearizability checker's verdict per range.
 *
 * Run:  troupe run database                              everything in this process, embedded bus
 *       troupe run database --spawn-nats | --nats URL    one OS process per node over NATS
 *       troupe run database --inspect                    watch every chart live
 *       troupe sim database --seed 1 --faults kill-leader,partition,pause   deterministic
 * Ctrl-C stops the workload, drains it and prints the report so far.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { messages as kvMessages } from '../../actors/raft/kv.pb.ts';
import {
  connectNats, createLogger, createMemoryBus, createRng, createSystem, entropySeed, realClock, withFaults,
  type ActorSystem, type Clock, type FaultyTransport, type InspectionSink,
} from '../../framework/index.ts';
import { actorSubject } from '../../framework/transport/subjects.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { NATS_SERVER_MISSING, natsServerAvailable, startNatsServer, type NatsServerHandle } from '../../framework/nats-server.ts';
import { createLeaderTracker, FAULT_NAMES, parseFaults, type FaultName, type FaultTarget } from './faults.ts';
import { createProgress, formatHtmlReport, formatReport, type DatabaseReport } from './report.ts';
import { runDatabase } from './run.ts';
import { createTopology, memoryStorages, startDatabaseNode, type Topology } from './topology.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** Cluster name of every node's system. */
export const DATABASE_CLUSTER = 'database';
/** The subject prefix of everything addressed to `node` (what a partition cuts). */
const nodePrefix = (node: string): string => actorSubject(DATABASE_CLUSTER, `${node}/x`).slice(0, -2);

export interface DatabaseOptions {
  /** Run one OS process per node over this NATS server. */
  nats?: string;
  /** Start a local nats-server for a multi-process run. */
  spawnNats?: boolean;
  /** Inspection sink for every system (`troupe run database --inspect`). */
  inspect?: InspectionSink;
  /** Workload time. @default 12_000 embedded, 15_000 over NATS */
  durationMs?: number;
  /** @default every fault: kill-leader, partition, pause */
  faults?: readonly FaultName[];
  clients?: number;
  /** The command line after the example's name: `--duration MS`, `--faults a,b|none`, `--clients N` (override the fields above). */
  argv?: readonly string[];
  /** Where the report and progress go. @default stdout */
  write?: (text: string) => void;
  /** Progress bar in place (TTY) or plain lines. @default whether stdout is a TTY */
  tty?: boolean;
  /** Aborting it stops the workload as Ctrl-C does: drain, then report what ran. */
  signal?: AbortSignal;
  /** Also write the report as HTML (charts) to this file; false: don't. @default a file in the OS temp directory */
  htmlReport?: string | false;
}

/** Run the case study; resolves with the report (also written out). */
/** The options with `argv`'s flags applied (bad values are a RangeError naming the flag). */
function withFlags(options: DatabaseOptions): DatabaseOptions {
  const value = (name: string): string | undefined => {
    const i = options.argv?.indexOf(name) ?? -1;
    return i >= 0 ? options.argv![i + 1] : undefined;
  };
  const count = (name: string): number | undefined => {
    const v = value(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive whole number, got '${v}'`);
    return n;
  };
  const durationMs = count('--duration');
  const clients = count('--clients');
  const faults = value('--faults');
  return {
    ...options,
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(clients !== undefined ? { clients } : {}),
    ...(faults !== undefined ? { faults: faults === 'none' ? [] : parseFaults(faults) } : {}),
  };
}

export async function main(given: DatabaseOptions = {}): Promise<DatabaseReport> {
  const options = withFlags(given);
  const write = options.write ?? ((s: string) => void process.stdout.write(s));
  const processes = options.nats !== undefined || options.spawnNats === true;
  const durationMs = options.durationMs ?? (processes ? 15_000 : 12_000);
  const topology = createTopology();
  const layout = `${topology.nodes.length} nodes, ${topology.ranges.length} ranges × 3 replicas (${topology.ranges.map((r) => `${r.id}: ${r.replicas.join(',')}`).join('; ')})`;
  // from here on Ctrl-C stops the workload (a second one ends the process)
  let stopped = false;
  const onSigint = (): void => { stopped = true; write('\nCtrl-C: draining the workload…\n'); };
  process.once('SIGINT', onSigint);
  let cluster: Cluster;
  try {
    cluster = processes ? await startProcessCluster(topology, options, write) : startEmbeddedCluster(topology, options);
  } catch (err) {
    process.removeListener('SIGINT', onSigint);
    throw err;
  }
  // performance.now(): sub-millisecond latencies on the embedded bus
  const clock: Clock = { ...realClock(), now: () => performance.now() };
  const progress = createProgress({ durationMs, write, tty: options.tty ?? process.stdout.isTTY === true });
  const counts = { ok: 0, errors: 0 };
  let startedMs = clock.now();
  let lastFault = '';
  const ticker = { id: undefined as ReturnType<Clock['setTimeout']> | undefined };
  const tick = (): void => {
    progress.update(clock.now() - startedMs, counts, lastFault);
    ticker.id = clock.setTimeout(tick, 200);
  };
  try {
    write(`database: ${layout}; ${options.clients ?? 8} clients; ${processes ? 'one OS process per node over NATS' : 'embedded in this process'}\n`);
    const report = await runDatabase({
      title: `database report (${processes ? 'processes over NATS' : 'embedded'}; ${layout})`,
      system: cluster.client, topology, target: cluster.target, clock, rng: createRng(entropySeed()), durationMs,
      faults: options.faults ?? FAULT_NAMES, ...(options.clients !== undefined ? { clients: options.clients } : {}),
      stopped: () => stopped || options.signal?.aborted === true,
      onStart: () => { startedMs = clock.now(); write('every range has a leader; workload running\n'); tick(); },
      onSample: (s) => { if (s.outcome === 'ok') counts.ok++; else counts.errors++; },
      onFault: (f) => { lastFault = `⚡ ${f.kind} ${f.node}`; progress.finish(); write(`⚡ ${(f.atMs / 1_000).toFixed(1)} s: ${f.description}\n`); },
    });
    if (ticker.id !== undefined) clock.clearTimeout(ticker.id);
    progress.update(clock.now() - startedMs, counts);
    progress.finish();
    write(formatReport(report));
    if (options.htmlReport !== false) {
      const file = options.htmlReport ?? join(tmpdir(), `troupe-database-report-${process.pid}.html`);
      writeFileSync(file, formatHtmlReport(report));
      write(`HTML report (charts): ${file}\n`);
    }
    return report;
  } finally {
    if (ticker.id !== undefined) clock.clearTimeout(ticker.id);
    process.removeListener('SIGINT', onSigint);
    await cluster.close();
  }
}

interface Cluster {
  client: ActorSystem;
  target: FaultTarget;
  close(): Promise<void>;
}

/** Every node a system on one in-process bus; faults through each node's fault-injecting transport. */
function startEmbeddedCluster(topology: Topology, options: DatabaseOptions): Cluster {
  const bus = createMemoryBus();
  const clock = realClock();
  const rng = createRng(entropySeed());
  const tracker = createLeaderTracker();
  const storage = memoryStorages();
  const systems = new Map<string, ActorSystem>();
  const transports = new Map<string, FaultyTransport>();
  const logger = createLogger({ level: 'error' });
  const inspect = options.inspect ? { inspect: options.inspect } : {};
  const start = (node: string): void => {
    const transport = withFaults(bus.connect({ name: node }), { clock, rng: rng.fork() });
    const system = createSystem({ cluster: DATABASE_CLUSTER, node, transport, logger, ...inspect });
    transports.set(node, transport);
    systems.set(node, system);
    startDatabaseNode(system, topology, node, {
      rng: rng.fork(), onRole: (range, role, term) => tracker.onRole(node, range, role, term),
      storage: storage(node),
    });
  };
  for (const n of topology.nodes) start(n);
  const clientTransport = withFaults(bus.connect({ name: 'client' }), { clock, rng: rng.fork() });
  transports.set('client', clientTransport);
  const client = createSystem({ cluster: DATABASE_CLUSTER, node: 'client', transport: clientTransport, logger, messages: [kvMessages], ...inspect });
  const others = (node: string): FaultyTransport[] => [...transports].filter(([n]) => n !== node).map(([, t]) => t);
  const target: FaultTarget = {
    leaderOf: (range) => tracker.leaderOf(range),
    async kill(node) {
      tracker.forget(node);
      const system = systems.get(node)!;
      systems.delete(node);
      await system.shutdown();
    },
    restart: (node) => start(node),
    isolate(node) {
      transports.get(node)!.partition(() => true);
      for (const t of others(node)) t.partition([nodePrefix(node)]);
    },
    heal() {
      for (const t of transports.values()) t.heal();
    },
    // one process cannot stop one node's event loop: a pause holds everything the node sends,
    // then delivers it late and in order, as the rest of the cluster would see a stop-the-world pause
    pause(node) {
      transports.get(node)!.delay(2_000, 2_000, { preserveOrder: true });
    },
    resume(node) {
      transports.get(node)!.delay(0, 0, { preserveOrder: true });
    },
  };
  return {
    client, target,
    async close() {
      await client.shutdown();
      await Promise.all([...systems.values()].map((s) => s.shutdown()));
    },
  };
}

/** One OS process per node (examples/database/node.ts) over NATS; this process is the client. */
async function startProcessCluster(topology: Topology, options: DatabaseOptions, write: (s: string) => void): Promise<Cluster> {
  let server: NatsServerHandle | undefined;
  let url = options.nats;
  if (url === undefined) {
    if (!natsServerAvailable()) throw new Error(`--spawn-nats needs nats-server: ${NATS_SERVER_MISSING}`);
    server = await startNatsServer();
    url = server.url;
    write(`started a local nats-server at ${url}\n`);
  }
  const data = mkdtempSync(join(tmpdir(), 'troupe-database-'));
  const tracker = createLeaderTracker();
  const procs = new Map<string, ChildProcess>();
  const start = async (node: string): Promise<void> => {
    procs.set(node, await startNodeProcess({
      entry: join(here, 'node.ts'), stdin: 'pipe',
      env: {
        TROUPE_NATS_URL: url!, TROUPE_NODE: node, TROUPE_DATA: data, TROUPE_DB_NODES: String(topology.nodes.length),
        TROUPE_DB_RANGES: String(topology.ranges.length), ...(options.inspect ? { TROUPE_INSPECT: '1' } : {}),
      },
      // "role <range> <role> <term>"
      onLine: (line) => {
        const [word, range, role, term] = line.split(' ');
        if (word === 'role' && range && role && term) tracker.onRole(node, range, role, Number(term));
      },
    }));
  };
  const clock = realClock();
  const clientTransport = withFaults(await connectNats({ servers: url, name: 'database-client' }), { clock, rng: createRng(entropySeed()) });
  const client = createSystem({
    cluster: DATABASE_CLUSTER, node: 'client', transport: clientTransport, logger: createLogger({ level: 'error' }), messages: [kvMessages],
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  try {
    await Promise.all(topology.nodes.map(start));
  } catch (err) {
    for (const p of procs.values()) p.kill('SIGKILL');
    await client.shutdown();
    await server?.stop();
    throw err;
  }
  await client.ready();
  const command = (node: string, line: string): void => { procs.get(node)?.stdin?.write(`${line}\n`); };
  const target: FaultTarget = {
    leaderOf: (range) => tracker.leaderOf(range),
    kill(node) {
      tracker.forget(node);
      procs.get(node)?.kill('SIGKILL');
    },
    restart: (node) => start(node), // recovers its logs from TROUPE_DATA
    // the node cuts everything it sends; the client stops sending to it
    isolate(node) {
      command(node, 'isolate');
      clientTransport.partition([nodePrefix(node)]);
    },
    heal() {
      for (const n of procs.keys()) command(n, 'heal');
      clientTransport.heal();
    },
    pause: (node) => { procs.get(node)?.kill('SIGSTOP'); },
    resume: (node) => { procs.get(node)?.kill('SIGCONT'); },
  };
  return {
    client, target,
    async close() {
      await client.shutdown();
      for (const p of procs.values()) p.kill('SIGKILL');
      await server?.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
