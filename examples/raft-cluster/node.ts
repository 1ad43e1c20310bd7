/**
 * One node of a Raft KV cluster as its own OS process, over a real NATS server: a Raft node with
 * file storage (fsync on), its KV replica and the KV service actor. Configured by environment:
 * TROUPE_NATS_URL, TROUPE_NODE (its node name), TROUPE_VOTERS (comma-separated `node/raft`
 * addresses), TROUPE_DATA (a directory for its log). Prints "ready" once serving; a restart with
 * the same TROUPE_DATA recovers its log. Used by test/integration/raft-processes.test.ts.
 */
import { join } from 'node:path';
import { openFileRaftStorage } from '../../actors/raft/file-storage.ts';
import { startKvService } from '../../actors/raft/kv-service.ts';
import { KvReplica } from '../../actors/raft/kv.ts';
import { startRaftNode } from '../../actors/raft/node.ts';
import { connectNats, createLogger, createRng, createSystem, entropySeed } from '../../framework/index.ts';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) {
    console.error(`raft-cluster node: set ${k}`);
    process.exit(2);
  }
  return v;
};
const node = env('TROUPE_NODE');
const system = createSystem({
  cluster: 'raftkv', node, transport: await connectNats({ servers: env('TROUPE_NATS_URL'), name: node }),
  logger: createLogger({ level: 'warn', pretty: false }),
});
const storage = openFileRaftStorage(join(env('TROUPE_DATA'), `${node}.log`), { fsync: true });
const holder: { replica?: KvReplica } = {};
const handle = startRaftNode(system, {
  name: 'raft', voters: env('TROUPE_VOTERS').split(','), rng: createRng(entropySeed()), storage,
  tickMs: 10, electionTicks: 15, heartbeatTicks: 3,
  onApply: (entries) => holder.replica?.apply(entries),
  onRole: (role, term) => console.log(`role ${role} term ${term}`),
});
holder.replica = new KvReplica(handle, system.clock);
startKvService(system, () => holder.replica!);
await system.ready();
console.log('ready');
const stop = (): void => void system.shutdown().then(() => { storage.close(); process.exit(0); });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
