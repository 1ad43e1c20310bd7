/**
 * The `ecommerce` simulation scenario: the whole case study (both regions, gateways, inventory
 * replicas) on troupe's deterministic simulator — every node, link and timer on one seeded
 * scheduler — with the fault schedule applied through the nemesis (partition region us, crash
 * eu-3, slow eu's payments). The same seed gives the same run, report included.
 * `troupe sim ecommerce --seed N [--inventory …] [--faults …] [--duration MS]`.
 */
import type { ScenarioRun, ScenarioRunOptions } from '../../framework/sim/scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { SHOP_MESSAGES, startShopNode } from './node.ts';
import { formatText, summarize, type ShopReport } from './report.ts';
import {
  faultSchedule, flagOf, gatewayOf, regionSide, GATEWAY_MESSAGES, INVENTORY_SETTINGS, inventorySettings, parseFaults, REGIONS, runShop, shopConfig,
  type InventorySetting, type Region,
} from './topology.ts';

export interface EcommerceScenarioOptions {
  readonly seed: number;
  /** Simulated time of the workload. @default 6000 */
  readonly durationMs?: number;
  readonly inventory?: InventorySetting;
  /** 'all' | 'none' | a comma list of partition, kill, slow. @default 'all' */
  readonly faults?: string;
  readonly clientsPerRegion?: number;
}

export interface EcommerceScenarioResult {
  readonly seed: number;
  readonly report: ShopReport;
  /** The invariants the setting promises, checked: empty when they hold. */
  readonly violations: readonly string[];
  readonly replay: string;
}

/** What a report must show: progress, faults applied, and — where promised — nothing oversold or lost. */
export function violationsOf(report: ShopReport, faultsExpected: number): string[] {
  const v: string[] = [];
  if (report.ordersAcked === 0) v.push('no order was acknowledged (no progress)');
  if (report.faults.length < faultsExpected) v.push(`${report.faults.length} fault marks, expected at least ${faultsExpected}`);
  if (report.promisesNoOversell) {
    if (report.oversold > 0) v.push(`${report.oversold} units oversold under '${report.setting}'`);
    if (report.inventoryNegative > 0) v.push(`inventory below zero by ${report.inventoryNegative} under '${report.setting}'`);
    if (report.ordersLost > 0) v.push(`${report.ordersLost} acknowledged orders lost under '${report.setting}'`);
    if (report.staleReads > 0) v.push(`${report.staleReads} stale reads under '${report.setting}'`);
  }
  return v;
}

export async function runEcommerceScenario(options: EcommerceScenarioOptions): Promise<EcommerceScenarioResult> {
  const inventory = options.inventory ?? 'quorum';
  if (!INVENTORY_SETTINGS.includes(inventory)) throw new RangeError(`inventory must be one of ${INVENTORY_SETTINGS.join(', ')}`);
  const durationMs = options.durationMs ?? 6_000;
  const config = shopConfig(inventory, 'sim');
  const faults = faultSchedule(durationMs, parseFaults(options.faults));
  const gateways = REGIONS.map(gatewayOf);
  const sim = createSimulation({ seed: options.seed, nodes: [...config.nodes, ...gateways], scenario: 'ecommerce', latencyMs: [1, 5], trace: false, maxSteps: 20_000_000 });
  const messages = [...SHOP_MESSAGES, ...GATEWAY_MESSAGES];
  for (const n of config.nodes) startShopNode(sim.system(n, { messages }), config);
  for (const g of gateways) sim.system(g, { messages });
  const side = (r: Region): string[] => regionSide(config, r);
  try {
    let done = false;
    const running = runShop({
      clock: sim.clock, rng: sim.rng,
      sleep: (ms) => new Promise((r) => sim.clock.setTimeout(r, ms)),
      gateway: (r) => sim.system(gatewayOf(r)),
      partition: async (r) => sim.nemesis.partition([side(r), side(r === 'eu' ? 'us' : 'eu')]),
      heal: async () => sim.nemesis.heal(),
      kill: async (node) => sim.nemesis.crash(node),
    }, config, { durationMs, clientsPerRegion: options.clientsPerRegion ?? 4, faults, thinkMs: 5 }).finally(() => { done = true; });
    await sim.run({ until: () => done, maxSteps: 20_000_000 });
    const report = summarize(await running);
    // 'slow' marks its start and its end, 'partition' its start and the heal
    const expected = faults.reduce((n, f) => n + (f.kind === 'kill' ? 1 : 2), 0);
    return { seed: options.seed, report, violations: violationsOf(report, expected), replay: sim.replayCommand() };
  } finally {
    await sim.shutdown();
  }
}

/** The CLI's entry (`troupe sim ecommerce`): the report as text, and whether the promised invariants held. */
export async function runSimScenario(o: { seed: number; argv: readonly string[] }): Promise<{ ok: boolean; text: string; replay: string }> {
  const duration = flagOf(o.argv, '--duration');
  const inventory = (flagOf(o.argv, '--inventory') ?? 'quorum') as InventorySetting;
  const faults = flagOf(o.argv, '--faults') ?? 'all';
  const r = await runEcommerceScenario({ seed: o.seed, inventory, faults, ...(duration ? { durationMs: Number(duration) } : {}) });
  const s = inventorySettings(inventory);
  const replay = `${r.replay}${inventory !== 'quorum' ? ` --inventory ${inventory}` : ''}${faults !== 'all' ? ` --faults ${faults}` : ''}${duration ? ` --duration ${duration}` : ''}`;
  const verdict = r.violations.length === 0
    ? `invariants hold${s.promisesNoOversell ? ' (no oversell, no acknowledged order lost, no stale read)' : ' (progress, faults applied; this setting promises no oversell-freedom)'}`
    : `INVARIANTS VIOLATED: ${r.violations.join('; ')}`;
  return { ok: r.violations.length === 0, text: `${formatText(r.report)}\n${verdict}`, replay };
}

/** `troupe sim ecommerce`: one seed through the common scenario interface (flags from `argv`). */
export async function run(options: ScenarioRunOptions): Promise<ScenarioRun> {
  const argv = [...(options.argv ?? []), ...(options.durationMs !== undefined && !options.argv?.includes('--duration') ? ['--duration', String(options.durationMs)] : [])];
  const r = await runSimScenario({ seed: options.seed, argv });
  const lines = r.text.trimEnd().split('\n');
  return {
    seed: options.seed, ok: r.ok, report: `${lines.slice(0, -1).join('\n')}\n`, summary: lines[lines.length - 1] ?? '', replay: r.replay,
    ...(r.ok ? {} : { failure: lines[lines.length - 1] ?? 'invariants violated' }),
  };
}
