/**
 * Bad input never kills a node: a hostile peer on the shared MemoryBus publishes garbage, unknown
 * types, wrong versions and oversize payloads; each becomes a counted dead letter (or an error
 * reply to a request), and the node keeps working.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCodec, EnvelopeKind, WIRE_VERSION, type Codec, type WireEnvelope } from '../../framework/codec/codec.ts';
import { messages as wire } from '../../framework/codec/envelope.pb.ts';
import type { MessageObject } from '../../framework/codec/messages.ts';
import { ActorFailedError, ErrorCode, NoRespondersError } from '../../framework/errors.ts';
import type { ActorSystem } from '../../framework/system.ts';
import type { Transport } from '../../framework/transport/transport.ts';
import { Counter, settle, track, twoNodes } from './fixtures/actors.ts';
import { messages as counterMessages, type Count } from './fixtures/counter.pb.ts';

const SUBJECT = 'troupe.test.n1.c';
const garbage = (): Uint8Array => new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07, 0x00, 0x99]);

let s1: ActorSystem;
let s2: ActorSystem;
let peer: Transport;
let codec: Codec;
let problems: unknown[];
const onProblem = (e: unknown): void => void problems.push(e);

/** Build an envelope the way a peer would, with every field defaulted. */
const envelope = (e: Partial<WireEnvelope>): Uint8Array =>
  codec.encodeEnvelope({ kind: EnvelopeKind.User, target: 'n1/c', sender: '', messageType: '', correlationId: '', replyTo: '', payload: new Uint8Array(), ...e });

const encodeUser = (message: MessageObject, target = 'n1/c'): Uint8Array => {
  const { typeName, bytes } = codec.encodeMessage(message);
  return envelope({ target, messageType: typeName, payload: bytes });
};

/** Decode an error reply the way the asker does. */
const errorReplyOf = (data: Uint8Array): { kind: number; code: string } => {
  const env = codec.decodeEnvelope(data, 'reply');
  const body = codec.decodeMessage(env.messageType, env.payload, 'reply') as unknown as { code: string };
  return { kind: env.kind, code: body.code };
};

const alive = async (): Promise<void> => {
  // the node still processes mail: a tell from the other node, then an ask
  s2.deliver('n1/c', { type: 'Inc', by: 1 });
  await settle();
  const before = (s1.snapshotOf('n1/c')?.context as { n: number }).n;
  expect(before).toBeGreaterThanOrEqual(1);
  expect((await s2.ask<Count>('n1/c', { type: 'Get' })).n).toBe(before);
};

beforeEach(async () => {
  problems = [];
  process.on('uncaughtException', onProblem);
  process.on('unhandledRejection', onProblem);
});

afterEach(async () => {
  process.off('uncaughtException', onProblem);
  process.off('unhandledRejection', onProblem);
  await Promise.all([s1?.shutdown(), s2?.shutdown(), peer?.close()]);
  expect(problems).toEqual([]);
});

const setupNodes = (opts?: Parameters<typeof twoNodes>[0]) => {
  const n = twoNodes(opts);
  s1 = n.s1;
  s2 = n.s2;
  peer = n.bus.connect({ name: 'hostile' });
  codec = createCodec({ maxPayloadBytes: 1024 * 1024 });
  codec.register(counterMessages);
  s1.spawn(Counter, { name: 'c' });
  s2.spawn(Counter, { name: 'local' }); // n2 knows the counter messages too
  return n;
};

