/**
 * The distributed lock on the memory store, on a simulated clock: every scenario of
 * test/helpers/lock-scenarios.ts (5 clients × 1000 critical sections included), plus option
 * validation and the lease chart on its own.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { FencedResource, fencedWrite, readFenced } from '../../actors/lock/fenced-resource.ts';
import { createLock, LOCK_VIEW_IDLE_MS } from '../../actors/lock/lock.ts';
import { leaseMachine, type LeaseEffectInput, type RenewOutcome } from '../../actors/lock/machine.ts';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import { FencingTokenRejectedError, InvalidNameError } from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';
import { createSystem } from '../../framework/system.ts';
import { faultyStore } from '../helpers/lock-fixtures.ts';
import { lockScenarios, simulatedTimeBackend } from '../helpers/lock-scenarios.ts';

const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

lockScenarios(simulatedTimeBackend('the memory store (simulated clock)', async (clock) => createMemoryKvStore({ clock }), { ttlMs: 3_000 }));

describe('lock options', () => {
  const clock = simulatedClock();
  const store = createMemoryKvStore({ clock });
  it('bad options are RangeErrors naming the option', () => {
    expect(() => createLock(store, { clock, owner: '' })).toThrow(/owner/);
    expect(() => createLock(store, { clock, owner: 'a', ttlMs: 0 })).toThrow(/ttlMs/);
    expect(() => createLock(store, { clock, owner: 'a', ttlMs: 1_000, renewIntervalMs: 1_000 })).toThrow(/renewIntervalMs/);
    expect(() => createLock(store, { clock, owner: 'a', prefix: 'a..b' })).toThrow(/prefix/);
    expect(() => createLock(store, { clock, owner: 'a', retryDelayMs: -1 })).toThrow(RangeError);
  });
  it('bad acquire arguments reject: a name that is not one key token, a negative waitMs', async () => {
    const lock = createLock(store, { clock, owner: 'a' });
    await expect(lock.acquire('a.b')).rejects.toBeInstanceOf(InvalidNameError);
    await expect(lock.acquire('ok', { waitMs: -1 })).rejects.toThrow(/waitMs/);
    await expect(lock.acquire('ok', { ttlMs: Number.NaN })).rejects.toThrow(/ttlMs/);
  });
});

describe('lock client housekeeping (memory store, simulated clock)', () => {
  it(`stops watching a lock ${LOCK_VIEW_IDLE_MS} ms after its last waiter left`, async () => {
    const clock = simulatedClock(0);
    const store = createMemoryKvStore({ clock });
    const a = createLock(store, { clock, owner: 'a', rng: createRng(1), ttlMs: 3_000 });
    const link = faultyStore(store);
    const b = createLock(link, { clock, owner: 'b', rng: createRng(2), ttlMs: 3_000 });
    const leaseA = await a.acquire('x');
    const gotB = b.acquire('x');
    await settle();
    expect(link.calls.get('watch:')).toBe(1);
    await leaseA.release();
    await settle();
    await (await gotB).release();
    clock.increment(LOCK_VIEW_IDLE_MS - 1);
    await settle();
    expect(link.calls.get('unwatch:')).toBeUndefined();
    clock.increment(1);
    await settle();
    expect(link.calls.get('unwatch:')).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('FencedResource', () => {
  it('accepts a token equal to or above the highest it accepted, refuses a lower one', async () => {
    const clock = simulatedClock(0);
    const system = createSystem({ cluster: 'test', node: 'n1', clock, logger: silentLogger(), rng: createRng(3) });
    const res = system.spawn(FencedResource, { name: 'r' });
    expect(await fencedWrite(system, res, 5, 'a')).toBe(0);
    expect(await fencedWrite(system, res, 5, 'b')).toBe(1); // the same holder writes twice
    const err = await fencedWrite(system, res, 4, 'c').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencingTokenRejectedError);
    expect((err as FencingTokenRejectedError).fields()).toMatchObject({ token: 4, highest: 5 });
    expect(await fencedWrite(system, res, 9, 'd')).toBe(2);
    expect(await readFenced(system, res)).toMatchObject({ highest: 9, values: ['a', 'b', 'd'], tokens: [5, 5, 9], rejected: 1 });
    await system.shutdown();
  });
});

describe('the lease chart', () => {
  it('a renewal that gets no answer is retried, and the lease is declared lost once it may have expired', async () => {
    const clock = simulatedClock(0);
    let renewals = 0;
    const machine = leaseMachine.provide({
      actions: {
        createLease: ({ context, self }) => {
          const attempt = context.attempt;
          queueMicrotask(() => self.send({ type: 'CREATE_RESULT', attempt, outcome: { kind: 'created', revision: 7, atMs: clock.now() } }));
        },
      },
      actors: {
        renewLease: fromPromise<RenewOutcome, LeaseEffectInput>(async () => {
          renewals++;
          return { kind: 'unknown', atMs: clock.now(), reason: 'timeout' };
        }),
      },
    });
    const actor = createActor(machine, {
      clock,
      input: { name: 'x', owner: 'o', leaseId: 'l', ttlMs: 900, renewIntervalMs: 300, retryDelayMs: 100, waitMs: Infinity },
    }).start();
    actor.send({ type: 'ACQUIRE', contended: false });
    await settle();
    expect(actor.getSnapshot().value).toBe('held');
    expect(actor.getSnapshot().context.token).toBe(7);
    for (let t = 0; t < 899; t += 1) {
      clock.increment(1);
      await settle();
    }
    expect(actor.getSnapshot().status).toBe('active'); // not yet: the lease may still be valid
    clock.increment(1);
    await settle();
    expect(actor.getSnapshot().value).toBe('lost');
    expect(renewals).toBe(7); // at 300, then every 100 ms until 900
  });
});
