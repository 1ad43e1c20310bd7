/**
 * One shop node of the e-commerce case study as its own OS process over NATS (started by main.ts
 * with --nats / --spawn-nats, and by the integration test). Environment: TROUPE_NATS_URL,
 * TROUPE_NODE (e.g. eu-2), TROUPE_CLUSTER (default shop), TROUPE_INVENTORY (quorum | weak |
 * available), TROUPE_INSPECT=1 (publish inspection events for `troupe inspect --nats URL --cluster
 * shop`). Its transport can be cut by FaultPartition / FaultHeal told to `<node>/faults`.
 * Prints "ready" once serving; SIGTERM stops it.
 */
import { connectNats, createInspectionPublisher, createRng, createSystem, entropySeed, realClock, silentLogger, withFaults } from '../../framework/index.ts';
import { SHOP_MESSAGES, startShopNode } from './node.ts';
import { shopConfig, type InventorySetting } from './topology.ts';

const node = process.env['TROUPE_NODE'];
const url = process.env['TROUPE_NATS_URL'];
if (!node || !url) {
  console.error('ecommerce node: set TROUPE_NODE and TROUPE_NATS_URL');
  process.exit(2);
}
const config = shopConfig((process.env['TROUPE_INVENTORY'] ?? 'quorum') as InventorySetting, process.env['TROUPE_CLUSTER'] ?? 'shop');
const clock = realClock();
const transport = withFaults(await connectNats({ servers: url, name: node }), { clock, rng: createRng(entropySeed()) });
const publisher = process.env['TROUPE_INSPECT'] === '1' ? createInspectionPublisher({ transport, cluster: config.cluster }) : undefined;
const system = createSystem({
  cluster: config.cluster, node, transport, clock, logger: silentLogger(), messages: SHOP_MESSAGES, ...(publisher ? { inspect: publisher.sink } : {}),
});
const shop = startShopNode(system, config, transport);
await system.ready();
console.log('ready');
const stop = (): void => void shop.stop().then(() => process.exit(0), () => process.exit(1));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
