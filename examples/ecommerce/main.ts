/**
 * ecommerce — case study 1: a global shop in two regions under faults. Regions eu and us of three
 * nodes each; per region a load balancer (p2c-ewma, per-backend breakers) in front of stateless
 * API actors; carts and catalog sharded by key in each region; carts shipped asynchronously to the
 * other region (this example's own replication, with its lag measured); inventory in a quorum
 * replica group (N=3 over eu-1, eu-2, us-1). Shoppers browse, add to carts and check out while the
 * schedule partitions region us, kills eu-3 and slows eu's payment dependency; then a report.
 *
 * Run:  npx tsx framework/cli.ts run ecommerce [--inventory quorum|weak|available] [--duration MS]
 *         [--faults partition,kill,slow|all|none] [--report FILE.html] [--seed N]
 *       ... --nats URL | --spawn-nats    one OS process per shop node over a real nats-server
 *       npx tsx framework/cli.ts sim ecommerce --seed N    deterministic (sim-scenario.ts)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectNats, createMemoryBus, createRng, createSystem, realClock, silentLogger, withFaults,
  type ActorSystem, type Clock, type InspectionSink, type Transport,
} from '../../framework/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../framework/nats-server.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import type { FaultyTransport } from '../../framework/transport/faults.ts';
import { cutOff, SHOP_MESSAGES, startShopNode, type ShopNode } from './node.ts';
import { formatText, renderHtml, summarize, type ShopReport } from './report.ts';
import {
  faultSchedule, flagOf, gatewayOf, regionSide, GATEWAY_MESSAGES, INVENTORY_SETTINGS, parseFaults, regionOf, REGIONS, runShop, shopConfig,
  type InventorySetting, type Region, type ShopConfig, type ShopPlatform,
} from './topology.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** Where the HTML report goes without --report (gitignored). */
export const DEFAULT_REPORT = resolve(here, '../../.scratch/ecommerce-report.html');

export interface EcommerceOptions {
  nats?: string;
  spawnNats?: boolean;
  inspect?: InspectionSink;
  /** The command line after the example's name (--inventory, --duration, --faults, --report, --seed, --clients). */
  argv?: readonly string[];
  inventory?: InventorySetting;
  durationMs?: number;
  faults?: string;
  clientsPerRegion?: number;
  seed?: number;
  /** HTML report path; '' writes none. */
  report?: string;
  say?: (line: string) => void;
  /** Progress output (a bar on a terminal). */
  progress?: (line: string) => void;
  /** Aborting it ends the workload as Ctrl-C does: the shoppers stop, the faults are healed, the report covers what ran. */
  signal?: AbortSignal;
}

