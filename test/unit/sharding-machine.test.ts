/**
 * The shard chart alone (createActor on a simulated clock): which effects each transition emits,
 * and the claim retry on time.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { shardMachine, type ShardEffect, type ShardEvent } from '../../actors/sharding/machine.ts';
import { simulatedClock } from '../../framework/clock.ts';

function start() {
  const clock = simulatedClock();
  const actor = createActor(shardMachine, { input: { shard: 7, claimRetryMs: 100 }, clock });
  const effects: string[] = [];
  actor.on('*', (e) => effects.push((e as ShardEffect).type));
  actor.start();
  const send = (type: ShardEvent['type']): void => actor.send({ type } as ShardEvent);
  const state = (): unknown => actor.getSnapshot().value;
  return { clock, effects, send, state };
}

describe('shard chart', () => {
  it('claims on demand, activates when granted, hands off when the owner moves', () => {
    const s = start();
    expect(s.state()).toBe('remote');
    s.send('DEMAND');
    expect(s.state()).toBe('claiming');
    s.send('CLAIM_GRANTED');
    expect(s.state()).toBe('active');
    s.send('OWNER_ELSEWHERE');
    expect(s.state()).toBe('handingOff');
    s.send('HANDOFF_IN');
    expect(s.state()).toBe('handingOff');
    s.send('ENTITIES_STOPPED');
    expect(s.state()).toBe('remote');
    expect(s.effects).toEqual(['shard.claim', 'shard.activate', 'shard.stopEntities', 'shard.handOff']);
  });

  it('a blocked claim waits claimRetryMs and claims again; an undecided claim is re-sent after 2 × claimRetryMs', () => {
    const s = start();
    s.send('DEMAND');
    s.send('CLAIM_BLOCKED');
    expect(s.state()).toBe('waiting');
    s.clock.increment(99);
    expect(s.effects).toEqual(['shard.claim']);
    s.clock.increment(1);
    expect(s.state()).toBe('claiming');
    s.clock.increment(199);
    expect(s.effects).toEqual(['shard.claim', 'shard.claim']);
    s.clock.increment(1);
    expect(s.effects).toEqual(['shard.claim', 'shard.claim', 'shard.claim']);
  });

  it('a hand-off ends a claim; losing ownership while claiming forwards the buffer', () => {
    const a = start();
    a.send('DEMAND');
    a.send('HANDOFF_IN');
    expect(a.state()).toBe('active');
    const b = start();
    b.send('DEMAND');
    b.send('OWNER_ELSEWHERE');
    expect(b.state()).toBe('remote');
    expect(b.effects).toEqual(['shard.claim', 'shard.forwardBuffered']);
    b.clock.increment(1_000);
    expect(b.effects).toEqual(['shard.claim', 'shard.forwardBuffered']);
  });
});
