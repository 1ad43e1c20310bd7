/**
 * The e-commerce topology and its run, independent of what carries the messages: two regions
 * (eu, us) of three shop nodes each, a gateway per region (the load balancer in front of the
 * region's API actors, and the region's shoppers), an inventory quorum group over eu-1, eu-2, us-1.
 * `runShop` drives the workload (browse, add to cart, checkout), applies the fault schedule, and
 * checks the outcome; the platforms (main.ts: embedded and NATS; sim-scenario.ts) supply systems,
 * a clock and the faults.
 */
import { createLoadBalancer, type LoadBalancer } from '../../actors/load-balancer/load-balancer.ts';
import { createQuorumGroup, quorumMessages, type QuorumGroup } from '../../actors/quorum/quorum.ts';
import { compareVersions } from '../../actors/quorum/versions.ts';
import { createReceptionist, joinCluster, type ActorSystem, type Clock, type MembershipOptions, type Rng } from '../../framework/index.ts';
import type { ApiResult, StockVersion } from './shop.pb.ts';

export type Region = 'eu' | 'us';
export const REGIONS: readonly Region[] = ['eu', 'us'];

/**
 * How inventory is kept, and what it promises:
 * - `quorum`: W=2 R=2 of N=3, one stock entity per SKU cluster-wide → never oversold; checkouts on
 *   the side of a split without a quorum fail (consistency over availability).
 * - `weak`: W=1 R=1, one stock entity per SKU → reads may miss writes: oversold possible.
 * - `available`: W=1 R=1, one stock entity per SKU *per region* → both sides keep selling through a
 *   split, and concurrent regions overwrite each other (last writer wins): oversold and lost orders
 *   expected (availability over consistency).
 */
export type InventorySetting = 'quorum' | 'weak' | 'available';
export const INVENTORY_SETTINGS: readonly InventorySetting[] = ['quorum', 'weak', 'available'];

export function inventorySettings(s: InventorySetting): { w: number; r: number; promisesNoOversell: boolean } {
  return s === 'quorum' ? { w: 2, r: 2, promisesNoOversell: true } : { w: 1, r: 1, promisesNoOversell: false };
}
export const stockEntityType = (s: InventorySetting, region: Region): string => (s === 'available' ? `stock-${region}` : 'stock');
export const regionOf = (node: string): Region => (node.startsWith('us') ? 'us' : 'eu');
export const otherRegion = (r: Region): Region => (r === 'eu' ? 'us' : 'eu');

/** The nodes on `r`'s side of a region partition: its shop nodes and its gateway. */
export const regionSide = (config: ShopConfig, r: Region): string[] => [...config.nodes.filter((n) => regionOf(n) === r), gatewayOf(r)];

/** The value after `name` in a command line, if any. */
export function flagOf(argv: readonly string[] | undefined, name: string): string | undefined {
  const i = argv?.indexOf(name) ?? -1;
  return i >= 0 ? argv![i + 1] : undefined;
}

export interface ShopConfig {
  readonly cluster: string;
  readonly nodes: readonly string[];
  readonly replicas: readonly string[];
  readonly inventory: InventorySetting;
  readonly skus: number;
  readonly stockPerSku: number;
  readonly shards: number;
  readonly quorumTimeoutMs: number;
  readonly membership: MembershipOptions;
}

export function shopConfig(inventory: InventorySetting = 'quorum', cluster = 'shop'): ShopConfig {
  return {
    cluster, inventory,
    nodes: ['eu-1', 'eu-2', 'eu-3', 'us-1', 'us-2', 'us-3'],
    replicas: ['eu-1', 'eu-2', 'us-1'],
    skus: 24, stockPerSku: 12, shards: 32, quorumTimeoutMs: 250,
    membership: { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 400, downAfterMs: DOWN_AFTER_MS, joinGraceMs: 300 },
  };
}
/** A member silent this long after it became suspect is down: a killed node's shards move then. */
export const DOWN_AFTER_MS = 2_000;
/**
 * Longest partition in the schedule: below the failure detector's suspect + down bound (≈ 3 s with
 * the settings above). A longer one makes both sides mark each other `down`, which is final per
 * incarnation — troupe's membership has no split-brain resolver (framework/membership/README.md),
 * so the regions would never rejoin, and two stock owners per SKU could then race.
 */
