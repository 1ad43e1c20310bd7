/**
 * Inspection events on the wire: encoding and validation, and the publisher between a system's
 * `inspect` sink and the transport (graphs once per type, timers, redaction, rate limits,
 * coalescing, overflow, sync, sends). MemoryBus + simulated clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { defineActor } from '../../framework/actor.ts';
import { simulatedClock } from '../../framework/clock.ts';
import {
  decodeBatch, decodeControl, encodeBatch, encodeControl, parseWireEvent, type WireEvent,
} from '../../framework/inspector/events.ts';
import { createInspectionPublisher, type InspectionPublisherOptions } from '../../framework/inspector/publisher.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import { inspectionControlSubject, inspectionWildcard } from '../../framework/transport/subjects.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { messages, type Message } from './fixtures/counter.pb.ts';

/** idle ──Inc──▶ busy ──after 100 ms──▶ idle; Note counts without changing state; context has a secret. */
const lampMachine = setup({ types: { context: {} as { notes: number; card: { number: string; holder: string } }, events: {} as Message } }).createMachine({
  id: 'lamp',
  context: { notes: 0, card: { number: '4111-1111', holder: 'Ada' } },
  initial: 'idle',
  on: { Note: { actions: assign({ notes: ({ context }) => context.notes + 1 }) } },
  states: { idle: { on: { Inc: 'busy' } }, busy: { after: { 100: 'idle' } } },
});
const Lamp = defineActor({ type: 'lamp', machine: lampMachine, messages });

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function rig(opts: Partial<InspectionPublisherOptions> = {}): {
  system: ActorSystem; clock: ReturnType<typeof simulatedClock>; received: WireEvent[]; publisher: ReturnType<typeof createInspectionPublisher>;
  inspector: ReturnType<ReturnType<typeof createMemoryBus>['connect']>;
} {
  const clock = simulatedClock(1_000);
  const bus = createMemoryBus({ clock });
  const inspector = bus.connect({ name: 'inspector' });
  const received: WireEvent[] = [];
  inspector.subscribe(inspectionWildcard('t'), (m) => received.push(...decodeBatch(m.data).events));
  const publisher = createInspectionPublisher({ transport: bus.connect({ name: 'pub' }), cluster: 't', clock, heartbeatIntervalMs: 0, ...opts });
  const system = createSystem({ cluster: 't', node: 'n1', clock, logger: silentLogger(), transport: bus.connect({ name: 'n1' }), inspect: publisher.sink });
  cleanup.push(() => system.shutdown(), () => publisher.close(), () => inspector.close());
  return { system, clock, received, publisher, inspector };
}
const of = <K extends WireEvent['kind']>(events: WireEvent[], kind: K, actor?: string): Extract<WireEvent, { kind: K }>[] =>
  events.filter((e): e is Extract<WireEvent, { kind: K }> => e.kind === kind && (actor === undefined || (e as { actor?: string }).actor === actor));

describe('wire events', () => {
  const good = { v: 1, at: 5, node: 'n1', kind: 'actor.stopped', actor: 'n1/a', reason: 'stopped' };

  it('round-trips a batch', () => {
    const out = decodeBatch(encodeBatch({ v: 1, node: 'n1', events: [good as WireEvent] }));
    expect(out).toEqual({ events: [good], malformed: 0 });
  });

  it('counts and drops malformed events, keeps the good ones', () => {
    const batch = { v: 1, node: 'n1', events: [good, { ...good, v: 2 }, { ...good, kind: 'actor.exploded' }, { ...good, actor: 7 }, null, 'x', { ...good, at: 'soon' }] };
    const out = decodeBatch(new TextEncoder().encode(JSON.stringify(batch)));
    expect(out.events).toEqual([good]);
    expect(out.malformed).toBe(6);
    expect(decodeBatch(new Uint8Array([0xff, 0x00, 0x7b]))).toEqual({ events: [], malformed: 1 });
    expect(decodeBatch(new TextEncoder().encode('{"v":9,"events":[]}'))).toEqual({ events: [], malformed: 1 });
    expect(parseWireEvent({ ...good, kind: 'actor.spawned', actorType: 'x', machine: { not: 'a graph' } })).toBeUndefined();
    expect(parseWireEvent({ v: 1, at: 1, node: 'n', kind: 'message.sent', to: 'n/a', messageType: 'Ping', ask: 'yes' })).toBeUndefined();
  });

  it('control messages: sync, send; anything else is rejected', () => {
    expect(decodeControl(encodeControl({ v: 1, type: 'sync' }))).toEqual({ v: 1, type: 'sync' });
    const send = { v: 1 as const, type: 'send' as const, actor: 'n1/a', event: { type: 'Inc', by: 1 } };
    expect(decodeControl(encodeControl(send))).toEqual(send);
    expect(decodeControl(new TextEncoder().encode('{"v":1,"type":"send","actor":"n1/a","event":{}}'))).toBeUndefined();
    expect(decodeControl(new TextEncoder().encode('nope'))).toBeUndefined();
  });
});

