/**
 * One node of the e-commerce topology: what every shop node runs, whatever carries its messages
 * (the embedded bus, the simulator, or NATS in its own OS process — see process.ts).
 *
 *   membership + receptionist     joinCluster with the region as role; the API actor registered
 *                                 under `api-<region>` for the region's load balancer
 *   api                           a stateless API actor: Browse / AddToCart / Checkout
 *   sharding                      cart-<region> and catalog-<region> (hosted in that region);
 *                                 stock (one per SKU over every shop node, or per region when the
 *                                 inventory setting is 'available')
 *   inventory replica             on the nodes the topology names (a quorum replica group, N = 3)
 *   payments                      the dependency that can be slowed (the load-balancer example's
 *                                 worker), called under a circuit breaker wrapped around a timeout
 *   inbox                         turns entities' EntityReply tells back into answers
 *   faults                        (optional) the node's fault switch: FaultPartition / FaultHeal
 *
 * Cross-region replication (this example's own, clearly not a library pattern: troupe's
 * primary–backup replication is not available yet): after a cart add is acknowledged in the home
 * region, the API ships a copy (`CartAdd { replicated: true }`) asynchronously to the cart's
 * entity in the other region and measures the round trip as the replication lag. Nothing waits
 * for it; a copy lost to a partition stays lost (no anti-entropy) — the lag and the losses are
 * reported, not hidden.
 */
