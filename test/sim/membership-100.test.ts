/**
 * Heartbeat traffic of 100 members on the simulated network, measured: messages published per
 * second (cluster-wide and per node) and deliveries per second (what each node receives). Also
 * checks that every node converges to 100 members up, and that a crash in a 100-node cluster is
 * seen by all 99 survivors. Prints the figures (quoted in framework/membership/README.md).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { joinCluster, membershipInternals, type Membership } from '../../framework/membership/membership.ts';
import { createSimulation, type Simulation } from '../../framework/sim/simulation.ts';

const open: Simulation[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.shutdown()));
});

const N = 100;
const INTERVAL_MS = 1_000;

describe(`membership at ${N} nodes`, () => {
  it('heartbeat traffic is N messages per interval published, N² delivered; all converge; a crash is seen by all', async () => {
    const sim = createSimulation({ seed: 100, nodes: N, trace: false });
    open.push(sim);
    const views = new Map<string, Membership>();
    for (const node of sim.nodes.keys()) views.set(node, joinCluster(sim.system(node), { heartbeatIntervalMs: INTERVAL_MS }));
    const allUp = (): boolean => [...views.values()].every((v) => v.members().length === N && v.members().every((m) => m.status === 'up'));
    await sim.run({ until: allUp, forMs: 10_000 });
    expect(allUp()).toBe(true);
    const convergedAtMs = sim.now();

    // steady state, measured over 10 simulated seconds
    const windowMs = 10_000;
    const before = sim.network.stats();
    const sentBefore = [...views.values()].reduce((s, v) => s + membershipInternals(v)!.stats().heartbeatsSent, 0);
    await sim.run({ forMs: windowMs });
    const after = sim.network.stats();
    const sentAfter = [...views.values()].reduce((s, v) => s + membershipInternals(v)!.stats().heartbeatsSent, 0);
    const seconds = windowMs / 1_000;
    const published = (after.published - before.published) / seconds;
    const delivered = (after.delivered - before.delivered) / seconds;
    const heartbeats = (sentAfter - sentBefore) / seconds;
    console.log(
      `membership, ${N} nodes, heartbeat every ${INTERVAL_MS} ms: converged (all up everywhere) at ${convergedAtMs} ms simulated; ` +
      `published ${published.toFixed(0)} msg/s cluster-wide (${(published / N).toFixed(2)} per node), ` +
      `delivered ${delivered.toFixed(0)} msg/s cluster-wide (${(delivered / N).toFixed(1)} received per node, its own included)`,
    );
    expect(heartbeats).toBe(N * (1_000 / INTERVAL_MS));
    expect(published).toBe(heartbeats); // heartbeats are the only traffic
    expect(delivered).toBe(N * N * (1_000 / INTERVAL_MS)); // each node hears all 100 (its own is dropped on arrival)
    // nobody was ever suspected in a healthy run
    for (const v of views.values()) expect(v.members().every((m) => m.status === 'up')).toBe(true);

    sim.nemesis.crash('n42');
    const survivors = [...views].filter(([n]) => n !== 'n42').map(([, v]) => v);
    await sim.run({ until: () => survivors.every((v) => v.members().find((m) => m.node === 'n42')?.status === 'down'), forMs: 20_000 });
    expect(survivors.every((v) => v.members().find((m) => m.node === 'n42')?.status === 'down')).toBe(true);
    expect(survivors.every((v) => v.members().filter((m) => m.status === 'up').length === N - 1)).toBe(true);
  }, 120_000);
});
