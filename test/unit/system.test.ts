/**
 * The actor system through its public surface: tell, ask, errors, dead letters, mailbox limits,
 * death watch, shutdown, invoked asks, and two nodes on one shared MemoryBus.
 * Simulated clock only: time moves when a test says so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { defineActor } from '../../framework/actor.ts';
import {
  AbortedError, ActorFailedError, AskTimeoutError, InvalidNameError, MailboxFullError, NameTakenError, NoRespondersError, SystemShutdownError,
  UnknownMessageTypeError,
} from '../../framework/errors.ts';
import { createRng, simulatedClock } from '../../framework/clock.ts';
import { silentLogger } from '../../framework/log.ts';
import { withFaults } from '../../framework/transport/faults.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import type { RefLike } from '../../framework/ref.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { Counter, Relay, settle, Silent, testSystem, track, twoNodes } from './fixtures/actors.ts';
import { messages as counterMessages, type Count } from './fixtures/counter.pb.ts';
import { messages as kitchen } from './fixtures/kitchen.pb.ts';

/** An actor accepting the kitchen schema (ignores everything): teaches a system those types. */
const Shapes = defineActor({ type: 'shapes', machine: setup({}).createMachine({ id: 'shapes' }), messages: kitchen });

const toShutDown: ActorSystem[] = [];
const keep = <T extends { system: ActorSystem }>(x: T): T => {
  toShutDown.push(x.system);
  return x;
};
afterEach(async () => {
  await Promise.all(toShutDown.splice(0).map((s) => s.shutdown()));
});

const contextOf = <C>(system: ActorSystem, ref: RefLike): C => system.snapshotOf(ref)?.context as C;

