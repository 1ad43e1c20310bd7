/**
 * Primary–backup replication on the deterministic simulator (actors/replication/sim-scenario.ts):
 * the primary is crashed or isolated under load, a new primary takes over through the lease
 * election, and the old one returns and catches up.
 */
import { describe, expect, it } from 'vitest';
import type { Campaign, CampaignHandlers, LeaderElection } from '../../actors/leader-election/election.ts';
import { replicated, type ReplicationEvent, type Replicated } from '../../actors/replication/replicated.ts';
import { listMachine, REPLICAS, runReplicationScenario } from '../../actors/replication/sim-scenario.ts';
import { NotPrimaryError, StaleReadError, WriteUnacknowledgedError } from '../../framework/errors.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';

const SEEDS = Number(process.env['REPLICATION_SEEDS'] ?? 20);
const FIRST = Number(process.env['REPLICATION_SEED'] ?? 1);

describe('replication on the simulator', () => {
  it(`sync, W=1 of 2 backups, ${SEEDS} seeds: crash the primary under load — no acknowledged write lost, the old primary catches up`, async () => {
    let failovers = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runReplicationScenario({ seed, mode: 'sync', fault: 'crash' });
      expect(r.acknowledgedBeforeFault, r.replay).toBeGreaterThan(100);
      expect(r.lost, r.replay).toBe(0);
      expect(r.newPrimary).not.toBe(r.oldPrimary);
      expect(r.epochs.length).toBeGreaterThanOrEqual(2);
      failovers += r.failoverMs;
    }
    console.log(`replication sync/crash: ${SEEDS} seeds, mean failover ${(failovers / SEEDS).toFixed(0)} ms`);
  }, 300_000);
});

describe('replication on the simulator: async and partitions', () => {
  it(`async, ${SEEDS} seeds: crash the primary under load — the acknowledged writes lost are at most the lag it reported`, async () => {
    let lost = 0;
    let lag = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runReplicationScenario({ seed, mode: 'async', fault: 'crash' });
      expect(r.acknowledgedBeforeFault, r.replay).toBeGreaterThan(100);
      expect(r.lost, r.replay).toBeLessThanOrEqual(r.lagAtFault.entries);
      lost += r.lost;
      lag += r.lagAtFault.entries;
    }
    console.log(`replication async/crash: ${SEEDS} seeds, ${lost} acknowledged writes lost in all, reported lag ${lag} entries in all`);
    expect(lag).toBeGreaterThan(0);
  }, 300_000);

  it(`async, ${SEEDS} seeds: both backups cut off for 100 ms before the crash — writes are lost, never more than the reported lag`, async () => {
    let lost = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runReplicationScenario({ seed, mode: 'async', fault: 'crash', lagBackups: 'both' });
      expect(r.lost, r.replay).toBeLessThanOrEqual(r.lagAtFault.entries);
      expect(r.lagAtFault.ms, r.replay).toBeGreaterThanOrEqual(90);
      lost += r.lost;
    }
    console.log(`replication async/crash, backups cut: ${SEEDS} seeds, ${lost} acknowledged writes lost in all`);
    expect(lost).toBeGreaterThan(10 * SEEDS); // async acknowledges what no backup has: a failover loses it
  }, 300_000);

  it(`sync, ${SEEDS} seeds: isolate the primary under load — it acknowledges nothing more, is fenced, and catches up on heal`, async () => {
    let rejected = 0;
    for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
      const r = await runReplicationScenario({ seed, mode: 'sync', fault: 'isolate' });
      expect(r.lost, r.replay).toBe(0);
      expect(r.newPrimary, r.replay).not.toBe(r.oldPrimary);
      // The writes the isolated primary took could not be acknowledged: they failed with a typed error.
      expect(r.rejected, r.replay).toBeGreaterThan(0);
      // On heal, the old primary learns the new epoch (fenced) or already stepped down with its lease.
      expect(r.events.some((e) => e.node === r.oldPrimary && e.kind === 'role' && e.role === 'backup'), r.replay).toBe(true);
      rejected += r.rejected;
    }
    console.log(`replication sync/isolate: ${SEEDS} seeds, ${rejected} writes refused or unacknowledged by deposed primaries`);
  }, 300_000);
});

