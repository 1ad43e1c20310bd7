/**
 * Cluster membership on the simulator: join, the member lifecycle (joining → up → suspect →
 * down / left), detection within the detector's bound after a crash, recovery from a short
 * partition, finality of `down`, rejoin as a new incarnation, and the NATS service API.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import { silentLogger } from '../../framework/log.ts';
import { joinCluster, membershipInternals, type Membership, type MembershipEvent, type MembershipOptions, type MemberStatus } from '../../framework/membership/membership.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';
import { createSystem } from '../../framework/system.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';

const open: Simulation[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.shutdown()));
});

const OPTS: MembershipOptions = { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 200, downAfterMs: 1_000, minStdDeviationMs: 50 };

interface Cluster {
  sim: Simulation;
  views: Map<string, Membership>;
  /** Every event each node heard, as `observer: node previous→status @ms`. */
  events: Map<string, Array<{ node: string; previous: MemberStatus | undefined; status: MemberStatus; atMs: number }>>;
  join(node: string): Membership;
}

function cluster(nodes: number, options: MembershipOptions = OPTS, seed = 7): Cluster {
  const sim = createSimulation({ seed, nodes, latencyMs: [1, 5] });
  open.push(sim);
  const c: Cluster = {
    sim,
    views: new Map(),
    events: new Map(),
    join(node) {
      const m = joinCluster(sim.system(node), options);
      const log = c.events.get(node) ?? [];
      c.events.set(node, log);
      m.subscribe((e: MembershipEvent) => log.push({ node: e.member.node, previous: e.previous, status: e.member.status, atMs: sim.now() }));
      c.views.set(node, m);
      return m;
    },
  };
  for (const n of sim.nodes.keys()) c.join(n);
  return c;
}

const statusOf = (m: Membership, node: string): MemberStatus | undefined => m.members().find((x) => x.node === node)?.status;
const allSee = (c: Cluster, observers: readonly string[], node: string, status: MemberStatus) => (): boolean =>
  observers.every((o) => statusOf(c.views.get(o)!, node) === status);