describe('tell and ask on one node', () => {
  it('delivers tells to a local actor in order', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c', input: { log } });
    c.send({ type: 'Inc', by: 2 });
    c.send({ type: 'Inc', by: 3 });
    system.deliver(c, { type: 'Note', text: 'via-deliver' });
    await settle();
    expect(contextOf<{ n: number }>(system, c).n).toBe(5);
    expect(log).toEqual(['start', 'Inc:2', 'Inc:3', 'Note:via-deliver']);
    expect(system.deadLetters.count).toBe(0);
  });

  it('ask gets the reply() of the actor', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 7 });
    const reply = await system.ask<Count>(c, { type: 'Get' });
    expect(reply).toMatchObject({ type: 'Count', n: 7 });
    // asks by address string work the same
    expect((await system.ask<Count>('n1/c', { type: 'Get' })).n).toBe(7);
  });

  it('a reply to a message that was not an ask is a dead letter (no-ask)', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    c.send({ type: 'Get' });
    await settle();
    expect(system.deadLetters.countsByReason()['no-ask']).toBe(1);
  });

  it('ask times out after exactly timeoutMs of simulated time', async () => {
    const { system, clock } = keep(testSystem());
    const s = system.spawn(Silent, { name: 's' });
    const p = track(system.ask(s, { type: 'Get' }, { timeoutMs: 1_000 }));
    await settle();
    clock.increment(999);
    await settle();
    expect(p.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(p.state()).toBe('rejected');
    const err = p.error() as AskTimeoutError;
    expect(err).toBeInstanceOf(AskTimeoutError);
    expect(err.timeoutMs).toBe(1_000);
    expect(err.address).toBe('n1/s');
    expect(err.retryable).toBe(true);
  });

  it('ask uses the askTimeoutMs option by default', async () => {
    const { system, clock } = keep(testSystem({ askTimeoutMs: 300 }));
    const s = system.spawn(Silent, { name: 's' });
    const p = track(system.ask(s, { type: 'Get' }));
    clock.increment(299);
    await settle();
    expect(p.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(p.error()).toBeInstanceOf(AskTimeoutError);
  });

  it('a late reply after the timeout is a dead letter (no-ask), not a crash', async () => {
    const { system, clock } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c', supervision: { backoff: { minMs: 100 } } });
    // the Boom suspends the counter for 100 ms (restart backoff); the ask waits in its mailbox
    c.send({ type: 'Boom', why: 'pause' });
    const p = track(system.ask(c, { type: 'Get' }, { timeoutMs: 50 }));
    await settle();
    clock.increment(50);
    await settle();
    expect(p.error()).toBeInstanceOf(AskTimeoutError);
    clock.increment(50);
    await settle();
    expect(system.deadLetters.countsByReason()['no-ask']).toBe(1);
  });

  it('an ask whose handler throws fails at once with ActorFailedError (no timeout), and the actor is restarted', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 1 });
    const p = track(system.ask(c, { type: 'Boom', why: 'asked' }, { timeoutMs: 60_000 }));
    await settle();
    expect(p.state()).toBe('rejected');
    expect(p.error()).toBeInstanceOf(ActorFailedError);
    expect((p.error() as ActorFailedError).address).toBe('n1/c');
    expect((await system.ask<Count>(c, { type: 'Get' })).n).toBe(0);
  });

  it('ask to a missing actor fails with NoRespondersError and leaves a no-actor dead letter', async () => {
    const { system } = keep(testSystem());
    await expect(system.ask('n1/ghost', { type: 'Get' })).rejects.toBeInstanceOf(NoRespondersError);
    const dl = system.deadLetters.recent().at(-1);
    expect(dl).toMatchObject({ reason: 'no-actor', target: 'n1/ghost', messageType: 'Get' });
  });

  it('ask with an already aborted signal fails with AbortedError', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    const ac = new AbortController();
    ac.abort(new Error('caller gave up'));
    const err = await system.ask(c, { type: 'Get' }, { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect((err as AbortedError).cause).toBe(ac.signal.reason);
  });

  it('ask aborted while waiting fails with AbortedError at once, and its timer is cancelled', async () => {
    const { system, clock } = keep(testSystem());
    const s = system.spawn(Silent, { name: 's' });
    const ac = new AbortController();
    const p = track(system.ask(s, { type: 'Get' }, { signal: ac.signal, timeoutMs: 1_000 }));
    await settle();
    expect(p.state()).toBe('pending');
    ac.abort();
    await settle();
    expect(p.error()).toBeInstanceOf(AbortedError);
    clock.increment(5_000);
    await settle();
    expect(p.error()).toBeInstanceOf(AbortedError);
  });

  it('ask with a message type the actor does not accept fails with UnknownMessageTypeError', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    const err = await system.ask(c, { type: 'NoSuchMessage' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownMessageTypeError);
    expect((err as UnknownMessageTypeError).messageType).toBe('NoSuchMessage');
    expect(system.deadLetters.countsByReason()['unknown-type']).toBe(1);
  });

  it('a tell of an unknown message type is a dead letter (unknown-type), never an exception', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    expect(() => c.send({ type: 'NoSuchMessage' } as never)).not.toThrow();
    await settle();
    expect(system.deadLetters.countsByReason()['unknown-type']).toBe(1);
  });

  it('a tell to a missing actor is a dead letter (no-actor)', async () => {
    const { system } = keep(testSystem());
    const ghost = system.ref('n1/ghost');
    ghost.send({ type: 'Inc' });
    system.deliver('n1/ghost2', { type: 'Inc' });
    await settle();
    expect(system.deadLetters.countsByReason()['no-actor']).toBe(2);
    expect(system.deadLetters.recent().map((d) => d.target)).toEqual(['n1/ghost', 'n1/ghost2']);
  });

  it('dead-letter subscribers see each dead letter', async () => {
    const { system } = keep(testSystem());
    const seen: string[] = [];
    const off = system.deadLetters.subscribe((dl) => seen.push(`${dl.reason}:${dl.target}`));
    system.deliver('n1/ghost', { type: 'Inc' });
    off();
    system.deliver('n1/ghost', { type: 'Inc' });
    expect(seen).toEqual(['no-actor:n1/ghost']);
    expect(system.deadLetters.count).toBe(2);
  });
});