export const MAX_PARTITION_MS = 1_500;
export const gatewayOf = (r: Region): string => `gw-${r}`;

/** One fault of the schedule; `atMs`/`forMs` relative to the workload's start. */
export type Fault =
  | { readonly kind: 'partition'; readonly region: Region; readonly atMs: number; readonly forMs: number }
  | { readonly kind: 'kill'; readonly node: string; readonly atMs: number }
  | { readonly kind: 'slow'; readonly region: Region; readonly delayMs: number; readonly atMs: number; readonly forMs: number };
export type FaultKind = Fault['kind'];
export const FAULT_KINDS: readonly FaultKind[] = ['partition', 'kill', 'slow'];

/** The schedule for a run of `durationMs`: partition us, kill eu-3, slow eu's payments — the kinds asked for. */
export function faultSchedule(durationMs: number, kinds: readonly FaultKind[] = FAULT_KINDS): Fault[] {
  const at = (f: number): number => Math.round(durationMs * f);
  const all: Fault[] = [
    { kind: 'partition', region: 'us', atMs: at(0.2), forMs: Math.min(at(0.2), MAX_PARTITION_MS) },
    { kind: 'kill', node: 'eu-3', atMs: at(0.5) },
    { kind: 'slow', region: 'eu', delayMs: 400, atMs: at(0.7), forMs: at(0.15) },
  ];
  return all.filter((f) => kinds.includes(f.kind));
}

export function parseFaults(spec: string | undefined): FaultKind[] {
  if (spec === undefined || spec === 'all') return [...FAULT_KINDS];
  if (spec === 'none') return [];
  const kinds = spec.split(',').map((s) => s.trim());
  for (const k of kinds) if (!FAULT_KINDS.includes(k as FaultKind)) throw new RangeError(`unknown fault '${k}': use ${FAULT_KINDS.join(', ')}, all or none`);
  return kinds as FaultKind[];
}

/** What a platform provides: gateways' systems, the clock and randomness, and the faults. */
export interface ShopPlatform {
  readonly clock: Clock;
  readonly rng: Rng;
  gateway(region: Region): ActorSystem;
  partition(region: Region): Promise<void>;
  heal(): Promise<void>;
  kill(node: string): Promise<void>;
  /** Wait `ms` on the platform's clock. */
  sleep(ms: number): Promise<void>;
}

type Stamp = Omit<StockVersion, 'type' | 'sku'>;
/** `a` is a later write than `b` (HLC timestamp, then writer — the quorum's order). */
const newer = (a: Stamp, b: Stamp): boolean => compareVersions({ ...a, vector: {} }, { ...b, vector: {} }) > 0;

export type Op = 'browse' | 'add' | 'checkout';
export interface OpRecord { readonly atMs: number; readonly latencyMs: number; readonly op: Op; readonly outcome: string }
export interface FaultMark { readonly atMs: number; readonly label: string }

export interface RunOptions {
  readonly durationMs: number;
  readonly clientsPerRegion: number;
  readonly faults: readonly Fault[];
  readonly thinkMs?: number;
  readonly onProgress?: (fraction: number, ops: number) => void;
  /** Polled by every shopper: true ends the workload early (Ctrl-C); the run then heals and reports. */
  readonly stopped?: () => boolean;
}

/** The raw outcome of a run (report.ts summarises it). */
export interface ShopRun {
  readonly config: ShopConfig;
  readonly durationMs: number;
  readonly ops: readonly OpRecord[];
  readonly faults: readonly FaultMark[];
  readonly ordersAcked: number;
  readonly ordersLost: readonly string[];
  readonly oversold: number;
  readonly oversoldSkus: number;
  readonly inventoryNegative: number;
  readonly staleReads: number;
  readonly readsChecked: number;
  readonly replicationLagsMs: readonly number[];
  readonly cartsAddedHome: number;
}

