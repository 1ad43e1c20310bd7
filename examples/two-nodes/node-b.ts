/**
 * Node B of the two-nodes example: a separate OS process hosting the ponger, connected to the NATS
 * server named by TROUPE_NATS_URL. Started by examples/two-nodes/main.ts; prints "ready" when its
 * subscription is live, then serves until it is killed.
 */
import { connectNats, createSystem, createLogger } from '../../framework/index.ts';
import { Ponger } from '../ping-pong.ts';

const url = process.env['TROUPE_NATS_URL'];
if (!url) {
  console.error('node-b: set TROUPE_NATS_URL (started by examples/two-nodes/main.ts)');
  process.exit(2);
}
const system = createSystem({
  cluster: 'two-nodes', node: 'node-b', transport: await connectNats({ servers: url, name: 'node-b' }),
  logger: createLogger({ pretty: false, level: 'warn' }),
});
system.spawn(Ponger, { name: 'ponger' });
await system.ready();
console.log('ready');
const stop = (): void => void system.shutdown().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