describe('mailbox limits and ordering', () => {
  it('dead-letters tells beyond mailboxCapacity and rejects an ask with MailboxFullError', async () => {
    const { system } = keep(testSystem({ mailboxCapacity: 2 }));
    const c = system.spawn(Counter, { name: 'c' });
    // all in one tick: the mailbox is only drained on a later microtask
    for (let i = 0; i < 5; i++) c.send({ type: 'Inc', by: 1 });
    const err = await system.ask(c, { type: 'Get' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailboxFullError);
    expect((err as MailboxFullError).capacity).toBe(2);
    expect(system.deadLetters.countsByReason()['mailbox-full']).toBe(4);
    await settle();
    expect(contextOf<{ n: number }>(system, c).n).toBe(2);
    // the mailbox has room again
    expect((await system.ask<Count>(c, { type: 'Get' })).n).toBe(2);
  });

  it('processes system messages (Terminated) before user messages already queued', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const w = system.spawn(Counter, { name: 'w', input: { log } });
    const t = system.spawn(Counter, { name: 't' });
    w.send({ type: 'WatchIt', target: t.address });
    await settle();
    w.send({ type: 'Note', text: '1' });
    w.send({ type: 'Note', text: '2' });
    system.stop(t);
    await settle();
    expect(log).toEqual(['start', 'WatchIt:n1/t', 'Terminated:n1/t:stopped', 'Note:1', 'Note:2']);
  });

  it('yields between turns but processes everything when more mail than `throughput` is queued', async () => {
    const { system } = keep(testSystem({ throughput: 3 }));
    const c = system.spawn(Counter, { name: 'c' });
    for (let i = 0; i < 50; i++) c.send({ type: 'Inc', by: 1 });
    await settle(40);
    expect(contextOf<{ n: number }>(system, c).n).toBe(50);
  });
});

describe('names', () => {
  const badNames = ['bad name', 'a.b', '*', '>', 'a/b', '', '_sys', '_private', '-x', 'x'.repeat(65), 'tab\there'];
  for (const name of badNames) {
    it(`spawn rejects the name ${JSON.stringify(name)} with InvalidNameError`, () => {
      const { system } = keep(testSystem());
      expect(() => system.spawn(Counter, { name })).toThrow(InvalidNameError);
      expect(system.actors()).toEqual([]);
    });
  }

  it('spawn accepts names made of letters, digits, - and _', () => {
    const { system } = keep(testSystem());
    const r = system.spawn(Counter, { name: 'Worker_1-a' });
    expect(r.address).toBe('n1/Worker_1-a');
    expect(system.actors()).toContain('n1/Worker_1-a');
  });

  it('spawn rejects a duplicate name with NameTakenError, and the name is free again after stop', async () => {
    const { system } = keep(testSystem());
    const first = system.spawn(Counter, { name: 'c' });
    expect(() => system.spawn(Counter, { name: 'c' })).toThrow(NameTakenError);
    system.stop(first);
    await settle();
    expect(() => system.spawn(Counter, { name: 'c' })).not.toThrow();
  });

  it('ref() rejects bad addresses with InvalidNameError', () => {
    const { system } = keep(testSystem());
    for (const a of ['bad name', 'n1', 'n1/bad name', 'n1/', '/x', 'n1/a.b', 'n 1/x']) {
      expect(() => system.ref(a), a).toThrow(InvalidNameError);
    }
    expect(system.ref('n1/ok').address).toBe('n1/ok');
    expect(system.ref('other/ok/child').address).toBe('other/ok/child');
  });

  it('createSystem rejects a bad node or cluster name', () => {
    expect(() => createSystem({ cluster: 'a.b', node: 'n1', clock: simulatedClock(), logger: silentLogger() })).toThrow(InvalidNameError);
    expect(() => createSystem({ cluster: 't', node: 'n 1', clock: simulatedClock(), logger: silentLogger() })).toThrow(InvalidNameError);
  });

  it('ask to an invalid address rejects with InvalidNameError instead of throwing', async () => {
    const { system } = keep(testSystem());
    await expect(system.ask('no slash', { type: 'Get' })).rejects.toBeInstanceOf(InvalidNameError);
  });
});