describe('membership', () => {
  it('three nodes join: every view lists every node, sorted, self included, all up, with one upSinceMs per node', async () => {
    const c = cluster(3);
    expect(c.views.get('n1')!.members().map((m) => m.status)).toEqual(['joining']);
    await c.sim.run({ forMs: 1_000 });
    for (const [self, view] of c.views) {
      expect(view.self).toBe(self);
      expect(view.members().map((m) => `${m.node}:${m.status}`)).toEqual(['n1:up', 'n2:up', 'n3:up']);
    }
    for (const node of ['n1', 'n2', 'n3']) {
      const seen = new Set([...c.views.values()].map((v) => v.members().find((m) => m.node === node)!.upSinceMs));
      expect(seen.size).toBe(1);
      expect([...seen][0]).toBeGreaterThan(0);
    }
    // n1 heard n2 appear (joining), then become up; nothing else
    expect(c.events.get('n1')!.filter((e) => e.node === 'n2').map((e) => `${e.previous}→${e.status}`)).toEqual(['undefined→joining', 'joining→up']);
  });

  it('roles travel with heartbeats', async () => {
    const sim = createSimulation({ seed: 3, nodes: 2 });
    open.push(sim);
    joinCluster(sim.system('n1'), { ...OPTS, roles: ['frontend'] });
    const n2 = joinCluster(sim.system('n2'), { ...OPTS, roles: ['shard-host', 'worker'] });
    await sim.run({ forMs: 1_000 });
    expect(n2.members().map((m) => [m.node, m.roles])).toEqual([['n1', ['frontend']], ['n2', ['shard-host', 'worker']]]);
  });

  it('a crashed node becomes suspect within the detector bound, then down after downAfterMs', async () => {
    const c = cluster(3);
    await c.sim.run({ forMs: 3_000 });
    const n1 = membershipInternals(c.views.get('n1')!)!;
    const bound = n1.suspectAfterMs('n3')!;
    expect(bound).toBeGreaterThan(200);
    expect(bound).toBeLessThan(1_000);
    const crashedAt = c.sim.now();
    c.sim.nemesis.crash('n3');
    await c.sim.run({ until: allSee(c, ['n1', 'n2'], 'n3', 'down'), forMs: 10_000 });
    expect(statusOf(n1, 'n3')).toBe('down');
    const log = c.events.get('n1')!.filter((e) => e.node === 'n3' && e.atMs >= crashedAt);
    expect(log.map((e) => `${e.previous}→${e.status}`)).toEqual(['up→suspect', 'suspect→down']);
    const suspectAt = log[0]!.atMs;
    const downAt = log[1]!.atMs;
    // the last heartbeat left at most one interval before the crash; φ is checked every interval/4
    expect(suspectAt - crashedAt).toBeLessThanOrEqual(bound + 50);
    expect(suspectAt - crashedAt).toBeGreaterThanOrEqual(bound - 200 - 5);
    expect(downAt - suspectAt).toBe(1_000);
    // the survivors still see each other up
    expect(statusOf(n1, 'n2')).toBe('up');
  });

  it('a graceful leave is seen as left at once, without waiting for the detector', async () => {
    const c = cluster(3);
    await c.sim.run({ forMs: 2_000 });
    const leftAt = c.sim.now();
    await c.views.get('n2')!.leave();
    await c.sim.run({ until: allSee(c, ['n1', 'n3'], 'n2', 'left'), forMs: 5_000 });
    expect(c.sim.now() - leftAt).toBeLessThanOrEqual(5); // one network latency
    expect(statusOf(c.views.get('n2')!, 'n2')).toBe('left');
    // and it stays left: no suspicion, no down, while the others carry on
    await c.sim.run({ forMs: 3_000 });
    expect(statusOf(c.views.get('n1')!, 'n2')).toBe('left');
    expect(c.events.get('n1')!.filter((e) => e.node === 'n2').map((e) => e.status)).toEqual(['joining', 'up', 'left']);
  });

  it('a short partition makes members suspect, and they come back up when it heals', async () => {
    const c = cluster(3, { ...OPTS, downAfterMs: 5_000 });
    await c.sim.run({ forMs: 2_000 });
    c.sim.nemesis.partition([['n1', 'n2'], ['n3']]);
    await c.sim.run({ until: () => allSee(c, ['n1', 'n2'], 'n3', 'suspect')() && allSee(c, ['n3'], 'n1', 'suspect')(), forMs: 3_000 });
    expect(statusOf(c.views.get('n3')!, 'n2')).toBe('suspect');
    c.sim.nemesis.heal();
    await c.sim.run({ forMs: 1_000 });
    for (const view of c.views.values()) expect(view.members().every((m) => m.status === 'up')).toBe(true);
  });

  it('down is final for an incarnation; a restarted node rejoins as a new incarnation', async () => {
    const c = cluster(3);
    await c.sim.run({ forMs: 2_000 });
    c.sim.nemesis.partition([['n1', 'n2'], ['n3']]);
    await c.sim.run({ until: allSee(c, ['n1', 'n2'], 'n3', 'down'), forMs: 10_000 });
    c.sim.nemesis.heal();
    await c.sim.run({ forMs: 2_000 });
    // n3 kept heartbeating the whole time, but the others gave up on this incarnation
    expect(statusOf(c.views.get('n1')!, 'n3')).toBe('down');
    // (n3 saw the others down too)
    expect(statusOf(c.views.get('n3')!, 'n1')).toBe('down');

    c.sim.nemesis.crash('n3');
    c.sim.nemesis.restart('n3');
    const since = c.sim.now();
    c.join('n3');
    await c.sim.run({ until: allSee(c, ['n1', 'n2'], 'n3', 'up'), forMs: 3_000 });
    const log = c.events.get('n1')!.filter((e) => e.node === 'n3' && e.atMs >= since);
    expect(log.map((e) => `${e.previous}→${e.status}`)).toEqual(['down→joining', 'joining→up']);
  });

  it('stop() without leave is detected like a crash', async () => {
    const c = cluster(2);
    await c.sim.run({ forMs: 2_000 });
    await c.views.get('n2')!.stop();
    await c.sim.run({ until: allSee(c, ['n1'], 'n2', 'down'), forMs: 5_000 });
    expect(c.events.get('n1')!.filter((e) => e.node === 'n2').map((e) => e.status)).toEqual(['joining', 'up', 'suspect', 'down']);
  });

  it('forgets down and left members after forgetAfterMs', async () => {
    const c = cluster(3, { ...OPTS, forgetAfterMs: 2_000 });
    await c.sim.run({ forMs: 2_000 });
    await c.views.get('n3')!.leave();
    await c.sim.run({ until: allSee(c, ['n1'], 'n3', 'left'), forMs: 1_000 });
    await c.sim.run({ forMs: 2_500 });
    expect(c.views.get('n1')!.members().map((m) => m.node)).toEqual(['n1', 'n2']);
  });

  it('unsubscribe stops the events; a throwing listener does not stop the others', async () => {
    const c = cluster(2);
    const heard: string[] = [];
    const n1 = c.views.get('n1')!;
    n1.subscribe(() => {
      throw new Error('listener bug');
    });
    const off = n1.subscribe((e) => heard.push(`${e.member.node}:${e.member.status}`));
    await c.sim.run({ forMs: 1_000 });
    expect(heard).toEqual(['n2:joining', 'n1:up', 'n2:up']);
    off();
    await c.views.get('n2')!.leave();
    await c.sim.run({ forMs: 100 });
    expect(statusOf(n1, 'n2')).toBe('left');
    expect(heard).toHaveLength(3);
  });

  it.each([
    [{ heartbeatIntervalMs: 0 }, 'heartbeatIntervalMs'],
    [{ phiThreshold: -1 }, 'phiThreshold'],
    [{ downAfterMs: Number.NaN }, 'downAfterMs'],
    [{ maxSampleSize: 1.5 }, 'maxSampleSize'],
    [{ roles: [''] }, 'roles'],
    [{ checkIntervalMs: 0 }, 'checkIntervalMs'],
  ] as Array<[MembershipOptions, string]>)('rejects bad options with a RangeError naming the option (%j)', async (options, name) => {
    await using system = createSystem({ cluster: 'bad', node: 'n1', logger: silentLogger(), rng: createRng(1) });
    expect(() => joinCluster(system, options)).toThrow(RangeError);
    expect(() => joinCluster(system, options)).toThrow(name);
  });
});