describe('a hostile peer on the bus', () => {
  it('garbage bytes on an actor subject: a decode dead letter, and the node keeps working', async () => {
    setupNodes();
    peer.publish(SUBJECT, garbage());
    peer.publish(SUBJECT, new Uint8Array());
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(2);
    const dl = s1.deadLetters.recent()[0]!;
    expect(dl.subject).toBe(SUBJECT);
    expect(dl.error).toBeTruthy();
    await alive();
  });

  it('garbage bytes on the node system subject: a decode dead letter', async () => {
    setupNodes();
    peer.publish('troupe.test.n1._sys', garbage());
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(1);
    await alive();
  });

  it('many garbage messages: each is counted, the log is rate-limited', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    setupNodes({ n1: { logger, deadLetterLogMax: 5, deadLetterLogWindowMs: 10_000 } });
    for (let i = 0; i < 200; i++) peer.publish(SUBJECT, garbage());
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(200);
    expect(lines.filter((l) => l.includes('dead letter')).length).toBe(5);
    await alive();
  });

  it('an envelope naming an unknown message type: an unknown-type dead letter', async () => {
    setupNodes();
    peer.publish(SUBJECT, envelope({ messageType: 'bogus.Nope', payload: new Uint8Array([8, 1]) }));
    await settle();
    expect(s1.deadLetters.countsByReason()['unknown-type']).toBe(1);
    expect(s1.deadLetters.recent()[0]).toMatchObject({ reason: 'unknown-type', target: 'n1/c', messageType: 'bogus.Nope' });
    await alive();
  });

  it('a known type with a payload that is not that type: a decode dead letter', async () => {
    setupNodes();
    peer.publish(SUBJECT, envelope({ messageType: 'fixtures.counter.Inc', payload: garbage() }));
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(1);
    await alive();
  });

  it('an envelope of another wire version: a decode dead letter', async () => {
    setupNodes();
    const Envelope = wire.types.get('Envelope')!;
    const { bytes } = codec.encodeMessage({ type: 'Inc', by: 1 } as MessageObject);
    const data = Envelope.encode({ version: WIRE_VERSION + 1, kind: 0, target: 'n1/c', messageType: 'fixtures.counter.Inc', payload: bytes }).finish();
    peer.publish(SUBJECT, data);
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(1);
    expect(s1.deadLetters.recent()[0]!.error).toMatch(/version/);
    expect((s1.snapshotOf('n1/c')?.context as { n: number }).n).toBe(0); // the Inc was not applied
    await alive();
  });

  it('an envelope with no version at all (version 0): a decode dead letter', async () => {
    setupNodes();
    const Envelope = wire.types.get('Envelope')!;
    peer.publish(SUBJECT, Envelope.encode({ kind: 0, target: 'n1/c', messageType: 'fixtures.counter.Get' }).finish());
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(1);
  });

  it('an envelope of an unknown kind: a decode dead letter', async () => {
    setupNodes();
    const Envelope = wire.types.get('Envelope')!;
    peer.publish(SUBJECT, Envelope.encode({ version: WIRE_VERSION, kind: 9, target: 'n1/c', messageType: 'fixtures.counter.Get' }).finish());
    await settle();
    expect(s1.deadLetters.countsByReason()['decode']).toBe(1);
    await alive();
  });

  it('a reply envelope on an actor subject is a dead letter, not delivered', async () => {
    setupNodes();
    const { typeName, bytes } = codec.encodeMessage({ type: 'Inc', by: 5 } as MessageObject);
    peer.publish(SUBJECT, envelope({ kind: EnvelopeKind.Reply, messageType: typeName, payload: bytes }));
    await settle();
    expect(s1.deadLetters.count).toBe(1);
    expect((s1.snapshotOf('n1/c')?.context as { n: number }).n).toBe(0);
  });

  it('an envelope whose target is another node is not delivered locally', async () => {
    setupNodes();
    peer.publish(SUBJECT, encodeUser({ type: 'Inc', by: 5 } as MessageObject, 'n2/local'));
    await settle();
    expect(s1.deadLetters.countsByReason()['no-actor']).toBe(1);
    expect((s2.snapshotOf('n2/local')?.context as { n: number }).n).toBe(0);
  });

  it('an unknown system message on the system subject: an unknown-type dead letter', async () => {
    setupNodes();
    const { typeName, bytes } = codec.encodeMessage({ type: 'Inc', by: 1 } as MessageObject);
    peer.publish('troupe.test.n1._sys', envelope({ kind: EnvelopeKind.System, target: 'n1/_sys', messageType: typeName, payload: bytes }));
    await settle();
    expect(s1.deadLetters.countsByReason()['unknown-type']).toBe(1);
    await alive();
  });

  it('a Watch naming a bogus watcher does not break the node when the target stops', async () => {
    setupNodes();
    const { typeName, bytes } = codec.encodeMessage({ type: 'Watch', watcher: 'not an address', target: 'n1/c' } as MessageObject);
    peer.publish('troupe.test.n1._sys', envelope({ kind: EnvelopeKind.System, target: 'n1/_sys', messageType: typeName, payload: bytes }));
    await settle();
    const w = s1.watch('n1/c');
    s1.stop('n1/c');
    expect((await w).reason).toBe('stopped');
    await settle();
    expect(s1.deadLetters.count).toBeGreaterThanOrEqual(1);
  });
});

