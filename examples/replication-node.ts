/**
 * One replica of a replicated list (actors/replication/) as its own OS process over a real NATS
 * server; the primary is elected through a lease in a NATS KV bucket. Configured by environment:
 * TROUPE_NATS_URL, TROUPE_NODE (its node name), TROUPE_REPLICAS (comma-separated node names),
 * TROUPE_MODE (sync | async, default sync), TROUPE_W (default 1), TROUPE_CLUSTER (default repl),
 * TROUPE_TTL_MS (lease TTL, default 1000), TROUPE_MACHINE (list | counter, default list: the
 * benchmark uses the counter, whose transition does not copy a growing list). Prints "ready" once it serves, "role <role> <epoch>"
 * on every role change, and — when a line "dump" arrives on stdin — "items <JSON>" with its list.
 * Used by examples/replication.ts, test/integration/replication-processes.test.ts and the
 * replication benchmark.
 */
import { createInterface } from 'node:readline';
import { assign, setup } from 'xstate';
import { leaseElection } from '../actors/leader-election/lease.ts';
import { replicated } from '../actors/replication/replicated.ts';
import { listMachine } from '../actors/replication/sim-scenario.ts';
import { connectNats, createLogger, createNatsKvStore, createSystem, type KvStore } from '../framework/index.ts';
import { isStoreUnavailableError } from '../framework/errors.ts';

/** A counter that keeps the last value added: O(1) per event. */
const counterMachine = setup({
  types: { context: {} as { count: number; last: number }, events: {} as { type: 'ADD'; n: number } },
}).createMachine({
  id: 'counter',
  context: { count: 0, last: 0 },
  on: { ADD: { actions: assign({ count: ({ context }) => context.count + 1, last: ({ event }) => event.n }) } },
});

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) {
    console.error(`replication node: set ${k}`);
    process.exit(2);
  }
  return v;
};
const node = env('TROUPE_NODE');
const servers = env('TROUPE_NATS_URL');
const ttlMs = Number(process.env['TROUPE_TTL_MS'] ?? 1_000);
const transport = await connectNats({ servers, name: node });
const system = createSystem({ cluster: process.env['TROUPE_CLUSTER'] ?? 'repl', node, transport, logger: createLogger({ level: 'warn', pretty: false }) });
let store: KvStore;
for (let attempt = 0; ; attempt++) {
  try {
    store = await createNatsKvStore({ servers, bucket: 'repl-leases', ttlMs, storage: 'memory', name: `${node}-kv`, timeoutMs: 500 });
    break;
  } catch (err) {
    // JetStream may still be starting, or another replica is creating the bucket right now.
    if (!isStoreUnavailableError(err) || attempt > 50) throw err;
    await new Promise<void>((r) => system.clock.setTimeout(() => r(), 100));
  }
}
const election = leaseElection({ store, candidate: node, ttlMs, renewIntervalMs: ttlMs / 4, safetyMarginMs: ttlMs / 10 });
const list = replicated<typeof listMachine | typeof counterMachine>(system, {
  name: 'list', machine: process.env['TROUPE_MACHINE'] === 'counter' ? counterMachine : listMachine, replicas: env('TROUPE_REPLICAS').split(','), election,
  mode: process.env['TROUPE_MODE'] === 'async' ? 'async' : 'sync', w: Number(process.env['TROUPE_W'] ?? 1),
  heartbeatIntervalMs: 50, requestTimeoutMs: 300,
  onEvent: (e) => {
    if (e.kind === 'role') console.log(`role ${e.role} ${e.epoch}`);
    else if (e.kind === 'recovered') console.log(`recovered ${e.epoch} from ${e.adoptedFrom} entries ${e.lastSeq}`);
  },
});
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'dump') console.log(`items ${JSON.stringify((list.read({ maxStalenessMs: Number.POSITIVE_INFINITY }).snapshot.context as { items?: number[] }).items ?? [])}`);
});
await system.ready();
console.log('ready');
const stop = (): void => void list.close().then(() => system.shutdown()).then(() => store.close()).then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