describe('membership and a system that shuts down first', () => {
  it('stops its own timers when the transport closes (nothing keeps the process alive)', async () => {
    const clock = simulatedClock();
    const system = createSystem({ cluster: 'sd', node: 'n1', clock, logger: silentLogger(), rng: createRng(1) });
    const membership = joinCluster(system, { heartbeatIntervalMs: 100 });
    const sent = () => membershipInternals(membership)!.stats().heartbeatsSent;
    clock.increment(350);
    const before = sent();
    expect(before).toBeGreaterThanOrEqual(3);
    await system.shutdown();
    clock.increment(1_000);
    expect(sent()).toBe(before);
    expect(statusOf(membership, 'n1')).toBe('up'); // it stopped; it did not pretend to leave
  });
});

describe('the NATS service API', () => {
  it('answers $SRV.PING, $SRV.INFO and $SRV.STATS for troupe and for the node id', async () => {
    const bus = createMemoryBus();
    await using a = createSystem({ cluster: 'srv', node: 'a', transport: bus.connect({ name: 'a' }), logger: silentLogger(), rng: createRng(1) });
    await using probe = createSystem({ cluster: 'srv', node: 'probe', transport: bus.connect({ name: 'probe' }), logger: silentLogger(), rng: createRng(2) });
    await using membership = joinCluster(a, { serviceApi: true, roles: ['worker'] });
    expect(membership.self).toBe('a');
    const ask = async (subject: string): Promise<Record<string, unknown>> =>
      JSON.parse(new TextDecoder().decode((await probe.transport.request(subject, new Uint8Array(), { timeoutMs: 2_000 })).data)) as Record<string, unknown>;
    const ping = await ask('$SRV.PING');
    expect(ping).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'troupe', id: 'a', metadata: { cluster: 'srv', roles: 'worker' } });
    expect(await ask('$SRV.INFO.troupe')).toMatchObject({ type: 'io.nats.micro.v1.info_response', id: 'a', endpoints: [] });
    const stats = await ask('$SRV.STATS.troupe.a');
    expect(stats).toMatchObject({ type: 'io.nats.micro.v1.stats_response', id: 'a' });
    expect((stats['data'] as { heartbeatsSent: number }).heartbeatsSent).toBeGreaterThanOrEqual(1);
  });

  it('is off by default', async () => {
    const bus = createMemoryBus();
    await using a = createSystem({ cluster: 'srv', node: 'a', transport: bus.connect({ name: 'a' }), logger: silentLogger(), rng: createRng(1) });
    await using membership = joinCluster(a);
    await expect(a.transport.request('$SRV.PING', new Uint8Array(), { timeoutMs: 500 })).rejects.toThrow(/no responders/i);
    expect(membership.members()).toHaveLength(1);
  });
});