function resolveOptions(o: EcommerceOptions): Required<Pick<EcommerceOptions, 'durationMs' | 'faults' | 'clientsPerRegion' | 'seed' | 'report'>> & { inventory: InventorySetting } {
  const inventory = (flagOf(o.argv, '--inventory') ?? o.inventory ?? 'quorum') as InventorySetting;
  if (!INVENTORY_SETTINGS.includes(inventory)) throw new RangeError(`--inventory must be one of ${INVENTORY_SETTINGS.join(', ')}, got '${inventory}'`);
  const num = (name: string, v: number | undefined, d: number): number => {
    const s = flagOf(o.argv, name);
    const n = s === undefined ? v ?? d : Number(s);
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive whole number, got '${s}'`);
    return n;
  };
  return {
    inventory, durationMs: num('--duration', o.durationMs, 12_000), clientsPerRegion: num('--clients', o.clientsPerRegion, 6),
    seed: num('--seed', o.seed, 1), faults: flagOf(o.argv, '--faults') ?? o.faults ?? 'all',
    report: flagOf(o.argv, '--report') ?? o.report ?? DEFAULT_REPORT,
  };
}

const sleeper = (clock: Clock) => (ms: number): Promise<void> => new Promise((r) => clock.setTimeout(r, ms));

/** Everything in this process on the embedded bus; each node's transport can be cut (partition, kill). */
async function embedded(config: ShopConfig, seed: number, inspect: InspectionSink | undefined, run: (p: ShopPlatform) => Promise<ShopReport>): Promise<ShopReport> {
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const faults = new Map<string, FaultyTransport>();
  const systems = new Map<string, ActorSystem>();
  const create = (node: string, i: number): ActorSystem => {
    const transport = withFaults(bus.connect({ name: node }), { clock, rng: createRng(seed * 1_000 + i) });
    faults.set(node, transport);
    const system = createSystem({ cluster: config.cluster, node, transport, clock, logger: silentLogger(), messages: [...SHOP_MESSAGES, ...GATEWAY_MESSAGES], ...(inspect ? { inspect } : {}) });
    systems.set(node, system);
    return system;
  };
  const nodes = new Map<string, ShopNode>(config.nodes.map((n, i) => [n, startShopNode(create(n, i), config)]));
  REGIONS.forEach((r, i) => create(gatewayOf(r), 100 + i));
  const side = (r: Region): string[] => regionSide(config, r);
  try {
    return await run({
      clock, rng: createRng(seed), sleep: sleeper(clock),
      gateway: (r) => systems.get(gatewayOf(r))!,
      partition: async (r) => {
        for (const [mine, theirs] of [[side(r), side(r === 'eu' ? 'us' : 'eu')], [side(r === 'eu' ? 'us' : 'eu'), side(r)]] as const) {
          for (const n of mine) cutOff(faults.get(n)!, config.cluster, theirs);
        }
      },
      heal: async () => { for (const [n, f] of faults) if (nodes.has(n) || !config.nodes.includes(n)) f.heal(); },
      kill: async (node) => {
        faults.get(node)!.partition(() => true); // nothing leaves it from now on: a crash, not a goodbye
        const n = nodes.get(node)!;
        nodes.delete(node);
        await n.stop();
      },
    });
  } finally {
    for (const n of nodes.values()) await n.stop();
    for (const r of REGIONS) await systems.get(gatewayOf(r))!.shutdown();
    await bus.close();
  }
}

/** One OS process per shop node over NATS; the gateways (and the shoppers) in this process. */
async function overNats(config: ShopConfig, url: string, seed: number, run: (p: ShopPlatform) => Promise<ShopReport>, say: (l: string) => void): Promise<ShopReport> {
  const clock = realClock();
  const children = new Map<string, ChildProcess>();
  const transports: Transport[] = [];
  const gateways = new Map<Region, ActorSystem>();
  try {
    await Promise.all(config.nodes.map(async (node) => {
      children.set(node, await startNodeProcess({
        entry: join(here, 'process.ts'),
        env: { TROUPE_NATS_URL: url, TROUPE_NODE: node, TROUPE_CLUSTER: config.cluster, TROUPE_INVENTORY: config.inventory },
      }));
    }));
    say(`${children.size} node processes up (pids ${[...children.values()].map((c) => c.pid).join(', ')})`);
    for (const r of REGIONS) {
      const transport = await connectNats({ servers: url, name: gatewayOf(r) });
      transports.push(transport);
      gateways.set(r, createSystem({ cluster: config.cluster, node: gatewayOf(r), transport, logger: silentLogger(), messages: [...SHOP_MESSAGES, ...GATEWAY_MESSAGES] }));
    }
    const alive = (): string[] => config.nodes.filter((n) => children.has(n));
    const control = gateways.get('eu')!;
    return await run({
      clock, rng: createRng(seed), sleep: sleeper(clock),
      gateway: (r) => gateways.get(r)!,
      partition: async (r) => {
        const mine = config.nodes.filter((n) => regionOf(n) === r);
        const theirs = config.nodes.filter((n) => regionOf(n) !== r);
        for (const n of alive()) {
          const cut = regionOf(n) === r ? [...theirs, gatewayOf(r === 'eu' ? 'us' : 'eu')] : [...mine, gatewayOf(r)];
          control.ref(`${n}/faults`).send({ type: 'FaultPartition', nodes: cut });
        }
      },
      heal: async () => { for (const n of alive()) control.ref(`${n}/faults`).send({ type: 'FaultHeal', all: true }); },
      kill: async (node) => {
        children.get(node)?.kill('SIGKILL');
        children.delete(node);
      },
    });
  } finally {
    for (const g of gateways.values()) await g.shutdown();
    for (const t of transports) await t.close();
    await Promise.all([...children.values()].map((c) => new Promise<void>((r) => {
      if (c.exitCode !== null || c.signalCode !== null) return r();
      c.once('exit', () => r());
      c.kill('SIGTERM');
    })));
  }
}

/** Runs the case study; returns the report (tests read it). */
export async function main(options: EcommerceOptions = {}): Promise<ShopReport> {
  const say = options.say ?? ((line: string) => console.log(line));
  const o = resolveOptions(options);
  const config = shopConfig(o.inventory);
  const faults = faultSchedule(o.durationMs, parseFaults(o.faults));
  const progress = options.progress ?? (process.stdout.isTTY ? (l: string) => process.stdout.write(`\r${l}`) : () => {});
  const bar = (f: number, ops: number): void => progress(`[${'#'.repeat(Math.round(f * 30)).padEnd(30)}] ${String(Math.round(f * 100)).padStart(3)}%  ${ops} operations`);
  const mode = options.nats || options.spawnNats ? 'over NATS, one OS process per shop node' : 'embedded, one process';
  say(`global e-commerce: regions eu, us × 3 nodes, ${mode}; inventory '${o.inventory}'; ${o.durationMs / 1_000} s, ${o.clientsPerRegion} shoppers per region`);
  say(`fault schedule: ${faults.length ? faults.map((f) => `${f.kind}@${(f.atMs / 1_000).toFixed(1)}s`).join(', ') : 'none'}`);
  // Ctrl-C drains: the shoppers stop, every acknowledged order is still checked, the report is printed
  let interrupted = false;
  const onSigint = (): void => { interrupted = true; say('\nCtrl-C: stopping the shoppers, healing, then the report…'); };
  const stopped = (): boolean => interrupted || options.signal?.aborted === true;
  const go = async (p: ShopPlatform): Promise<ShopReport> => {
    const r = summarize(await runShop(p, config, { durationMs: o.durationMs, clientsPerRegion: o.clientsPerRegion, faults, thinkMs: 5, onProgress: bar, stopped }));
    progress('\n');
    return r;
  };
  process.once('SIGINT', onSigint);
  let report: ShopReport;
  let server: NatsServerHandle | undefined;
  try {
    if (options.nats || options.spawnNats) {
      let url = options.nats;
      if (!url) {
        server = await startNatsServer();
        url = server.url;
        say(`nats-server started at ${url}`);
      }
      report = await overNats(config, url, o.seed, go, say);
    } else {
      report = await embedded(config, o.seed, options.inspect, go);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    await server?.stop();
  }
  say(formatText(report));
  if (o.report) {
    mkdirSync(dirname(resolve(o.report)), { recursive: true });
    writeFileSync(resolve(o.report), renderHtml(report));
    say(`HTML report: ${resolve(o.report)}`);
  }
  return report;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main({ argv: process.argv.slice(2) });
}