describe('raw requests from a hostile peer get an error reply, not a timeout', () => {
  it('garbage → an error reply with code DECODE', async () => {
    setupNodes();
    const r = track(peer.request(SUBJECT, garbage(), { timeoutMs: 60_000 }));
    await settle();
    expect(r.state()).toBe('resolved');
    expect(errorReplyOf(r.value()!.data)).toEqual({ kind: EnvelopeKind.Error, code: ErrorCode.Decode });
  });

  it('an unknown message type → an error reply with code UNKNOWN_MESSAGE_TYPE', async () => {
    setupNodes();
    const r = track(peer.request(SUBJECT, envelope({ messageType: 'bogus.Nope' }), { timeoutMs: 60_000 }));
    await settle();
    expect(r.state()).toBe('resolved');
    expect(errorReplyOf(r.value()!.data).code).toBe(ErrorCode.UnknownMessageType);
  });

  it('a request to a missing actor → an error reply with code NO_RESPONDERS', async () => {
    setupNodes();
    const r = track(peer.request('troupe.test.n1.ghost', encodeUser({ type: 'Get' } as MessageObject, 'n1/ghost'), { timeoutMs: 60_000 }));
    await settle();
    expect(r.state()).toBe('resolved');
    expect(errorReplyOf(r.value()!.data).code).toBe(ErrorCode.NoResponders);
  });

  it('a well-formed request gets the reply', async () => {
    setupNodes();
    const r = track(peer.request(SUBJECT, encodeUser({ type: 'Get' } as MessageObject), { timeoutMs: 60_000 }));
    await settle();
    const env = codec.decodeEnvelope(r.value()!.data, 'reply');
    expect(env.kind).toBe(EnvelopeKind.Reply);
    expect(codec.decodeMessage(env.messageType, env.payload, 'reply')).toMatchObject({ type: 'Count', n: 0 });
  });
});

describe('oversize payloads', () => {
  it('a tell over maxPayloadBytes is an oversize dead letter on the sender side', async () => {
    setupNodes({ n2: { maxPayloadBytes: 1024 } });
    s2.deliver('n1/c', { type: 'Blob', text: 'x'.repeat(2_000) } as MessageObject);
    await settle();
    expect(s2.deadLetters.countsByReason()['oversize']).toBe(1);
    expect(s2.deadLetters.recent()[0]).toMatchObject({ reason: 'oversize', target: 'n1/c', messageType: 'Blob' });
    expect(s1.deadLetters.count).toBe(0);
    await alive();
  });

  it('an ask over maxPayloadBytes rejects with PayloadTooLargeError', async () => {
    setupNodes({ n2: { maxPayloadBytes: 1024 } });
    const err = await s2.ask('n1/c', { type: 'Blob', text: 'x'.repeat(2_000) } as MessageObject).catch((e: unknown) => e);
    expect((err as Error).name).toBe('PayloadTooLargeError');
  });

  it('an envelope over the receiver limit is an oversize dead letter on the receiver side', async () => {
    setupNodes({ n1: { maxPayloadBytes: 1024 } });
    s2.deliver('n1/c', { type: 'Blob', text: 'x'.repeat(2_000) } as MessageObject);
    await settle();
    expect(s1.deadLetters.countsByReason()['oversize']).toBe(1);
    await alive();
  });

  it('maxPayloadBytes above the transport limit is rejected when the system is created', async () => {
    const { createSystem } = await import('../../framework/system.ts');
    const { createMemoryBus } = await import('../../framework/transport/memory.ts');
    const bus = createMemoryBus({ maxPayloadBytes: 1024 });
    expect(() => createSystem({ node: 'n9', transport: bus.connect(), maxPayloadBytes: 4096 })).toThrow(/maxPayloadBytes/);
    await bus.close();
  });
});

describe('actor failures do not crash the process', () => {
  it('a machine action that throws, reached from a remote peer, is contained', async () => {
    setupNodes();
    peer.publish(SUBJECT, encodeUser({ type: 'Boom', why: 'remote' } as MessageObject));
    s2.deliver('n1/c', { type: 'Boom', why: 'from n2' } as MessageObject);
    await settle();
    // restarted twice by the root (default intensity is 3 within 5 s); still serving
    expect(s1.actors()).toContain('n1/c');
    await alive();
    // problems are checked in afterEach: no uncaught exception, no unhandled rejection
  });

  it('a remote ask whose handler throws fails fast with ActorFailedError; the node keeps serving', async () => {
    setupNodes();
    s1.spawn(Counter, { name: 'd' });
    const p = track(s2.ask('n1/d', { type: 'Boom', why: 'asked' } as MessageObject, { timeoutMs: 60_000 }));
    await settle();
    expect(p.state()).toBe('rejected');
    expect(p.error()).toBeInstanceOf(ActorFailedError);
    expect((p.error() as ActorFailedError).reason).toContain('boom: asked');
    await alive();
  });

  it('asking a node whose subscription is gone gives NoRespondersError quickly', async () => {
    const n = setupNodes();
    await n.t1.close();
    const p = track(s2.ask('n1/c', { type: 'Get' }, { timeoutMs: 60_000 }));
    await settle();
    expect(p.error()).toBeInstanceOf(NoRespondersError);
  });
});
