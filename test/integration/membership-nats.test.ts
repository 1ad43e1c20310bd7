/**
 * Membership over a real nats-server with members in their own OS processes: they join and are
 * found through the receptionist; a SIGKILLed process becomes suspect within the φ detector's
 * bound and down `downAfterMs` later (its instances disappear); a SIGTERMed one leaves gracefully
 * and is seen as `left`, never suspect. The observer answers the NATS service API (`$SRV.INFO`).
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { messages as pingpongMessages } from '../../examples/pingpong.pb.ts';
import { silentLogger } from '../../framework/log.ts';
import { joinCluster, membershipInternals, type MembershipEvent, type MembershipOptions, type MemberStatus } from '../../framework/membership/membership.ts';
import { createReceptionist } from '../../framework/membership/receptionist.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { createSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const entry = join(import.meta.dirname, '..', 'helpers', 'membership-node.ts');
const OPTS: MembershipOptions = { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 300, minStdDeviationMs: 50, downAfterMs: 1_000 };
/** Real processes on 2 shared cores: scheduling noise on top of the detector's own bound. */
const SLACK_MS = 600;

describe.skipIf(!requireNatsServer())('membership over a real nats-server, members in OS processes', () => {
  const servers = natsServerScope();
  const procs: ChildProcess[] = [];
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await servers.stopAll();
  });

  it('SIGKILL → suspect within the detector bound → down downAfterMs later; SIGTERM → left', async () => {
    const srv = await servers.start();
    const start = async (node: string): Promise<ChildProcess> => {
      const p = await startNodeProcess({ entry, env: { TROUPE_NATS_URL: srv.url, TROUPE_NODE: node, TROUPE_MEMBERSHIP: JSON.stringify(OPTS) } });
      procs.push(p);
      return p;
    };
    await using observer = createSystem({
      cluster: 'membership-it', node: 'observer', logger: silentLogger(), messages: [pingpongMessages],
      transport: await connectNats({ servers: srv.url, name: 'observer' }),
    });
    await observer.ready();
    await using membership = joinCluster(observer, { ...OPTS, serviceApi: true });
    await using reception = createReceptionist(observer, membership);
    const events: Array<{ node: string; status: MemberStatus; atMs: number }> = [];
    membership.subscribe((e: MembershipEvent) => events.push({ node: e.member.node, status: e.member.status, atMs: performance.now() }));
    const statusOf = (node: string): MemberStatus | undefined => membership.members().find((m) => m.node === node)?.status;

    const [victim, leaver] = await Promise.all([start('victim'), start('leaver')]);
    await waitFor(() => statusOf('victim') === 'up' && statusOf('leaver') === 'up' && statusOf('observer') === 'up', { timeoutMs: 10_000, message: () => JSON.stringify(membership.members()) });
    await waitFor(() => reception.find('pong').length === 2, { timeoutMs: 5_000 });
    expect(reception.find('pong').map((r) => r.address)).toEqual(['leaver/p', 'victim/p']);
    await expect(observer.ask('victim/p', { type: 'Ping', n: 1 }, { timeoutMs: 2_000 })).resolves.toMatchObject({ type: 'Pong', n: 1 });
    // let the detector learn the real inter-arrival times: ten more heartbeats from each peer
    const internals = membershipInternals(membership)!;
    const heard = internals.stats().heartbeatsReceived;
    await waitFor(() => internals.stats().heartbeatsReceived >= heard + 20, { timeoutMs: 5_000 });

    const bound = internals.suspectAfterMs('victim')!;
    const killedAt = performance.now();
    victim.kill('SIGKILL');
    await waitFor(() => statusOf('victim') === 'down', { timeoutMs: 10_000, message: () => `victim is ${statusOf('victim')}` });
    const suspectAt = events.find((e) => e.node === 'victim' && e.status === 'suspect')!.atMs;
    const downAt = events.find((e) => e.node === 'victim' && e.status === 'down')!.atMs;
    console.log(`victim SIGKILLed: suspect after ${(suspectAt - killedAt).toFixed(0)} ms (detector bound ${bound.toFixed(0)} ms), down after ${(downAt - killedAt).toFixed(0)} ms`);
    expect(suspectAt - killedAt).toBeLessThanOrEqual(bound + SLACK_MS);
    expect(downAt - suspectAt).toBeGreaterThanOrEqual(1_000 - 5);
    expect(downAt - suspectAt).toBeLessThanOrEqual(1_000 + SLACK_MS);
    expect(reception.find('pong').map((r) => r.address)).toEqual(['leaver/p']);

    // standard NATS tooling sees the node through the service API
    const info = JSON.parse(new TextDecoder().decode((await observer.transport.request('$SRV.INFO.troupe', new Uint8Array(), { timeoutMs: 2_000 })).data)) as { name: string; id: string };
    expect(info).toMatchObject({ name: 'troupe', id: 'observer' });

    leaver.kill('SIGTERM');
    await waitFor(() => statusOf('leaver') === 'left', { timeoutMs: 5_000, message: () => `leaver is ${statusOf('leaver')}` });
    expect(events.filter((e) => e.node === 'leaver').map((e) => e.status)).toEqual(['joining', 'up', 'left']);
    expect(reception.find('pong')).toEqual([]);
  }, 40_000);
});