describe('publisher', () => {
  it('sends the machine graph once per actor type, with parent and key on every spawn', async () => {
    const { system, received, publisher } = rig();
    system.spawn(Lamp, { name: 'a' });
    system.spawn(Lamp, { name: 'b' });
    publisher.flush();
    await waitFor(() => of(received, 'actor.spawned').length === 2);
    const [a, b] = of(received, 'actor.spawned');
    expect(a!.machineKey).toBe('lamp:lamp');
    expect(a!.machine?.root.children.map((c) => c.key)).toEqual(['idle', 'busy']);
    expect(b!.machineKey).toBe('lamp:lamp');
    expect(b!.machine).toBeUndefined();
    expect(of(received, 'actor.snapshot', 'n1/a')[0]).toMatchObject({ value: 'idle', status: 'active' });
  });

  it('redacts context keys and applies sanitize; running after timers ride on the snapshot', async () => {
    const { system, received, publisher, clock } = rig({
      redactKeys: ['number'],
      sanitize: (context, target) => ({ ...(context as object), sanitizedFor: target.actorType }),
    });
    const a = system.spawn(Lamp, { name: 'a' });
    a.send({ type: 'Inc', by: 1 });
    await waitFor(() => system.snapshotOf(a)?.value === 'busy');
    publisher.flush();
    await waitFor(() => of(received, 'actor.snapshot', 'n1/a').some((s) => s.value === 'busy'));
    const busy = of(received, 'actor.snapshot', 'n1/a').find((s) => s.value === 'busy')!;
    expect(busy.context).toEqual({ notes: 0, card: { number: '[redacted]', holder: 'Ada' }, sanitizedFor: 'lamp' });
    expect(busy.timers).toEqual([{ transition: 'busy#0', delayMs: 100, startedAt: clock.now() }]);
    clock.increment(100);
    publisher.flush();
    await waitFor(() => of(received, 'actor.snapshot', 'n1/a').at(-1)?.value === 'idle');
    expect(of(received, 'actor.snapshot', 'n1/a').at(-1)!.timers).toBeUndefined();
  });

  it('carries what JSON cannot as short stand-ins, and truncates an oversize context', async () => {
    const odd = setup({ types: { events: {} as Message } }).createMachine({
      id: 'odd',
      context: { bytes: new Uint8Array(64), big: 12n, map: new Map([['k', 1]]), set: new Set([1, 2]), fn: () => 1, huge: 'x'.repeat(2_000) },
    });
    const Odd = defineActor({ type: 'odd', machine: odd, messages });
    const { system, received, publisher } = rig({ maxEventBytes: 1_000 });
    const small = setup({ types: { events: {} as Message } }).createMachine({
      id: 'small', context: { bytes: new Uint8Array(3), big: 12n, map: new Map([['k', 1]]), set: new Set([1, 2]), fn: () => 1 },
    });
    system.spawn(defineActor({ type: 'small', machine: small, messages }), { name: 's' });
    system.spawn(Odd, { name: 'o' });
    publisher.flush();
    await waitFor(() => of(received, 'actor.snapshot', 'n1/o').length === 1 && of(received, 'actor.snapshot', 'n1/s').length === 1);
    expect(of(received, 'actor.snapshot', 'n1/s')[0]!.context).toEqual({ bytes: '[3 bytes]', big: '12n', map: { k: 1 }, set: [1, 2] });
    expect(of(received, 'actor.snapshot', 'n1/o')[0]!.context).toMatchObject({ truncated: true });
  });

  it('rate-limits chatty events per actor, never state changes, and publishes the latest snapshot', async () => {
    const { system, received, publisher } = rig({ ratePerActorPerSec: 10 });
    const a = system.spawn(Lamp, { name: 'a' });
    for (let i = 0; i < 200; i++) a.send({ type: 'Note', text: String(i) });
    a.send({ type: 'Inc', by: 1 });
    await waitFor(() => system.snapshotOf(a)?.value === 'busy');
    publisher.flush();
    await waitFor(() => of(received, 'actor.snapshot', 'n1/a').some((s) => s.value === 'busy'));
    // each kind of chatty event has its own budget per actor: received events, messages, snapshots
    expect(of(received, 'actor.event', 'n1/a').length).toBeLessThanOrEqual(10);
    expect(of(received, 'message.sent').length).toBeLessThanOrEqual(10);
    expect(publisher.stats().droppedRate).toBeGreaterThan(300);
    const snaps = of(received, 'actor.snapshot', 'n1/a');
    expect(snaps.some((s) => s.value === 'busy')).toBe(true);
    expect((snaps.at(-1)!.context as { notes: number }).notes).toBe(200);
  });

  it('samples chatty events', async () => {
    const { system, publisher } = rig({ sampleRate: 0.25, ratePerActorPerSec: 100_000 });
    const a = system.spawn(Lamp, { name: 'a' });
    for (let i = 0; i < 400; i++) a.send({ type: 'Note', text: String(i) });
    await waitFor(() => (system.snapshotOf(a)?.context as { notes: number }).notes === 400);
    const dropped = publisher.stats().droppedSampled;
    expect(dropped).toBeGreaterThan(400 * 3 * 0.6);
    expect(dropped).toBeLessThan(400 * 3 * 0.9);
  });

  it('a full buffer drops and counts; nothing is published beyond it', async () => {
    const { system, publisher, received } = rig({ bufferSize: 5, batchSize: 1_000, flushIntervalMs: 60_000 });
    for (let i = 0; i < 8; i++) system.spawn(Lamp, { name: `l${i}` });
    expect(publisher.stats().droppedOverflow).toBeGreaterThanOrEqual(8 * 2 - 5);
    publisher.flush();
    await waitFor(() => received.length === 5);
    expect(publisher.stats().published).toBe(5);
  });

  it('answers a sync request with every live actor, its graph and its last snapshot', async () => {
    const { system, publisher, received, inspector } = rig();
    system.spawn(Lamp, { name: 'a' });
    system.stop(system.spawn(Lamp, { name: 'gone' }));
    publisher.flush();
    await waitFor(() => of(received, 'actor.stopped').length === 1);
    received.length = 0;
    inspector.publish(inspectionControlSubject('t'), encodeControl({ v: 1, type: 'sync' }));
    await waitFor(() => of(received, 'actor.snapshot', 'n1/a').length === 1, { message: () => JSON.stringify(received) });
    expect(of(received, 'actor.spawned').map((e) => [e.actor, e.machine?.id])).toEqual([['n1/a', 'lamp']]);
    expect(of(received, 'actor.snapshot', 'n1/a')[0]).toMatchObject({ value: 'idle' });
  });

  it('delivers events from an inspector only to systems that accept sends', async () => {
    const { system, publisher, inspector, received } = rig();
    const a = system.spawn(Lamp, { name: 'a' });
    const control = (m: Parameters<typeof encodeControl>[0]): void => inspector.publish(inspectionControlSubject('t'), encodeControl(m));
    publisher.flush();
    await waitFor(() => of(received, 'actor.spawned', 'n1/a').length === 1);
    received.length = 0;
    control({ v: 1, type: 'send', actor: 'n1/a', event: { type: 'Inc', by: 1 } });
    // control messages are handled in order: once the sync after it is answered, the send was seen
    control({ v: 1, type: 'sync' });
    await waitFor(() => of(received, 'actor.spawned', 'n1/a').length === 1);
    expect(system.snapshotOf(a)?.value).toBe('idle');
    const undo = publisher.acceptSends(system);
    control({ v: 1, type: 'send', actor: 'n1/a', event: { type: 'Inc', by: 1 } });
    await waitFor(() => system.snapshotOf(a)?.value === 'busy');
    undo();
  });

  it('keeps no live actor after the system shuts down and never throws into it once closed', async () => {
    const { system, publisher } = rig();
    system.spawn(Lamp, { name: 'a' });
    publisher.close();
    expect(() => system.spawn(Lamp, { name: 'b' })).not.toThrow();
    expect(() => publisher.flush()).not.toThrow();
  });
});