describe('death watch', () => {
  it('system.watch resolves with reason stopped after system.stop', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    const w = track(system.watch(c));
    await settle();
    expect(w.state()).toBe('pending');
    system.stop(c);
    await settle();
    expect(w.value()).toEqual({ type: 'Terminated', actor: 'n1/c', reason: 'stopped' });
    expect(system.actors()).not.toContain('n1/c');
    // stopping again is a no-op
    expect(() => system.stop(c)).not.toThrow();
  });

  it('an actor that used the watch() action gets a Terminated event', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const w = system.spawn(Counter, { name: 'w', input: { log } });
    const t = system.spawn(Counter, { name: 't' });
    w.send({ type: 'WatchIt', target: 'n1/t' });
    await settle();
    system.stop(t);
    await settle();
    expect(log).toContain('Terminated:n1/t:stopped');
  });

  it('watch(target, watcher) also delivers Terminated to the watcher actor', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const w = system.spawn(Counter, { name: 'w', input: { log } });
    const t = system.spawn(Counter, { name: 't' });
    const p = system.watch(t, w);
    system.stop(t);
    expect((await p).reason).toBe('stopped');
    await settle();
    expect(log).toContain('Terminated:n1/t:stopped');
  });

  it('after the unwatch() action the watcher no longer gets Terminated', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const w = system.spawn(Counter, { name: 'w', input: { log } });
    const t = system.spawn(Counter, { name: 't' });
    w.send({ type: 'WatchIt', target: 'n1/t' });
    w.send({ type: 'UnwatchIt', target: 'n1/t' });
    await settle();
    system.stop(t);
    await settle();
    expect(log).toEqual(['start', 'WatchIt:n1/t', 'UnwatchIt:n1/t']);
  });

  it('a ref taken before a stop reaches the actor later spawned under the same name', async () => {
    const { system } = keep(testSystem());
    const old = system.spawn(Counter, { name: 'c' });
    old.send({ type: 'Inc', by: 1 });
    await settle();
    system.stop(old);
    const fresh = system.spawn(Counter, { name: 'c' });
    old.send({ type: 'Inc', by: 5 });
    await settle();
    expect(contextOf<{ n: number }>(system, fresh).n).toBe(5);
  });

  it('watching a missing actor gives reason not-found', async () => {
    const { system } = keep(testSystem());
    expect(await system.watch('n1/ghost')).toEqual({ type: 'Terminated', actor: 'n1/ghost', reason: 'not-found' });
  });

  it('an actor watching a missing actor gets Terminated not-found', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const w = system.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n1/ghost' });
    await settle();
    expect(log).toContain('Terminated:n1/ghost:not-found');
  });

  it('a machine reaching a final state stops with reason done', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    const w = system.watch(c);
    c.send({ type: 'Finish' });
    expect((await w).reason).toBe('done');
    expect(system.actors()).not.toContain('n1/c');
    c.send({ type: 'Inc', by: 1 });
    await settle();
    expect(system.deadLetters.countsByReason()['no-actor']).toBe(1);
  });

  it('mail left in a stopped actor is dead-lettered and a waiting ask fails', async () => {
    const { system } = keep(testSystem());
    const c = system.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 1 });
    const p = track(system.ask(c, { type: 'Get' }));
    system.stop(c); // same tick: both are still in the mailbox
    await settle();
    expect(p.state()).toBe('rejected');
    expect((p.error() as Error).name).toBe('ActorStoppedError');
    expect(system.deadLetters.countsByReason()['actor-stopped']).toBe(2);
  });
});

describe('shutdown', () => {
  it('rejects pending asks with SystemShutdownError and is idempotent', async () => {
    const { system } = testSystem();
    const s = system.spawn(Silent, { name: 's' });
    const p = track(system.ask(s, { type: 'Get' }, { timeoutMs: 60_000 }));
    await settle();
    const w = system.watch(s);
    const first = system.shutdown();
    const second = system.shutdown();
    await Promise.all([first, second]);
    await system.shutdown();
    await settle();
    expect(p.error()).toBeInstanceOf(SystemShutdownError);
    expect((await w).reason).toBe('stopped');
    expect(system.actors()).toEqual([]);
  });

  it('after shutdown: spawn throws, ask rejects, tell is a dead letter (shutdown)', async () => {
    const { system } = testSystem();
    const c = system.spawn(Counter, { name: 'c' });
    await system.shutdown();
    expect(() => system.spawn(Counter, { name: 'd' })).toThrow(SystemShutdownError);
    await expect(system.ask(c, { type: 'Get' })).rejects.toBeInstanceOf(SystemShutdownError);
    system.deliver(c, { type: 'Inc', by: 1 });
    expect(system.deadLetters.countsByReason()['shutdown']).toBe(1);
  });

  it('await using shuts the system down at the end of the block', async () => {
    let escaped: ActorSystem | undefined;
    {
      await using system = createSystem({ cluster: 'test', node: 'n1', clock: simulatedClock(), logger: silentLogger(), rng: createRng(1) });
      escaped = system;
      system.spawn(Counter, { name: 'c' });
      expect(system.actors()).toEqual(['n1/c']);
    }
    expect(escaped.actors()).toEqual([]);
    await expect(escaped.ask('n1/c', { type: 'Get' })).rejects.toBeInstanceOf(SystemShutdownError);
  });

  it('exposes Symbol.asyncDispose', async () => {
    const { system } = testSystem();
    expect(typeof system[Symbol.asyncDispose]).toBe('function');
    await system[Symbol.asyncDispose]();
    await expect(system.ask('n1/c', { type: 'Get' })).rejects.toBeInstanceOf(SystemShutdownError);
  });
});

