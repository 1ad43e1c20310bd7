/**
 * Asks under resilience policies: `ask(…, { policy })` and the system's per-target `policyFor`.
 */
import { describe, expect, it } from 'vitest';
import { createCircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { wrap } from '../../actors/policy/policy.ts';
import { fallback, timeout } from '../../actors/policy/timeout.ts';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import { AskTimeoutError, BrokenCircuitError, CallTimeoutError, NoRespondersError } from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem } from '../../framework/system.ts';
import { Counter, Silent, settle } from './fixtures/actors.ts';
import type { Count } from './fixtures/counter.pb.ts';

const make = () => {
  const clock = simulatedClock(1);
  const breaker = createCircuitBreaker({ name: 'ghosts', clock, consecutiveFailures: 2, openMs: 1_000 });
  const system = createSystem({
    cluster: 't', node: 'n1', clock, logger: silentLogger(), rng: createRng(3),
    policyFor: (target) => (target.includes('ghost') ? breaker : undefined),
  });
  return { clock, breaker, system };
};

describe('ask under a policy', () => {
  it('the per-target default policy trips on repeated failures and then fails fast', async () => {
    const { breaker, system } = make();
    system.spawn(Counter, { name: 'c' });
    await expect(system.ask('n1/ghost', { type: 'Get' })).rejects.toBeInstanceOf(NoRespondersError);
    await expect(system.ask('n1/ghost', { type: 'Get' })).rejects.toBeInstanceOf(NoRespondersError);
    expect(breaker.state).toBe('open');
    await expect(system.ask('n1/ghost', { type: 'Get' })).rejects.toBeInstanceOf(BrokenCircuitError);
    // other targets are not affected
    await expect(system.ask<Count>('n1/c', { type: 'Get' })).resolves.toMatchObject({ n: 0 });
    expect(system.deadLetters.countsByReason()['no-actor']).toBe(2); // the fast-failed ask never reached the system
    await system.shutdown();
  });

  it('ask({ policy }) overrides the default: timeout + fallback around an actor that never replies', async () => {
    const { clock, system } = make();
    system.spawn(Silent, { name: 'slow' });
    const policy = wrap(fallback({ fallback: { type: 'Count', n: -1 } }), timeout({ timeoutMs: 50, clock }));
    const reply = system.ask<Count>('n1/slow', { type: 'Get' }, { policy, timeoutMs: 10_000 });
    await settle();
    clock.increment(50);
    await expect(reply).resolves.toEqual({ type: 'Count', n: -1 });
    const bare = system.ask('n1/slow', { type: 'Get' }, { policy: timeout({ timeoutMs: 50, clock }), timeoutMs: 10_000 });
    await settle();
    clock.increment(50);
    await expect(bare).rejects.toBeInstanceOf(CallTimeoutError);
    // without a policy the ask's own timeout applies
    const plain = system.ask('n1/slow', { type: 'Get' }, { timeoutMs: 20 });
    clock.increment(20);
    await expect(plain).rejects.toBeInstanceOf(AskTimeoutError);
    await system.shutdown();
  });

  it('a policy\'s state chart can be hosted with the system\'s actors (actors(), snapshotOf, inspection)', async () => {
    const clock = simulatedClock(1);
    const events: Array<{ kind: string; actor?: string; value?: unknown }> = [];
    const system = createSystem({ cluster: 't', node: 'n1', clock, logger: silentLogger(), rng: createRng(4), inspect: (e) => events.push(e as never) });
    const breaker = createCircuitBreaker({ name: 'ghosts', clock, consecutiveFailures: 1, openMs: 1_000 });
    const unhost = system.host('breaker-ghosts', breaker.actor, { type: 'circuit-breaker' });
    expect(() => system.host('breaker-ghosts', breaker.actor)).toThrow(/already exists/);
    expect(system.actors()).toContain('n1/breaker-ghosts');
    expect(system.snapshotOf('n1/breaker-ghosts')?.value).toBe('closed');
    await expect(system.ask('n1/ghost', { type: 'Get' }, { policy: breaker })).rejects.toBeInstanceOf(NoRespondersError);
    expect(system.snapshotOf('n1/breaker-ghosts')?.value).toBe('open');
    const mine = events.filter((e) => e.actor === 'n1/breaker-ghosts');
    expect(mine.map((e) => e.kind)).toEqual(['actor.spawned', 'actor.snapshot', 'actor.snapshot']);
    expect(mine.map((e) => e.value).slice(1)).toEqual(['closed', 'open']);
    unhost();
    expect(system.actors()).not.toContain('n1/breaker-ghosts');
    breaker.dispose();
    await system.shutdown();
  });
});