/**
 * An election the test drives by hand — and which never deposes anyone: a primary elected here
 * believes it leads forever, like one whose lease check is broken by a clock bug. Only fencing
 * can stop it.
 */
function manualElection(candidate: string) {
  let handlers: CampaignHandlers = {};
  let epoch: number | undefined;
  const campaign: Campaign = {
    group: 'list', candidate,
    get state() { return epoch === undefined ? 'follower' as const : 'leader' as const; },
    isLeader: () => epoch !== undefined,
    leadership: () => (epoch === undefined ? undefined : { group: 'list', candidate, epoch }),
    confirm: async () => ({ group: 'list', candidate, epoch: epoch! }),
    resign: async () => undefined,
  };
  const election: LeaderElection = {
    kind: 'manual', candidate,
    campaign(_group, h = {}) { handlers = h; return campaign; },
    leader: async () => undefined,
    close: async () => undefined,
  };
  return { election, elect(e: number) { epoch = e; handlers.onElected?.({ group: 'list', candidate, epoch: e }); } };
}

async function manualCluster(seed: number) {
  const sim = createSimulation({ seed, nodes: [...REPLICAS], latencyMs: [1, 5], trace: false });
  const events: ReplicationEvent[] = [];
  const elections = new Map<string, ReturnType<typeof manualElection>>();
  const replicas = new Map<string, Replicated<typeof listMachine>>();
  for (const n of REPLICAS) {
    const m = manualElection(n);
    elections.set(n, m);
    replicas.set(n, replicated(sim.system(n), {
      name: 'list', machine: listMachine, replicas: REPLICAS, election: m.election, mode: 'sync', w: 1,
      heartbeatIntervalMs: 20, requestTimeoutMs: 100, recoveryRetryMs: 50, writeTimeoutMs: 1_000, maxStalenessMs: 200,
      onEvent: (e) => events.push(e),
    }));
  }
  const r = (n: string) => replicas.get(n)!;
  const items = (n: string) => r(n).read({ maxStalenessMs: Number.POSITIVE_INFINITY }).snapshot.context.items;
  /** Run the simulation until `p` settles (a write needs the network to move). */
  const drive = async <T>(p: Promise<T>): Promise<T> => {
    let done = false;
    p.then(() => { done = true; }, () => { done = true; });
    await sim.run({ until: () => done, forMs: 5_000 });
    return p;
  };
  return { sim, events, elections, r, items, drive };
}

