/**
 * One node of a Raft KV cluster as its own OS process, over a real NATS server: a Raft node with
 * file storage (fsync on), its KV replica and the KV service actor. Configured by environment:
 * TROUPE_NATS_URL, TROUPE_NODE (its node name), TROUPE_VOTERS (comma-separated `node/raft`
 * addresses), TROUPE_DATA (a directory for its log), TROUPE_SNAPSHOT_EVERY (compact the log every
 * this many entries, default 1000), TROUPE_CLUSTER (default raftkv), TROUPE_FSYNC=0 (write the log
 * without fsync — benchmarks only), TROUPE_INSPECT=1 (publish inspection events). Prints "ready" once serving; a restart with the same
 * TROUPE_DATA recovers its snapshot and log. Used by test/integration/raft-processes.test.ts and
 * the raft benchmarks.
 */
import { join } from 'node:path';
import { openFileRaftStorage } from '../../actors/raft/file-storage.ts';
import { startKvService } from '../../actors/raft/kv-service.ts';
import { startKvReplica } from '../../actors/raft/kv.ts';
import { connectNats, createInspectionPublisher, createLogger, createRng, createSystem, entropySeed } from '../../framework/index.ts';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) {
    console.error(`raft-cluster node: set ${k}`);
    process.exit(2);
  }
  return v;
};
const node = env('TROUPE_NODE');
const cluster = process.env['TROUPE_CLUSTER'] ?? 'raftkv';
const transport = await connectNats({ servers: env('TROUPE_NATS_URL'), name: node });
// TROUPE_INSPECT=1: publish inspection events for `troupe inspect --nats URL --cluster raftkv`
const publisher = process.env['TROUPE_INSPECT'] === '1' ? createInspectionPublisher({ transport, cluster }) : undefined;
const system = createSystem({
  cluster, node, transport, logger: createLogger({ level: 'warn', pretty: false }), ...(publisher ? { inspect: publisher.sink } : {}),
});
const storage = openFileRaftStorage(join(env('TROUPE_DATA'), `${node}.log`), { fsync: process.env['TROUPE_FSYNC'] !== '0' });
const replica = startKvReplica(system, {
  name: 'raft', voters: env('TROUPE_VOTERS').split(','), rng: createRng(entropySeed()), storage,
  tickMs: 10, electionTicks: 15, heartbeatTicks: 3, maxBatch: 256, snapshotEveryEntries: Number(process.env['TROUPE_SNAPSHOT_EVERY'] ?? 1_000),
  onRole: (role, term) => console.log(`role ${role} term ${term}`),
});
startKvService(system, () => replica);
await system.ready();
console.log('ready');
const stop = (): void => void system.shutdown().then(() => { storage.close(); process.exit(0); });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
