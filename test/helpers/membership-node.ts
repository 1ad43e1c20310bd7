/**
 * One cluster member in its own OS process, for the membership integration test: connects to
 * `TROUPE_NATS_URL` as node `TROUPE_NODE`, joins the cluster `membership-it` with the heartbeat
 * options in `TROUPE_MEMBERSHIP` (JSON), registers a ponger under the key `pong` and a worker
 * (answering after `TROUPE_WORKER_DELAY_MS`, default 0) under `work`, prints `ready`.
 * SIGTERM leaves the cluster gracefully, then exits; SIGKILL is a crash.
 */
import { spawnWorker } from '../../examples/load-balancer.ts';
import { messages as lbMessages } from '../../examples/load-balancer.pb.ts';
import { Ponger } from '../../examples/ping-pong.ts';
import { silentLogger } from '../../framework/log.ts';
import { joinCluster } from '../../framework/membership/membership.ts';
import { createReceptionist } from '../../framework/membership/receptionist.ts';
import { createSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';

const node = process.env.TROUPE_NODE!;
const system = createSystem({
  cluster: 'membership-it', node, logger: silentLogger(), messages: [lbMessages],
  transport: await connectNats({ servers: process.env.TROUPE_NATS_URL!, name: node }),
});
await system.ready();
const membership = joinCluster(system, JSON.parse(process.env.TROUPE_MEMBERSHIP ?? '{}'));
const reception = createReceptionist(system, membership);
reception.register('pong', system.spawn(Ponger, { name: 'p' }));
reception.register('work', spawnWorker(system, 'worker', Number(process.env.TROUPE_WORKER_DELAY_MS ?? 0)));
process.on('SIGTERM', () => {
  void (async () => {
    await reception.stop();
    await membership.leave();
    await system.shutdown();
    process.exit(0);
  })();
});
console.log('ready');