describe('replication: fencing, catch-up and bounded-staleness reads', () => {
  it('a deposed primary that still believes it leads is fenced: its write is never acknowledged, then it drops its suffix and catches up', async () => {
    const { sim, events, elections, r, items, drive } = await manualCluster(3);
    elections.get('a')!.elect(1);
    await sim.run({ until: () => r('a').status().role === 'primary', maxSteps: 10_000 });
    await sim.run({ forMs: 5 });
    for (let n = 1; n <= 5; n++) expect(await drive(r('a').send({ type: 'ADD', n }))).toEqual({ epoch: 1, seq: n });
    await sim.run({ forMs: 50 });
    expect(items('b')).toEqual([1, 2, 3, 4, 5]);

    // b is elected with epoch 2 while a cannot hear b: a keeps believing it is primary.
    sim.nemesis.partition([['a'], ['b', 'c']]);
    elections.get('b')!.elect(2);
    await sim.run({ until: () => r('b').status().role === 'primary', forMs: 2_000 });
    expect(r('b').status().role).toBe('primary');
    expect(r('a').status().role).toBe('primary');
    await sim.run({ forMs: 5 });
    expect(await drive(r('b').send({ type: 'ADD', n: 100 }))).toEqual({ epoch: 2, seq: 6 });
    const zombie = r('a').send({ type: 'ADD', n: 666 }).then(() => 'acknowledged', (e: unknown) => e);
    await sim.run({ forMs: 50 });
    // a reaches c again (not b): c answers with the epoch it promised, and a steps down at once.
    sim.nemesis.heal();
    sim.nemesis.partitionOneWay('a', 'b');
    sim.nemesis.partitionOneWay('b', 'a');
    await sim.run({ forMs: 200 });
    const outcome = await zombie;
    expect(outcome).toBeInstanceOf(WriteUnacknowledgedError);
    expect(r('a').status().role).toBe('backup');
    expect(events).toContainEqual({ kind: 'fenced', node: 'a', epoch: 1, by: 2 });
    await expect(r('a').send({ type: 'ADD', n: 667 })).rejects.toBeInstanceOf(NotPrimaryError);
    expect(items('c')).not.toContain(666);

    // Healed, a drops its divergent entry (666) and holds what the new primary holds.
    sim.nemesis.heal();
    await sim.run({ forMs: 300 });
    expect(events.some((e) => e.kind === 'truncated' && e.node === 'a')).toBe(true);
    expect(items('a')).toEqual(items('b'));
    expect(items('a')).toEqual([1, 2, 3, 4, 5, 100]);
    await sim.shutdown();
  });

  it('a returning old primary drops its unacknowledged suffix even when the new primary has written nothing since', async () => {
    const { sim, events, elections, r, items, drive } = await manualCluster(5);
    elections.get('a')!.elect(1);
    await sim.run({ until: () => r('a').status().role === 'primary', maxSteps: 10_000 });
    await sim.run({ forMs: 5 });
    for (let n = 1; n <= 3; n++) await drive(r('a').send({ type: 'ADD', n }));
    sim.nemesis.partition([['a'], ['b', 'c']]);
    const lost = r('a').send({ type: 'ADD', n: 99 }).then(() => 'acknowledged', (e: unknown) => e);
    elections.get('b')!.elect(2);
    await sim.run({ until: () => r('b').status().role === 'primary', forMs: 2_000 });
    expect(items('a')).toEqual([1, 2, 3, 99]);
    sim.nemesis.heal();
    await sim.run({ forMs: 200 });
    expect(await lost).toBeInstanceOf(WriteUnacknowledgedError);
    expect(r('a').status().role).toBe('backup');
    expect(events).toContainEqual({ kind: 'truncated', node: 'a', fromSeq: 4, toSeq: 3 });
    expect(items('a')).toEqual([1, 2, 3]);
    expect(items('b')).toEqual([1, 2, 3]);
    await sim.shutdown();
  });

  it('backup reads carry their staleness and are refused past the bound', async () => {
    const { sim, elections, r, items, drive } = await manualCluster(4);
    elections.get('a')!.elect(1);
    await sim.run({ until: () => r('a').status().role === 'primary', maxSteps: 10_000 });
    await sim.run({ forMs: 5 });
    await drive(r('a').send({ type: 'ADD', n: 1 }));
    await sim.run({ forMs: 100 });
    const fresh = r('c').read({ maxStalenessMs: 50 });
    expect(fresh.role).toBe('backup');
    expect(fresh.stalenessMs).toBeLessThanOrEqual(20 + 10); // one heartbeat + a round trip
    expect(r('a').read().stalenessMs).toBe(0);

    sim.nemesis.isolate('c');
    await drive(r('a').send({ type: 'ADD', n: 2 })); // b acknowledges; c never hears of it
    await sim.run({ forMs: 300 });
    expect(() => r('c').read({ maxStalenessMs: 200 })).toThrow(StaleReadError);
    const stale = r('c').read({ maxStalenessMs: 1_000 });
    expect(stale.stalenessMs).toBeGreaterThanOrEqual(300);
    expect(stale.snapshot.context.items).toEqual([1]);
    expect(items('b')).toEqual([1, 2]);

    sim.nemesis.heal();
    await sim.run({ forMs: 100 });
    expect(r('c').read({ maxStalenessMs: 50 }).snapshot.context.items).toEqual([1, 2]);
    await sim.shutdown();
  });
});