describe('asks from inside a machine (invoke troupe.ask)', () => {
  it('the reply is the output of the invoked actor', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const c = system.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 4 });
    const r = system.spawn(Relay, { name: 'r', input: { log } });
    r.send({ type: 'Relay', to: c.address });
    await settle();
    expect(log).toEqual(['reply:Count:4']);
    expect(contextOf<{ last: number }>(system, r).last).toBe(4);
  });

  it('a failed ask reaches onError with the typed error', async () => {
    const { system } = keep(testSystem());
    const log: string[] = [];
    const r = system.spawn(Relay, { name: 'r', input: { log } });
    r.send({ type: 'Relay', to: 'n1/ghost' });
    await settle();
    expect(log).toEqual(['error:NoRespondersError']);
  });

  it('an invoked ask times out on the system clock', async () => {
    const { system, clock } = keep(testSystem());
    const log: string[] = [];
    system.spawn(Silent, { name: 's' });
    const r = system.spawn(Relay, { name: 'r', input: { log } });
    r.send({ type: 'Relay', to: 'n1/s' });
    await settle();
    clock.increment(999);
    await settle();
    expect(log).toEqual([]);
    clock.increment(1);
    await settle();
    expect(log).toEqual(['error:AskTimeoutError']);
  });

  it('the machine can also run alone with its own troupe.ask (machines stay pure)', async () => {
    const { createActor, fromPromise } = await import('xstate');
    const seen: unknown[] = [];
    const machine = (await import('./fixtures/actors.ts')).relayMachine.provide({
      actors: { 'troupe.ask': fromPromise(async ({ input }) => { seen.push(input); return { type: 'Count', n: 9 }; }) },
    } as never);
    const actor = createActor(machine, { input: { log: [] } });
    actor.start();
    actor.send({ type: 'Relay', to: 'x/y' });
    await settle();
    expect(seen).toEqual([{ to: 'x/y', message: { type: 'Get' }, timeoutMs: 1_000 }]);
    expect((actor.getSnapshot().context as { last: number }).last).toBe(9);
    actor.stop();
  });
});