import { assign, emit, setup } from 'xstate';
import { createQuorumGroup, quorumMessages, type QuorumGroup } from '../../actors/quorum/quorum.ts';
import { spawnQuorumReplica } from '../../actors/quorum/replica.ts';
import { startShardRegion, type ShardRegion } from '../../actors/sharding/region.ts';
import { createCircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { wrap } from '../../actors/policy/policy.ts';
import { timeout } from '../../actors/policy/timeout.ts';
import {
  createReceptionist, defineActor, isBrokenCircuitError, isQuorumUnreachableError, joinCluster, originOf,
  type ActorSystem, type Membership, type MessageObject, type Origin,
} from '../../framework/index.ts';
import type { FaultyTransport } from '../../framework/transport/faults.ts';
import { nodeSubject } from '../../framework/transport/subjects.ts';
import { messages as workerMessages } from '../load-balancer.pb.ts';
import { spawnWorker } from '../load-balancer.ts';
import { cartEntity, catalogEntity, stockEntity, type Reserve } from './entities.ts';
import { messages, type ApiResult, type EntityReply, type Message, type StockVersion } from './shop.pb.ts';
import type { ShopConfig } from './topology.ts';
import { inventorySettings, otherRegion, regionOf, stockEntityType } from './topology.ts';

/** Time an entity has to answer through sharding before the API gives up on it. */
export const ENTITY_TIMEOUT_MS = 600;
/** Time the payment dependency has per checkout (the timeout policy). */
export const PAYMENT_TIMEOUT_MS = 150;

/** A running shop node. */
export interface ShopNode {
  readonly node: string;
  readonly system: ActorSystem;
  readonly membership: Membership;
  stop(): Promise<void>;
}

/** The message sets a shop node's system must be created with. */
export const SHOP_MESSAGES = [messages, quorumMessages, workerMessages];

type Api = Extract<Message, { type: 'ApiBrowse' | 'ApiAddToCart' | 'ApiCheckout' }>;

const apiMachine = setup({ types: { context: {} as Record<string, never>, events: {} as Message } }).createMachine({
  id: 'api',
  context: {},
  on: {
    // stateless: every request is handed to the host, which answers it (it needs async calls)
    ApiBrowse: { actions: emit(({ event }) => ({ type: 'api.request', request: event, origin: originOf(event) })) },
    ApiAddToCart: { actions: emit(({ event }) => ({ type: 'api.request', request: event, origin: originOf(event) })) },
    ApiCheckout: { actions: emit(({ event }) => ({ type: 'api.request', request: event, origin: originOf(event) })) },
  },
});
const inboxMachine = setup({ types: { context: {} as { received: number }, events: {} as Message } }).createMachine({
  id: 'inbox',
  context: { received: 0 },
  on: { EntityReply: { actions: [assign({ received: ({ context }) => context.received + 1 }), emit(({ event }) => ({ type: 'inbox.reply', reply: event }))] } },
});
const faultsMachine = setup({ types: { context: {} as Record<string, never>, events: {} as Message } }).createMachine({
  id: 'faults',
  context: {},
  on: {
    FaultPartition: { actions: emit(({ event }) => ({ type: 'faults.partition', nodes: event.type === 'FaultPartition' ? event.nodes : [] })) },
    FaultHeal: { actions: emit({ type: 'faults.heal' }) },
  },
});
const Api = defineActor({ type: 'shop-api', machine: apiMachine, messages });
const Inbox = defineActor({ type: 'shop-inbox', machine: inboxMachine, messages });
const Faults = defineActor({ type: 'shop-faults', machine: faultsMachine, messages });

/** Cut `transport`'s outbound messages to `nodes` (their actors and system endpoints). */
export function cutOff(transport: FaultyTransport, cluster: string, nodes: readonly string[]): void {
  transport.partition(nodes.map((n) => nodeSubject(cluster, n).slice(0, -2)));
}

/**
 * Start the shop's services on `system` (node name `<region>-<i>`). `faults`, when given, is the
 * node's fault-injecting transport, switched by FaultPartition / FaultHeal sent to `<node>/faults`.
 */
export function startShopNode(system: ActorSystem, config: ShopConfig, faults?: FaultyTransport): ShopNode {
  const region = regionOf(system.node);
  const other = otherRegion(region);
  const membership = joinCluster(system, { roles: [region, 'shop'], ...config.membership });
  const reception = createReceptionist(system, membership);
  const settings = inventorySettings(config.inventory);
  const inventory: QuorumGroup = createQuorumGroup(system, {
    replicas: config.replicas.map((n) => `${n}/inventory`), w: settings.w, r: settings.r, allowWeakQuorum: settings.w + settings.r <= config.replicas.length,
    timeoutMs: config.quorumTimeoutMs, name: 'inventory',
  });
  if (config.replicas.includes(system.node)) spawnQuorumReplica(system, { name: 'inventory', handoffIntervalMs: 200 });
  const payments = spawnWorker(system, 'payments', 1);
  // the dependency's protection: a call gets PAYMENT_TIMEOUT_MS; 3 failures in a row open the
  // breaker for 300 ms, during which checkouts fail fast instead of waiting on a slow service
  const paymentBreaker = createCircuitBreaker({ name: 'payments-breaker', consecutiveFailures: 3, openMs: 300, clock: system.clock });
  const paymentPolicy = wrap(paymentBreaker, timeout({ timeoutMs: PAYMENT_TIMEOUT_MS, clock: system.clock }));

  // --- asks through sharding: a request id per ask, answered by the inbox -------------------
  const pending = new Map<string, { resolve: (r: EntityReply) => void; timer: unknown }>();
  let nextRequest = 0;
  const inbox = system.spawn(Inbox, {
    name: 'inbox',
    onEffect: (effect) => {
      const reply = (effect as { reply?: EntityReply }).reply;
      const p = reply && pending.get(reply.requestId);
      if (!p) return; // late: the ask already timed out
      pending.delete(reply.requestId);
      system.clock.clearTimeout(p.timer as never);
      p.resolve(reply);
    },
  });
  const askEntity = (shards: ShardRegion, key: string, message: (requestId: string) => MessageObject): Promise<EntityReply | undefined> =>
    new Promise((resolve) => {
      const requestId = `${system.node}-${++nextRequest}`;
      const timer = system.clock.setTimeout(() => {
        pending.delete(requestId);
        resolve(undefined);
      }, ENTITY_TIMEOUT_MS);
      pending.set(requestId, { resolve, timer });
      shards.tell(key, message(requestId), inbox.address);
    });

  // --- inventory: one reservation = read-check-write of `stock:<sku>` (the list of its orders) -
  const reserve: Reserve = async (sku, orderId) => {
    const key = `stock:${sku}`;
    try {
      const read = await inventory.get(key);
      const orders = read.value ? read.value.split(',') : [];
      if (orders.includes(orderId) && read.version) return { sku, ...read.version };
      if (orders.length >= config.stockPerSku) throw new Error('out-of-stock');
      const { version } = await inventory.put(key, [...orders, orderId].join(','));
      return { sku, wallMs: version.wallMs, logical: version.logical, writer: version.writer };
    } catch (err) {
      if (err instanceof Error && err.message === 'out-of-stock') throw err;
      throw new Error(isQuorumUnreachableError(err) ? 'unavailable' : 'unavailable');
    }
  };

  const shard = (entityType: string, entity: Parameters<typeof startShardRegion>[2]['entity'], role: string): ShardRegion =>
    startShardRegion(system, membership, { entityType, entity, role, numberOfShards: config.shards, passivateIdleMs: 0, claimRetryMs: 200, gapTimeoutMs: 500 });
  const carts = { eu: shard('cart-eu', cartEntity(), 'eu'), us: shard('cart-us', cartEntity(), 'us') };
  const catalog = shard(`catalog-${region}`, catalogEntity(), region);
  const stockType = stockEntityType(config.inventory, region);
  const stock = shard(stockType, stockEntity(reserve), stockType === 'stock' ? 'shop' : region);

  const lags: number[] = [];
  const result = (outcome: string, more: Partial<Omit<ApiResult, 'type' | 'outcome'>> = {}): ApiResult =>
    ({ type: 'ApiResult', outcome, stock: 0, versions: [], skus: [], replicationLagMs: lags.splice(0), ...more });

  const handle = async (req: Api): Promise<ApiResult> => {
    switch (req.type) {
      case 'ApiBrowse': {
        const product = await askEntity(catalog, req.sku, (requestId) => ({ type: 'ProductGet', requestId }));
        if (!product) return result('timeout');
        try {
          const read = await inventory.get(`stock:${req.sku}`);
          const sold = read.value ? read.value.split(',').length : 0;
          const versions: Omit<StockVersion, 'type'>[] = read.version ? [{ sku: req.sku, ...read.version }] : [];
          return result('ok', { stock: Math.max(0, config.stockPerSku - sold), versions });
        } catch (err) {
          return result(isQuorumUnreachableError(err) ? 'unavailable' : 'error');
        }
      }
      case 'ApiAddToCart': {
        const added = await askEntity(carts[region], req.cart, (requestId) => ({ type: 'CartAdd', requestId, sku: req.sku, replicated: false }));
        if (!added) return result('timeout');
        const shippedAt = system.clock.now();
        void askEntity(carts[other], req.cart, (requestId) => ({ type: 'CartAdd', requestId, sku: req.sku, replicated: true }))
          .then((copied) => { if (copied) lags.push(system.clock.now() - shippedAt); });
        return result('ok');
      }
      case 'ApiCheckout': {
        const cart = await askEntity(carts[region], req.cart, (requestId) => ({ type: 'CartGet', requestId }));
        if (!cart) return result('timeout');
        if (cart.skus.length === 0) return result('cart-empty');
        try {
          // a signal per call: the policies' shared default would collect one listener per concurrent call
          await paymentPolicy.execute(({ signal }) => system.ask(payments, { type: 'Work', n: 0, data: new Uint8Array() }, { timeoutMs: PAYMENT_TIMEOUT_MS * 2, signal }), new AbortController().signal);
        } catch (err) {
          return result(isBrokenCircuitError(err) ? 'payment-circuit-open' : 'payment-timeout');
        }
        const versions: Omit<StockVersion, 'type'>[] = [];
        for (const sku of cart.skus) {
          const r = await askEntity(stock, sku, (requestId) => ({ type: 'StockReserve', requestId, orderId: req.orderId }));
          if (!r) return result('timeout');
          if (r.error) return result(r.error);
          if (r.version) versions.push(r.version);
        }
        await askEntity(carts[region], req.cart, (requestId) => ({ type: 'CartClear', requestId }));
        return result('ok', { versions, skus: cart.skus });
      }
    }
  };
  const api = system.spawn(Api, {
    name: 'api',
    onEffect: (effect, self) => {
      const e = effect as { type: string; request: Api; origin?: Origin };
      if (e.type !== 'api.request' || !e.origin) return;
      const origin = e.origin;
      handle(e.request).then((answer) => system.reply(origin, answer, self), () => system.reply(origin, result('error'), self));
    },
  });
  const unregister = reception.register(`api-${region}`, api);
  if (faults) {
    system.spawn(Faults, {
      name: 'faults',
      onEffect: (effect) => {
        const e = effect as { type: string; nodes?: string[] };
        if (e.type === 'faults.partition') cutOff(faults, system.cluster, e.nodes ?? []);
        if (e.type === 'faults.heal') faults.heal();
      },
    });
  }
  return {
    node: system.node, system, membership,
    async stop() {
      unregister();
      paymentBreaker.dispose();
      for (const r of [carts.eu, carts.us, catalog, stock]) await r.stop();
      await reception.stop();
      await membership.stop();
      await system.shutdown();
    },
  };
}
