/**
 * The receptionist on the simulator: register / find / subscribe across nodes; instances vanish
 * at once when their node leaves or is marked down, and when the actor stops; a lost update heals
 * on refresh; late joiners learn existing registrations.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Ponger } from '../../examples/ping-pong.ts';
import { messages as pingPongMessages } from '../../examples/pingpong.pb.ts';
import { joinCluster, type Membership, type MembershipOptions } from '../../framework/membership/membership.ts';
import { createReceptionist, type Listing, type Receptionist } from '../../framework/membership/receptionist.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';

const open: Simulation[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.shutdown()));
});

const OPTS: MembershipOptions = { heartbeatIntervalMs: 200, acceptableHeartbeatPauseMs: 200, downAfterMs: 1_000, minStdDeviationMs: 50 };

interface Node { membership: Membership; reception: Receptionist }

function cluster(names: readonly string[], seed = 11, initially: readonly string[] = names): { sim: Simulation; nodes: Map<string, Node>; start(name: string): Node } {
  const sim = createSimulation({ seed, nodes: names, latencyMs: [1, 5], systemOptions: { messages: [pingPongMessages] } });
  open.push(sim);
  const nodes = new Map<string, Node>();
  const start = (name: string): Node => {
    const system = sim.system(name);
    const membership = joinCluster(system, OPTS);
    const node = { membership, reception: createReceptionist(system, membership, { refreshMs: 2_000 }) };
    nodes.set(name, node);
    return node;
  };
  for (const n of initially) start(n);
  return { sim, nodes, start };
}

const addresses = (refs: readonly { address: string }[]): string[] => refs.map((r) => r.address);

describe('receptionist', () => {
  it('finds every instance of a key cluster-wide and tells subscribers about changes', async () => {
    const { sim, nodes } = cluster(['n1', 'n2', 'n3']);
    await sim.run({ forMs: 1_000 });
    const heard: string[][] = [];
    nodes.get('n1')!.reception.subscribe('pong', (l: Listing) => heard.push(addresses(l.instances)));
    expect(heard).toEqual([[]]);
    nodes.get('n2')!.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'p' }));
    nodes.get('n3')!.reception.register('pong', sim.system('n3').spawn(Ponger, { name: 'p' }));
    nodes.get('n3')!.reception.register('other', sim.system('n3').spawn(Ponger, { name: 'q' }));
    await sim.run({ forMs: 100 });
    for (const n of ['n1', 'n2', 'n3']) expect(addresses(nodes.get(n)!.reception.find('pong'))).toEqual(['n2/p', 'n3/p']);
    expect(addresses(nodes.get('n1')!.reception.find('other'))).toEqual(['n3/q']);
    expect(heard.at(-1)).toEqual(['n2/p', 'n3/p']);
    // the refs work
    const reply = sim.system('n1').ask(nodes.get('n1')!.reception.find('pong')[0]!, { type: 'Ping', n: 7 }, { timeoutMs: 1_000 });
    await sim.run({ forMs: 50 });
    await expect(reply).resolves.toMatchObject({ type: 'Pong', n: 7 });
  });

  it('drops the instances of a node that leaves, at once', async () => {
    const { sim, nodes } = cluster(['n1', 'n2', 'n3']);
    await sim.run({ forMs: 1_000 });
    nodes.get('n2')!.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'p' }));
    nodes.get('n3')!.reception.register('pong', sim.system('n3').spawn(Ponger, { name: 'p' }));
    await sim.run({ forMs: 100 });
    const heard: Array<{ atMs: number; instances: string[] }> = [];
    nodes.get('n1')!.reception.subscribe('pong', (l) => heard.push({ atMs: sim.now(), instances: addresses(l.instances) }));
    const t0 = sim.now();
    await nodes.get('n3')!.membership.leave();
    await sim.run({ until: () => nodes.get('n1')!.reception.find('pong').length === 1, forMs: 1_000 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n2/p']);
    expect(heard.at(-1)!.instances).toEqual(['n2/p']);
    expect(heard.at(-1)!.atMs - t0).toBeLessThanOrEqual(5);
  });

  it('drops the instances of a crashed node when it is marked down, and not before it is suspected', async () => {
    const { sim, nodes } = cluster(['n1', 'n2', 'n3']);
    await sim.run({ forMs: 1_000 });
    nodes.get('n3')!.reception.register('pong', sim.system('n3').spawn(Ponger, { name: 'p' }));
    await sim.run({ forMs: 100 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n3/p']);
    sim.nemesis.crash('n3');
    const n1 = nodes.get('n1')!;
    await sim.run({ until: () => n1.membership.members().find((m) => m.node === 'n3')?.status === 'suspect', forMs: 5_000 });
    expect(addresses(n1.reception.find('pong'))).toEqual(['n3/p']); // suspect is not gone
    await sim.run({ until: () => n1.membership.members().find((m) => m.node === 'n3')?.status === 'down', forMs: 5_000 });
    expect(n1.reception.find('pong')).toEqual([]);
  });

  it('a restarted node registers afresh, and the old incarnation does not come back', async () => {
    const { sim, nodes, start } = cluster(['n1', 'n2']);
    await sim.run({ forMs: 1_000 });
    nodes.get('n2')!.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'old' }));
    await sim.run({ forMs: 100 });
    sim.nemesis.crash('n2');
    await sim.run({ until: () => nodes.get('n1')!.reception.find('pong').length === 0, forMs: 5_000 });
    sim.nemesis.restart('n2');
    const n2 = start('n2');
    n2.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'new' }));
    await sim.run({ forMs: 1_000 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n2/new']);
  });

  it('deregisters an actor that stops, and on deregister()', async () => {
    const { sim, nodes } = cluster(['n1', 'n2']);
    await sim.run({ forMs: 1_000 });
    const r2 = nodes.get('n2')!.reception;
    const a = sim.system('n2').spawn(Ponger, { name: 'a' });
    const b = sim.system('n2').spawn(Ponger, { name: 'b' });
    r2.register('pong', a);
    const off = r2.register('pong', b);
    await sim.run({ forMs: 100 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n2/a', 'n2/b']);
    sim.system('n2').stop(a);
    await sim.run({ forMs: 100 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n2/b']);
    off();
    await sim.run({ forMs: 100 });
    expect(nodes.get('n1')!.reception.find('pong')).toEqual([]);
    expect(r2.find('pong')).toEqual([]);
  });

  it('a node that joins later learns the existing registrations', async () => {
    const { sim, nodes, start } = cluster(['n1', 'n2'], 5, ['n1']);
    nodes.get('n1')!.reception.register('pong', sim.system('n1').spawn(Ponger, { name: 'p' }));
    await sim.run({ forMs: 1_000 });
    const n2 = start('n2');
    await sim.run({ until: () => n2.reception.find('pong').length > 0, forMs: 1_000 });
    expect(addresses(n2.reception.find('pong'))).toEqual(['n1/p']);
    expect(sim.now()).toBeLessThan(2_100); // well before the 2 s refresh
  });

  it('heals a lost update on the next refresh', async () => {
    const { sim, nodes } = cluster(['n1', 'n2']);
    await sim.run({ forMs: 1_000 });
    sim.nemesis.partitionOneWay('n2', 'n1');
    nodes.get('n2')!.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'p' }));
    await sim.run({ forMs: 50 });
    sim.nemesis.heal();
    await sim.run({ forMs: 50 });
    expect(nodes.get('n1')!.reception.find('pong')).toEqual([]);
    await sim.run({ forMs: 2_100 });
    expect(addresses(nodes.get('n1')!.reception.find('pong'))).toEqual(['n2/p']);
  });

  it('stop() withdraws the registrations everywhere', async () => {
    const { sim, nodes } = cluster(['n1', 'n2']);
    await sim.run({ forMs: 1_000 });
    nodes.get('n2')!.reception.register('pong', sim.system('n2').spawn(Ponger, { name: 'p' }));
    await sim.run({ forMs: 100 });
    const stopping = nodes.get('n2')!.reception.stop();
    await sim.run({ forMs: 50 });
    await stopping;
    expect(nodes.get('n1')!.reception.find('pong')).toEqual([]);
  });

  it('rejects remote actors and bad keys with a RangeError', async () => {
    const { sim, nodes } = cluster(['n1', 'n2']);
    const r1 = nodes.get('n1')!.reception;
    expect(() => r1.register('pong', 'n2/p')).toThrow(RangeError);
    expect(() => r1.register('', sim.system('n1').spawn(Ponger, { name: 'p' }))).toThrow(/key/);
  });
});