describe('two nodes on one MemoryBus', () => {
  const nodes = (opts?: Parameters<typeof twoNodes>[0]) => {
    const n = twoNodes(opts);
    toShutDown.push(n.s1, n.s2);
    return n;
  };

  it('remote tell', async () => {
    const { s1, s2 } = nodes();
    s1.spawn(Counter, { name: 'local' }); // n1's codec learns the counter messages
    const c = s2.spawn(Counter, { name: 'c' });
    await Promise.all([s1.ready(), s2.ready()]);
    const remote = s1.ref(c.address);
    remote.send({ type: 'Inc', by: 3 });
    s1.deliver('n2/c', { type: 'Inc', by: 4 });
    await settle();
    expect(contextOf<{ n: number }>(s2, c).n).toBe(7);
  });

  it('remote ask', async () => {
    const { s1, s2 } = nodes();
    s1.spawn(Counter, { name: 'local' }); // n1's codec learns the counter messages
    const c = s2.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 5 });
    const reply = await s1.ask<Count>('n2/c', { type: 'Get' });
    expect(reply).toMatchObject({ type: 'Count', n: 5 });
  });

  it('a node that hosts no actor of that schema can still ask a remote actor', async () => {
    // A client-only node (no local actor declares Get/Count) learns the schema from the
    // `messages` option; without it the ask fails with UnknownMessageTypeError.
    const bare = nodes();
    await expect(bare.s1.ask('n2/c', { type: 'Get' })).rejects.toBeInstanceOf(UnknownMessageTypeError);
    const { s1, s2 } = nodes({ n1: { messages: [counterMessages] } });
    const c = s2.spawn(Counter, { name: 'c' });
    c.send({ type: 'Inc', by: 5 });
    const reply = await s1.ask<Count>('n2/c', { type: 'Get' });
    expect(reply).toMatchObject({ type: 'Count', n: 5 });
  });

  it('the sender of a remote tell is its actor address (replies by tell come back)', async () => {
    const { s1, s2 } = nodes();
    const log: string[] = [];
    s2.spawn(Counter, { name: 'c' });
    const r = s1.spawn(Relay, { name: 'r', input: { log } });
    s2.ask('n2/c', { type: 'Inc', by: 1 }).catch(() => undefined); // not a Get: no reply, just bump
    r.send({ type: 'Relay', to: 'n2/c' });
    await settle();
    expect(log).toEqual(['reply:Count:1']);
  });

  it('remote ask to a missing actor fails with NoRespondersError', async () => {
    const { s1, s2 } = nodes();
    s1.spawn(Counter, { name: 'local' });
    s2.spawn(Counter, { name: 'other' });
    const err = await s1.ask('n2/ghost', { type: 'Get' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRespondersError);
    expect((err as NoRespondersError).target).toBe('n2/ghost');
    expect(s2.deadLetters.countsByReason()['no-actor']).toBe(1);
  });

  it('remote ask to a missing actor is NoRespondersError even when that node does not know the message type', async () => {
    // n2 hosts no counter, so its codec does not know fixtures.counter.Get; the target does not
    // exist either, and "nobody there" is the answer the asker can act on.
    const { s1, s2 } = nodes();
    s1.spawn(Counter, { name: 'local' });
    const err = await s1.ask('n2/ghost', { type: 'Get' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRespondersError);
    expect(s2.deadLetters.countsByReason()['no-actor']).toBe(1);
  });

  it('remote ask with a type the remote node does not know fails with UnknownMessageTypeError', async () => {
    const { s1, s2 } = nodes();
    s2.spawn(Counter, { name: 'c' });
    s1.spawn(Shapes, { name: 'shapes' }); // n1 knows fixtures.kitchen; n2 does not
    const err = await s1.ask('n2/c', { type: 'Point', x: 1, y: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownMessageTypeError);
    expect(s2.deadLetters.countsByReason()['unknown-type']).toBe(1);
  });

  it('remote ask with a type the remote node knows but the actor does not accept fails with UnknownMessageTypeError', async () => {
    const { s1, s2 } = nodes();
    s2.spawn(Counter, { name: 'c' });
    s2.spawn(Shapes, { name: 'shapes' }); // n2 knows fixtures.kitchen, but n2/c does not accept it
    s1.spawn(Shapes, { name: 'shapes' });
    const err = await s1.ask('n2/c', { type: 'Point', x: 1, y: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownMessageTypeError);
  });

  it('ask to a node that does not exist fails with NoRespondersError without waiting for the timeout', async () => {
    const { s1 } = nodes();
    s1.spawn(Counter, { name: 'local' }); // registers the message types with n1's codec
    const p = track(s1.ask('n9/c', { type: 'Get' }, { timeoutMs: 60_000 }));
    await settle();
    expect(p.state()).toBe('rejected');
    expect(p.error()).toBeInstanceOf(NoRespondersError);
  });

  it('remote ask times out after timeoutMs of simulated time', async () => {
    const { s1, s2, clock } = nodes();
    s2.spawn(Silent, { name: 's' });
    s1.spawn(Counter, { name: 'local' });
    const p = track(s1.ask('n2/s', { type: 'Get' }, { timeoutMs: 500 }));
    await settle();
    clock.increment(499);
    await settle();
    expect(p.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(p.error()).toBeInstanceOf(AskTimeoutError);
  });

  it('a remote tell of a message type the sender does not know is a dead letter on the sender', async () => {
    const { s1 } = nodes();
    s1.deliver('n2/c', { type: 'NoSuchMessage' });
    await settle();
    expect(s1.deadLetters.countsByReason()['unknown-type']).toBe(1);
  });

  it('remote death watch by an actor: Terminated stopped', async () => {
    const { s1, s2 } = nodes();
    const log: string[] = [];
    const t = s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    s2.stop(t);
    await settle();
    expect(log).toContain('Terminated:n2/t:stopped');
  });

  it('remote death watch: system.watch resolves with stopped when the remote actor stops', async () => {
    const { s1, s2 } = nodes();
    const t = s2.spawn(Counter, { name: 't' });
    const w = track(s1.watch('n2/t'));
    await settle();
    expect(w.state()).toBe('pending');
    s2.stop(t);
    await settle();
    expect(w.value()).toEqual({ type: 'Terminated', actor: 'n2/t', reason: 'stopped' });
    expect(s2.deadLetters.count).toBe(0);
  });

  it('remote death watch of a missing actor: not-found', async () => {
    const { s1 } = nodes();
    const log: string[] = [];
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/ghost' });
    await settle();
    expect(log).toContain('Terminated:n2/ghost:not-found');
  });

  it('remote death watch of a missing actor: system.watch resolves with not-found', async () => {
    const { s1 } = nodes();
    const p = track(s1.watch('n2/ghost'));
    await settle();
    expect(p.value()).toEqual({ type: 'Terminated', actor: 'n2/ghost', reason: 'not-found' });
  });

  it('remote death watch by an actor when the other system shuts down: Terminated stopped', async () => {
    const { s1, s2 } = nodes();
    const log: string[] = [];
    s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    await s2.shutdown();
    await settle();
    expect(log).toContain('Terminated:n2/t:stopped');
  });

  it('remote death watch: system.watch resolves when the other system shuts down', async () => {
    const { s1, s2 } = nodes();
    s2.spawn(Counter, { name: 't' });
    const w = track(s1.watch('n2/t'));
    await settle();
    await s2.shutdown();
    await settle();
    expect(w.state()).toBe('resolved');
    expect(w.value()?.reason).toBe('stopped');
  });

  it('node-unreachable: a watched node whose transport closes without shutdown', async () => {
    const { s1, s2, t2, clock } = nodes({ n1: { heartbeatIntervalMs: 1_000 } });
    const log: string[] = [];
    s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    const external = track(s1.watch('n2/t'));
    await settle();
    // heartbeats succeed while n2 is up
    clock.increment(1_000);
    await settle();
    expect(external.state()).toBe('pending');
    expect(log).not.toContain('Terminated:n2/t:node-unreachable');
    // n2's connection dies (no shutdown, so no Terminated is ever sent)
    await t2.close();
    await settle();
    clock.increment(999);
    await settle();
    expect(external.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(external.value()).toEqual({ type: 'Terminated', actor: 'n2/t', reason: 'node-unreachable' });
    expect(log).toContain('Terminated:n2/t:node-unreachable');
    expect(s2.actors()).toContain('n2/t'); // n2 itself did not stop its actor
  });

  it('remote unwatch: after unwatch() no Terminated arrives and heartbeats stop', async () => {
    const { s1, s2, bus, clock } = nodes();
    const log: string[] = [];
    const t = s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    w.send({ type: 'UnwatchIt', target: 'n2/t' });
    await settle();
    const before = bus.stats().published;
    clock.increment(5_000);
    await settle();
    expect(bus.stats().published).toBe(before);
    s2.stop(t);
    await settle();
    expect(log.filter((l) => l.startsWith('Terminated'))).toEqual([]);
  });

  it('heartbeats stop once the watched remote actor has terminated', async () => {
    const { s1, s2, bus, clock } = nodes();
    const log: string[] = [];
    const t = s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    s2.stop(t);
    await settle();
    expect(log).toContain('Terminated:n2/t:stopped');
    const before = bus.stats().published;
    clock.increment(5_000);
    await settle();
    expect(bus.stats().published).toBe(before);
  });

  it('a watcher that stops releases its remote watches (no heartbeats forever)', async () => {
    const { s1, s2, bus, clock } = nodes();
    s2.spawn(Counter, { name: 't' });
    const w = s1.spawn(Counter, { name: 'w' });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    s1.stop(w);
    await settle();
    const before = bus.stats().published;
    clock.increment(10_000);
    await settle();
    expect(bus.stats().published - before).toBeLessThanOrEqual(1); // at most one in-flight probe
  });

  /** n1 behind a fault wrapper (heartbeat every 1 s, 500 ms timeout, 3 misses), n2 plain, on one bus. */
  const faultyPair = () => {
    const clock = simulatedClock();
    const bus = createMemoryBus({ clock });
    const net = withFaults(bus.connect(), { clock, rng: createRng(3) });
    const s1 = createSystem({
      cluster: 'test', node: 'n1', clock, logger: silentLogger(), rng: createRng(1), transport: net,
      heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 500, missedHeartbeats: 3,
    });
    const s2 = createSystem({ cluster: 'test', node: 'n2', clock, logger: silentLogger(), rng: createRng(2), transport: bus.connect() });
    toShutDown.push(s1, s2);
    return { clock, bus, net, s1, s2 };
  };

  it('node-unreachable after missedHeartbeats probes time out (a partition, the node is alive)', async () => {
    const { clock, net, s1, s2 } = faultyPair();
    s2.spawn(Counter, { name: 't' });
    const w = track(s1.watch('n2/t'));
    await settle();
    net.partition(['troupe.test.n2']);
    // probes at 1000, 2500, 4000 each time out 500 ms later; the third miss (at 4500) is the verdict
    for (let t = 0; t < 4_499; t += 100) {
      clock.increment(t + 100 <= 4_499 ? 100 : 4_499 - t);
      await settle(3);
    }
    await settle();
    expect(clock.now()).toBe(4_499);
    expect(w.state()).toBe('pending');
    clock.increment(1);
    await settle();
    expect(w.value()).toEqual({ type: 'Terminated', actor: 'n2/t', reason: 'node-unreachable' });
  });

  it('a missed heartbeat or two, then the partition heals: the watch stays in place', async () => {
    const { clock, net, s1, s2 } = faultyPair();
    s2.spawn(Counter, { name: 't' });
    const log: string[] = [];
    const w = s1.spawn(Counter, { name: 'w', input: { log } });
    w.send({ type: 'WatchIt', target: 'n2/t' });
    await settle();
    net.partition(['troupe.test.n2']);
    for (let i = 0; i < 31; i++) {
      clock.increment(100);
      await settle(3);
    }
    net.heal();
    for (let i = 0; i < 100; i++) {
      clock.increment(100);
      await settle(3);
    }
    expect(log.filter((l) => l.startsWith('Terminated'))).toEqual([]);
    // and the watch still works
    s2.stop('n2/t');
    await settle();
    expect(log).toContain('Terminated:n2/t:stopped');
  });

  it('no heartbeats are sent when nothing remote is watched', async () => {
    const { s1, bus, clock } = nodes();
    s1.spawn(Counter, { name: 'c' });
    const before = bus.stats().published;
    clock.increment(10_000);
    await settle();
    expect(bus.stats().published).toBe(before);
  });

  it('systems on one bus are isolated by node name: same actor name on both nodes', async () => {
    const { s1, s2 } = nodes();
    const a = s1.spawn(Counter, { name: 'c' });
    const b = s2.spawn(Counter, { name: 'c' });
    a.send({ type: 'Inc', by: 1 });
    s1.deliver('n2/c', { type: 'Inc', by: 10 });
    await settle();
    expect(contextOf<{ n: number }>(s1, a).n).toBe(1);
    expect(contextOf<{ n: number }>(s2, b).n).toBe(10);
  });
});

describe('shutdown with a remote ask in flight', () => {
  it('rejects the remote ask with SystemShutdownError', async () => {
    const { s1, s2 } = twoNodes();
    toShutDown.push(s1);
    s1.spawn(Silent, { name: 's' });
    s2.spawn(Counter, { name: 'local' });
    const p = track(s2.ask('n1/s', { type: 'Get' }, { timeoutMs: 60_000 }));
    await settle();
    expect(p.state()).toBe('pending');
    await s2.shutdown();
    await settle();
    expect(p.state()).toBe('rejected');
    expect(p.error()).toBeInstanceOf(SystemShutdownError);
  });
});
