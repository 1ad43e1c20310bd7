/**
 * Replication: the shared-prefix rule logs are compared by, the role chart, and option checks.
 * (Failover, fencing and reads run on the simulator: test/sim/replication.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { leaseElection } from '../../actors/leader-election/lease.ts';
import { replicaMachine } from '../../actors/replication/machine.ts';
import { replicated, sharedPrefix } from '../../actors/replication/replicated.ts';
import { listMachine } from '../../actors/replication/sim-scenario.ts';
import { createSimulation } from '../../framework/sim/simulation.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';

const logOf = (...epochs: number[]) => epochs.map((epoch) => ({ epoch }));

describe('sharedPrefix', () => {
  it.each([
    { name: 'identical logs', log: logOf(1, 1, 2), table: [{ epoch: 1, firstSeq: 1 }, { epoch: 2, firstSeq: 3 }], last: 3, want: 3 },
    { name: 'the other log is a prefix', log: logOf(1, 1, 2, 2), table: [{ epoch: 1, firstSeq: 1 }], last: 2, want: 2 },
    { name: 'ours is a prefix', log: logOf(1, 1), table: [{ epoch: 1, firstSeq: 1 }, { epoch: 3, firstSeq: 3 }], last: 5, want: 2 },
    { name: 'divergent suffix of a deposed primary', log: logOf(1, 1, 1, 2, 2), table: [{ epoch: 1, firstSeq: 1 }], last: 6, want: 3 },
    { name: 'nothing shared', log: logOf(2, 2), table: [{ epoch: 1, firstSeq: 1 }], last: 2, want: 0 },
    { name: 'an empty log', log: logOf(), table: [{ epoch: 1, firstSeq: 1 }], last: 4, want: 0 },
  ])('$name → $want', ({ log, table, last, want }) => {
    expect(sharedPrefix(log, table, last)).toBe(want);
  });
});

describe('replica role chart', () => {
  const start = () => {
    const a = createActor(replicaMachine, { input: { node: 'a', recoveryRetryMs: 10 } });
    a.start();
    return a;
  };
  it('elected → recovering → primary; a larger epoch fences it back to backup', () => {
    const a = start();
    a.send({ type: 'ELECTED', epoch: 4 });
    expect(a.getSnapshot().value).toEqual({ recovering: 'gathering' });
    a.send({ type: 'RECOVERED', epoch: 3, detail: 'stale' }); // another leadership's answer: ignored
    expect(a.getSnapshot().value).toEqual({ recovering: 'gathering' });
    a.send({ type: 'RECOVERED', epoch: 4, detail: 'ok' });
    expect(a.getSnapshot().value).toBe('primary');
    a.send({ type: 'FENCED', epoch: 4, by: 3 }); // not larger: ignored
    expect(a.getSnapshot().value).toBe('primary');
    a.send({ type: 'FENCED', epoch: 4, by: 9 });
    expect(a.getSnapshot().value).toBe('backup');
    expect(a.getSnapshot().context.lastReason).toBe('fenced by epoch 9');
  });
  it('elected again with a newer epoch while primary (no deposal heard in between): recovers for the new epoch', () => {
    const a = start();
    a.send({ type: 'ELECTED', epoch: 2 });
    a.send({ type: 'RECOVERED', epoch: 2, detail: 'ok' });
    a.send({ type: 'ELECTED', epoch: 2 }); // the same leadership: ignored
    expect(a.getSnapshot().value).toBe('primary');
    a.send({ type: 'ELECTED', epoch: 5 });
    expect(a.getSnapshot().value).toEqual({ recovering: 'gathering' });
    expect(a.getSnapshot().context.epoch).toBe(5);
    a.send({ type: 'RECOVERED', epoch: 5, detail: 'ok' });
    expect(a.getSnapshot().value).toBe('primary');
  });

  it('a failed recovery backs off and tries again; deposal while recovering returns to backup', () => {
    const a = start();
    a.send({ type: 'ELECTED', epoch: 2 });
    a.send({ type: 'RECOVERY_FAILED', epoch: 2, reason: 'no quorum' });
    expect(a.getSnapshot().value).toEqual({ recovering: 'backoff' });
    expect(a.getSnapshot().context.attempts).toBe(1);
    a.send({ type: 'DEPOSED', epoch: 2, reason: 'lease lost' });
    expect(a.getSnapshot().value).toBe('backup');
  });
});

describe('replicated options', () => {
  const sim = createSimulation({ seed: 1, nodes: ['a', 'b', 'c'], trace: false });
  const system = sim.system('a');
  const election = leaseElection({ store: createMemoryKvStore({ clock: sim.clock }), candidate: 'a', clock: sim.clock });
  const base = { name: 'list', machine: listMachine, replicas: ['a', 'b', 'c'], election };
  it.each([
    [{ w: 3 }, /option w must be an integer in 1..2/],
    [{ w: 0 }, /option w /],
    [{ mode: 'eventual' as never }, /option mode /],
    [{ replicas: ['b', 'c'] }, /option replicas must be a list including this node 'a'/],
    [{ replicas: ['a'] }, /option replicas must be at least 2/],
    [{ heartbeatIntervalMs: 0 }, /option heartbeatIntervalMs /],
    [{ maxStalenessMs: -1 }, /option maxStalenessMs /],
    [{ maxBatch: 1.5 }, /option maxBatch /],
  ])('%j → RangeError', (bad, message) => {
    expect(() => replicated(system, { ...base, ...bad })).toThrow(RangeError);
    expect(() => replicated(system, { ...base, ...bad })).toThrow(message);
  });
});