/** Join a gateway to the cluster: its load balancer over `api-<region>`. */
export function startGateway(system: ActorSystem, config: ShopConfig, region: Region, rng: Rng): { lb: LoadBalancer; stop(): Promise<void> } {
  const membership = joinCluster(system, { roles: ['gateway'], ...config.membership });
  const reception = createReceptionist(system, membership);
  const lb = createLoadBalancer(system, {
    key: `api-${region}`, receptionist: reception, strategy: 'p2c-ewma', askTimeoutMs: 2_500, maxAttempts: 2,
    breaker: { consecutiveFailures: 3, openMs: 500 }, name: `lb-${region}`, rng,
  });
  return {
    lb,
    async stop() {
      await lb.dispose();
      await reception.stop();
      await membership.stop();
    },
  };
}

/** Wait for `cond` on `clock`, failing after `timeoutMs`. */
export async function until(platform: Pick<ShopPlatform, 'clock' | 'sleep'>, cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = platform.clock.now() + timeoutMs;
  while (!cond()) {
    if (platform.clock.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await platform.sleep(20);
  }
}

/** Run the workload with the fault schedule; then heal, and check every acknowledged order. */
export async function runShop(platform: ShopPlatform, config: ShopConfig, options: RunOptions): Promise<ShopRun> {
  const gateways = new Map(REGIONS.map((r) => [r, startGateway(platform.gateway(r), config, r, platform.rng)]));
  try {
    const perRegion = config.nodes.filter((n) => regionOf(n) === 'eu').length;
    await until(platform, () => REGIONS.every((r) => gateways.get(r)!.lb.backends().length === perRegion), 15_000, 'every API actor behind its load balancer');
    const clock = platform.clock;
    const start = clock.now();
    const end = start + options.durationMs;
    const ops: OpRecord[] = [];
    const marks: FaultMark[] = [];
    const acked: { orderId: string; skus: readonly string[] }[] = [];
    const ackedWrites = new Map<string, { at: number; version: Omit<StockVersion, 'type' | 'sku'> }[]>();
    const lags: number[] = [];
    let staleReads = 0;
    let readsChecked = 0;
    let cartsAddedHome = 0;

    const mark = (label: string): void => { marks.push({ atMs: clock.now() - start, label }); };
    const running = (): boolean => clock.now() < end && options.stopped?.() !== true;
    const faultTimers: Array<ReturnType<typeof clock.setTimeout>> = [];
    for (const f of options.faults) {
      faultTimers.push(clock.setTimeout(() => {
        if (f.kind === 'partition') {
          mark(`partition ${f.region}`);
          void platform.partition(f.region);
          faultTimers.push(clock.setTimeout(() => { mark('heal'); void platform.heal(); }, f.forMs));
        } else if (f.kind === 'kill') {
          mark(`kill ${f.node}`);
          void platform.kill(f.node);
        } else {
          const slow = (delayMs: number): void => {
            for (const n of config.nodes.filter((x) => regionOf(x) === f.region)) {
              platform.gateway(f.region).ref(`${n}/payments`).send({ type: 'SetBehaviour', delayMs, failing: false });
            }
          };
          mark(`slow payments ${f.region}`);
          slow(f.delayMs);
          faultTimers.push(clock.setTimeout(() => { mark('payments ok'); slow(1); }, f.forMs));
        }
      }, f.atMs));
    }
    const tick = (): void => {
      if (!running()) return;
      options.onProgress?.(Math.min(1, (clock.now() - start) / options.durationMs), ops.length);
      clock.setTimeout(tick, 250);
    };
    if (options.onProgress) tick();

    const call = async (region: Region, op: Op, message: Parameters<LoadBalancer['ask']>[0]): Promise<ApiResult | undefined> => {
      const t0 = clock.now();
      let outcome: string;
      let result: ApiResult | undefined;
      try {
        result = await gateways.get(region)!.lb.ask<ApiResult>(message);
        outcome = result.outcome;
        lags.push(...result.replicationLagMs);
      } catch (err) {
        outcome = err instanceof Error ? (err.name === 'Error' ? 'error' : err.name) : 'error';
      }
      ops.push({ atMs: t0 - start, latencyMs: clock.now() - t0, op, outcome });
      return outcome === 'ok' ? result : undefined;
    };
    const sku = (): string => `sku-${Math.floor(platform.rng.next() ** 2 * config.skus)}`;
    const shopper = async (region: Region, id: number): Promise<void> => {
      for (let n = 1; running(); n++) {
        const browsed = sku();
        const readStart = clock.now();
        const view = await call(region, 'browse', { type: 'ApiBrowse', sku: browsed });
        const seen = view?.versions[0];
        if (view) {
          readsChecked++;
          const newest = (ackedWrites.get(browsed) ?? []).filter((w) => w.at < readStart).reduce<Omit<StockVersion, 'type' | 'sku'> | undefined>(
            (best, w) => (best === undefined || newer(w.version, best) ? w.version : best), undefined);
          if (newest && (seen === undefined || newer(newest, seen))) staleReads++;
        }
        const cart = `c-${region}-${id}-${n}`;
        const items = 1 + platform.rng.int(2);
        for (let i = 0; i < items; i++) {
          if (await call(region, 'add', { type: 'ApiAddToCart', cart, sku: i === 0 ? browsed : sku() })) cartsAddedHome++;
        }
        const orderId = `o-${region}-${id}-${n}`;
        const order = await call(region, 'checkout', { type: 'ApiCheckout', cart, orderId });
        if (order) {
          acked.push({ orderId, skus: order.skus });
          for (const v of order.versions) {
            let list = ackedWrites.get(v.sku);
            if (!list) ackedWrites.set(v.sku, (list = []));
            list.push({ at: clock.now(), version: { wallMs: v.wallMs, logical: v.logical, writer: v.writer } });
          }
        }
        if (options.thinkMs) await platform.sleep(options.thinkMs);
      }
    };
    await Promise.all(REGIONS.flatMap((r) => Array.from({ length: options.clientsPerRegion }, (_, i) => shopper(r, i + 1))));
    // stopped early: the faults still to come are not applied (heal() below ends those under way)
    const ranMs = Math.min(options.durationMs, clock.now() - start);
    if (ranMs < options.durationMs) for (const t of faultTimers) clock.clearTimeout(t);
    options.onProgress?.(Math.min(1, (clock.now() - start) / options.durationMs), ops.length);
    await platform.heal();

    // --- the verdict: read every SKU's order list from all three replicas (R = 3 after the heal)
    const verifier: QuorumGroup = createQuorumGroup(platform.gateway('eu'), {
      replicas: config.replicas.map((n) => `${n}/inventory`), w: 1, r: config.replicas.length, timeoutMs: 1_000, name: 'verify',
    });
    const recorded = new Map<string, Set<string>>();
    let inventoryNegative = 0;
    for (let i = 0; i < config.skus; i++) {
      const key = `sku-${i}`;
      let value: string | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          value = (await verifier.get(`stock:${key}`)).value;
          break;
        } catch (err) {
          if (attempt >= 10) throw err;
          await platform.sleep(200);
        }
      }
      const orders = value ? value.split(',') : [];
      if (orders.length > config.stockPerSku) inventoryNegative += orders.length - config.stockPerSku;
      recorded.set(key, new Set(orders));
    }
    const lost = acked.filter((o) => o.skus.some((s) => !recorded.get(s)?.has(o.orderId))).map((o) => o.orderId);
    const unitsSold = new Map<string, number>();
    // one unit per (order, SKU): a SKU twice in a cart is one reservation (reserve is idempotent per order)
    for (const o of acked) for (const s of new Set(o.skus)) unitsSold.set(s, (unitsSold.get(s) ?? 0) + 1);
    let oversold = 0;
    let oversoldSkus = 0;
    for (const n of unitsSold.values()) {
      if (n > config.stockPerSku) {
        oversold += n - config.stockPerSku;
        oversoldSkus++;
      }
    }
    return {
      config, durationMs: ranMs, ops, faults: marks, ordersAcked: acked.length, ordersLost: lost, oversold, oversoldSkus,
      inventoryNegative, staleReads, readsChecked, replicationLagsMs: lags, cartsAddedHome,
    };
  } finally {
    for (const g of gateways.values()) await g.stop();
  }
}

/** Message sets a gateway's system needs. */
export const GATEWAY_MESSAGES = [quorumMessages];
