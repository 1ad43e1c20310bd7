/**
 * One database node as its own OS process over NATS: for every range it holds a replica of, a Raft
 * node with file storage, its KV replica and KV service (see topology.ts). Configured by
 * environment: TROUPE_NATS_URL, TROUPE_NODE, TROUPE_DATA (a directory for its logs),
 * TROUPE_DB_NODES and TROUPE_DB_RANGES (the topology's shape), TROUPE_INSPECT=1 (publish
 * inspection events). Prints `ready` once serving and `role <range> <role> <term>` on every
 * leadership change. Reads commands on stdin: `isolate` cuts everything it sends (a partition as
 * the others see it), `heal` restores it; stops when stdin closes (its parent is gone) or on
 * SIGTERM, and ignores SIGINT (main.ts drains, then stops it). Started by main.ts.
 */
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openFileRaftStorage } from '../../actors/raft/file-storage.ts';
import { connectNats, createInspectionPublisher, createLogger, createRng, createSystem, entropySeed, realClock, withFaults } from '../../framework/index.ts';
import { createTopology, startDatabaseNode } from './topology.ts';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) {
    console.error(`database node: set ${k}`);
    process.exit(2);
  }
  return v;
};
const node = env('TROUPE_NODE');
const topology = createTopology({ nodeCount: Number(env('TROUPE_DB_NODES')), rangeCount: Number(env('TROUPE_DB_RANGES')) });
const rng = createRng(entropySeed());
const transport = withFaults(await connectNats({ servers: env('TROUPE_NATS_URL'), name: node }), { clock: realClock(), rng: rng.fork() });
const publisher = process.env['TROUPE_INSPECT'] === '1' ? createInspectionPublisher({ transport, cluster: 'database' }) : undefined;
const system = createSystem({
  cluster: 'database', node, transport, logger: createLogger({ level: 'error', pretty: false }), ...(publisher ? { inspect: publisher.sink } : {}),
});
// no fsync: a SIGKILLed process loses nothing the kernel already has; only a machine crash would
const storages: Array<ReturnType<typeof openFileRaftStorage>> = [];
startDatabaseNode(system, topology, node, {
  rng,
  storage: (range) => {
    const s = openFileRaftStorage(join(env('TROUPE_DATA'), `${node}-${range}.log`), { fsync: false });
    storages.push(s);
    return s;
  },
  onRole: (range, role, term) => console.log(`role ${range} ${role} ${term}`),
});
await system.ready();
console.log('ready');
const stop = (): void => void system.shutdown().then(() => { for (const s of storages) s.close(); process.exit(0); });
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line === 'isolate') transport.partition(() => true);
    else if (line === 'heal') transport.heal();
  })
  .on('close', stop); // the parent is gone: do not linger
process.on('SIGTERM', stop);
// Ctrl-C in a terminal reaches the whole process group: the parent drains its workload against
// this node first, then stops it
process.on('SIGINT', () => undefined);
