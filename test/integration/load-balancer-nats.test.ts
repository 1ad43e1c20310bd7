/**
 * The load balancer over a real nats-server, its workers in their own OS processes: requests spread
 * over both; a worker process SIGKILLed while holding requests makes exactly those requests fail
 * with BackendLostError (long before their timeout) while the others succeed, and later requests
 * all go to the survivor.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLoadBalancer } from '../../actors/load-balancer/load-balancer.ts';
import { messages, type WorkDone } from '../../examples/load-balancer.pb.ts';
import { createRng } from '../../framework/clock.ts';
import { BackendLostError } from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import { joinCluster, type MembershipOptions } from '../../framework/membership/membership.ts';
import { createReceptionist } from '../../framework/membership/receptionist.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { createSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const entry = join(import.meta.dirname, '..', 'helpers', 'membership-node.ts');
const OPTS: MembershipOptions = { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 300, minStdDeviationMs: 50, downAfterMs: 1_000 };
const ASK_TIMEOUT_MS = 20_000;

describe.skipIf(!requireNatsServer())('load balancer over a real nats-server, workers in OS processes', () => {
  const servers = natsServerScope();
  const procs: ChildProcess[] = [];
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await servers.stopAll();
  });

  it('a worker SIGKILLed mid-flight: its requests fail with BackendLostError, none hangs, the survivor takes the rest', async () => {
    const srv = await servers.start();
    const start = async (node: string): Promise<ChildProcess> => {
      const p = await startNodeProcess({
        entry, env: { TROUPE_NATS_URL: srv.url, TROUPE_NODE: node, TROUPE_MEMBERSHIP: JSON.stringify(OPTS), TROUPE_WORKER_DELAY_MS: '400' },
      });
      procs.push(p);
      return p;
    };
    await using client = createSystem({
      cluster: 'membership-it', node: 'client', logger: silentLogger(), messages: [messages],
      transport: await connectNats({ servers: srv.url, name: 'client' }), heartbeatIntervalMs: 200, heartbeatTimeoutMs: 200,
    });
    await client.ready();
    await using membership = joinCluster(client, OPTS);
    await using reception = createReceptionist(client, membership);
    const [victim] = await Promise.all([start('victim'), start('survivor')]);
    await using lb = createLoadBalancer(client, { key: 'work', receptionist: reception, strategy: 'round-robin', askTimeoutMs: ASK_TIMEOUT_MS, rng: createRng(3) });
    await waitFor(() => lb.backends().length === 2, { timeoutMs: 10_000 });

    const outcomes: Array<{ worker?: string; error?: unknown; ms: number }> = [];
    const t0 = performance.now();
    const requests = Array.from({ length: 20 }, (_, n) => lb.ask<WorkDone>({ type: 'Work', n, data: new Uint8Array() }).then(
      (done) => outcomes.push({ worker: done.worker, ms: performance.now() - t0 }),
      (error: unknown) => outcomes.push({ error, ms: performance.now() - t0 }),
    ));
    await waitFor(() => lb.backends().every((b) => b.outstanding === 10), { timeoutMs: 2_000 });
    victim.kill('SIGKILL');
    await Promise.all(requests);
    expect(outcomes).toHaveLength(20);
    const lost = outcomes.filter((o) => o.error);
    const served = outcomes.filter((o) => o.worker);
    console.log(`SIGKILL mid-flight: ${served.length} served by ${[...new Set(served.map((o) => o.worker))].join(',')}, ${lost.length} lost, slowest settled after ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms`);
    expect(lost).toHaveLength(10);
    expect(lost.every((o) => o.error instanceof BackendLostError)).toBe(true);
    expect(served.every((o) => o.worker === 'survivor/worker')).toBe(true);
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(5_000); // far inside the 20 s timeout
    await waitFor(() => lb.backends().length === 1, { timeoutMs: 5_000 });
    const after = await Promise.all(Array.from({ length: 6 }, (_, n) => lb.ask<WorkDone>({ type: 'Work', n, data: new Uint8Array() })));
    expect(after.every((d) => d.worker === 'survivor/worker')).toBe(true);
  }, 40_000);
});
