/**
 * The codec (envelopes and typed user messages) and the `.proto` → `.pb.ts` generator.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCodec, EnvelopeKind, WIRE_VERSION, type WireEnvelope } from '../../framework/codec/codec.ts';
import { messages as wire } from '../../framework/codec/envelope.pb.ts';
import { generateModule, plan, repoProtos } from '../../framework/codec/generate.ts';
import { defineMessages, type MessageObject } from '../../framework/codec/messages.ts';
import { DecodeError, PayloadTooLargeError, UnknownMessageTypeError } from '../../framework/errors.ts';
import { messages as counter } from './fixtures/counter.pb.ts';
import { messages as kitchen, type Sink } from './fixtures/kitchen.pb.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const fixtures = join(here, 'fixtures');
const MiB = 1024 * 1024;

const newCodec = (maxPayloadBytes = MiB) => {
  const codec = createCodec({ maxPayloadBytes });
  codec.register(counter);
  codec.register(kitchen);
  return codec;
};

/** Plain Uint8Array copy (decoded bytes are Buffers in Node). */
const u8 = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

// Protobuf strings are UTF-8: any sequence of Unicode code points (no lone surrogates).
const text = fc.string({ unit: 'binary', maxLength: 40 });
const headerKey = fc.string({ unit: 'binary', maxLength: 12 }).filter((k) => k !== '__proto__');

describe('envelopes', () => {
  const arbEnvelope: fc.Arbitrary<WireEnvelope> = fc.record(
    {
      kind: fc.constantFrom(EnvelopeKind.User, EnvelopeKind.System, EnvelopeKind.Reply, EnvelopeKind.Error),
      target: text,
      sender: text,
      messageType: text,
      correlationId: text,
      replyTo: text,
      payload: fc.uint8Array({ maxLength: 300 }),
      headers: fc.dictionary(headerKey, text, { maxKeys: 5 }),
    },
    { requiredKeys: ['kind', 'target', 'sender', 'messageType', 'correlationId', 'replyTo', 'payload'] },
  );

  it('round-trips any envelope (property)', () => {
    const codec = newCodec();
    fc.assert(
      fc.property(arbEnvelope, (e) => {
        const back = codec.decodeEnvelope(codec.encodeEnvelope(e), 'subj');
        expect(back.kind).toBe(e.kind);
        expect(back.target).toBe(e.target);
        expect(back.sender).toBe(e.sender);
        expect(back.messageType).toBe(e.messageType);
        expect(back.correlationId).toBe(e.correlationId);
        expect(back.replyTo).toBe(e.replyTo);
        expect(u8(back.payload)).toEqual(u8(e.payload));
        const headers = e.headers && Object.keys(e.headers).length > 0 ? { ...e.headers } : undefined;
        expect(back.headers === undefined ? undefined : { ...back.headers }).toEqual(headers);
      }),
      { numRuns: 300 },
    );
  });

  it('writes the current wire version', () => {
    const codec = newCodec();
    const bytes = codec.encodeEnvelope({ kind: 0, target: 'n1/a', sender: '', messageType: 'x', correlationId: '', replyTo: '', payload: new Uint8Array() });
    const raw = wire.types.get('Envelope')!.decode(bytes) as unknown as { version: number };
    expect(raw.version).toBe(WIRE_VERSION);
  });

  it('rejects another version, an unknown kind and garbage with DecodeError naming the subject', () => {
    const codec = newCodec();
    const Envelope = wire.types.get('Envelope')!;
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['version 2', Envelope.encode({ version: 2, kind: 0 }).finish(), /version/],
      ['version 0', Envelope.encode({ kind: 0, target: 'n1/a' }).finish(), /version/],
      ['kind 7', Envelope.encode({ version: WIRE_VERSION, kind: 7 }).finish(), /kind/],
      ['garbage', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff]), /envelope/],
    ];
    for (const [name, bytes, why] of cases) {
      let err: unknown;
      try {
        codec.decodeEnvelope(bytes, 'troupe.t.n1.a');
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).subject, name).toBe('troupe.t.n1.a');
      expect((err as DecodeError).message, name).toMatch(why);
    }
  });

  it('enforces maxPayloadBytes when encoding and decoding', () => {
    const small = newCodec(64);
    const e: WireEnvelope = { kind: 0, target: 'n1/a', sender: '', messageType: 'x', correlationId: '', replyTo: '', payload: new Uint8Array(100) };
    expect(() => small.encodeEnvelope(e)).toThrow(PayloadTooLargeError);
    const bytes = newCodec().encodeEnvelope(e);
    expect(() => small.decodeEnvelope(bytes, 's')).toThrow(PayloadTooLargeError);
    expect(() => small.encodeMessage({ type: 'Blob', text: 'x'.repeat(100) })).toThrow(PayloadTooLargeError);
  });

  it('decodeEnvelope of random bytes throws nothing but DecodeError or PayloadTooLargeError (property)', () => {
    const codec = newCodec(256);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        try {
          const e = codec.decodeEnvelope(bytes, 'fuzz');
          // when it decodes, the result is well-typed
          expect([0, 1, 2, 3]).toContain(e.kind);
          expect(typeof e.target).toBe('string');
          expect(e.payload).toBeInstanceOf(Uint8Array);
        } catch (err) {
          if (!(err instanceof DecodeError || err instanceof PayloadTooLargeError)) throw err;
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('decodeEnvelope of mutated valid envelopes throws nothing but DecodeError (property)', () => {
    const codec = newCodec();
    const base = codec.encodeEnvelope({
      kind: 0, target: 'n1/a', sender: 'n2/b', messageType: 'fixtures.counter.Inc', correlationId: 'c-1', replyTo: '_INBOX.x', payload: new Uint8Array([8, 1]), headers: { trace: 'abc' },
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const bytes = Uint8Array.from(base);
        for (const [i, v] of edits) bytes[i % bytes.length] = v;
        try {
          codec.decodeEnvelope(bytes, 'fuzz');
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('user messages', () => {
  it('round-trips a message with every field shape', () => {
    const codec = newCodec();
    const sink: Sink = {
      type: 'Sink', name: 'n', count: 3, flag: true, blob: new Uint8Array([1, 2, 3]), color: 'COLOR_UNSPECIFIED', tags: ['a', 'b'],
      scores: { x: 1, y: 2 }, corner: { x: -1, y: 5 }, nickname: 'nick', big: 2 ** 40, ratio: 0.25, path: [{ x: 1, y: 2 }, { x: 3, y: 4 }],
    };
    const { typeName, bytes } = codec.encodeMessage(sink);
    expect(typeName).toBe('fixtures.kitchen.Sink');
    const back = codec.decodeMessage(typeName, bytes, 's') as unknown as Sink;
    expect({ ...back, blob: u8(back.blob) }).toEqual({ ...sink, blob: u8(sink.blob) });
  });

  it('an enum field given by name, as the generated type declares it, survives the round trip', () => {
    // Sink.color is typed 'COLOR_UNSPECIFIED' | 'RED' | 'GREEN' and decodes to a name; encoding a
    // name must not silently turn it into the zero value (a local actor would see 'GREEN', a
    // remote one 'COLOR_UNSPECIFIED').
    const codec = newCodec();
    for (const color of ['RED', 'GREEN'] as const) {
      const { typeName, bytes } = codec.encodeMessage({ type: 'Sink', color } satisfies Partial<Sink> & { type: 'Sink' });
      expect((codec.decodeMessage(typeName, bytes, 's') as unknown as Sink).color).toBe(color);
    }
  });

  it('a field of the wrong type is refused when encoding, not silently zeroed', () => {
    const codec = newCodec();
    expect(() => codec.encodeMessage({ type: 'Inc', by: 'three' })).toThrow(TypeError);
    expect(() => codec.encodeMessage({ type: 'Note', text: 5 })).toThrow(TypeError);
  });

  it('fills proto3 defaults for absent fields, and leaves an unset optional field absent', () => {
    const codec = newCodec();
    const { typeName, bytes } = codec.encodeMessage({ type: 'Sink' });
    expect(bytes.length).toBe(0);
    const back = codec.decodeMessage(typeName, bytes, 's') as unknown as Sink;
    expect(back).toMatchObject({ type: 'Sink', name: '', count: 0, flag: false, color: 'COLOR_UNSPECIFIED', tags: [], scores: {}, big: 0, ratio: 0, path: [] });
    expect(u8(back.blob)).toEqual(new Uint8Array());
    expect('nickname' in back).toBe(false);
  });

  it('round-trips scalar messages (property)', () => {
    const codec = newCodec();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), text, (by, t) => {
        const a = codec.encodeMessage({ type: 'Inc', by });
        expect(codec.decodeMessage(a.typeName, a.bytes, 's')).toEqual({ type: 'Inc', by });
        const b = codec.encodeMessage({ type: 'Note', text: t });
        expect(codec.decodeMessage(b.typeName, b.bytes, 's')).toEqual({ type: 'Note', text: t });
      }),
    );
  });

  it('does not put the event-only fields (type, origin) on the wire', () => {
    const codec = newCodec();
    const plain = codec.encodeMessage({ type: 'Inc', by: 1 });
    const withOrigin = codec.encodeMessage({ type: 'Inc', by: 1, origin: { sender: 'n1/x', correlationId: 'c' } });
    expect(u8(withOrigin.bytes)).toEqual(u8(plain.bytes));
  });

  it('unknown types: encode and decode throw UnknownMessageTypeError', () => {
    const codec = newCodec();
    expect(() => codec.encodeMessage({ type: 'Nope' })).toThrow(UnknownMessageTypeError);
    expect(() => codec.decodeMessage('fixtures.Nope', new Uint8Array(), 's')).toThrow(UnknownMessageTypeError);
    // short names are not accepted where the full name is expected
    expect(() => codec.decodeMessage('Inc', new Uint8Array(), 's')).toThrow(UnknownMessageTypeError);
    expect(codec.knows('Inc')).toBe(true);
    expect(codec.knows('Nope')).toBe(false);
  });

  it('a fresh codec knows only troupe wire types until a set is registered (no shared registry)', () => {
    const a = createCodec({ maxPayloadBytes: MiB });
    expect(a.knows('Heartbeat')).toBe(true);
    expect(a.knows('Inc')).toBe(false);
    newCodec(); // registering on another codec changes nothing here
    expect(a.knows('Inc')).toBe(false);
  });

  it('a payload that is not the named type throws DecodeError', () => {
    const codec = newCodec();
    expect(() => codec.decodeMessage('fixtures.counter.Inc', new Uint8Array([0xff, 0xff, 0xff]), 'subj')).toThrow(DecodeError);
  });

  it('decodeMessage of random bytes throws nothing but DecodeError (property)', () => {
    const codec = newCodec();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom('fixtures.kitchen.Sink', 'fixtures.counter.Inc', 'troupe.wire.ErrorReply'), (bytes, type) => {
        try {
          codec.decodeMessage(type, bytes, 'fuzz');
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it('registering two sets with the same short name but different packages throws', () => {
    const codec = newCodec();
    const clash = defineMessages<MessageObject>({ nested: { other: { nested: { Inc: { fields: { by: { type: 'uint32', id: 1 } } } } } } });
    expect(() => codec.register(clash)).toThrow(/Inc/);
    // registering the same set twice is fine
    expect(() => codec.register(counter)).not.toThrow();
  });

  it('a set may not declare one short name twice', () => {
    expect(() =>
      defineMessages({ nested: { a: { nested: { X: { fields: {} } } }, b: { nested: { X: { fields: {} } } } } }),
    ).toThrow(/twice/);
  });
});

describe('the generator', () => {
  const messagesModule = join(repoRoot, 'framework', 'codec', 'messages.ts');

  it('emits a type per message with the short name as `type`, enums, and the Message union', () => {
    const out = generateModule(join(fixtures, 'kitchen.proto'), '../../../framework/codec/messages.ts');
    expect(out).toContain("import { defineMessages } from '../../../framework/codec/messages.ts';");
    expect(out).toMatch(/export (interface|type) Sink\b/);
    expect(out).toMatch(/export (interface|type) Point\b/);
    expect(out).toContain("readonly type: 'Sink';");
    expect(out).toContain("export type Color = 'COLOR_UNSPECIFIED' | 'RED' | 'GREEN';");
    expect(out).toContain('  name: string;');
    expect(out).toContain('  count: number;');
    expect(out).toContain('  flag: boolean;');
    expect(out).toContain('  blob: Uint8Array;');
    expect(out).toContain('  tags: Array<string>;');
    expect(out).toContain('  scores: Record<string, number>;');
    expect(out).toContain('  big: number;');
    expect(out).toContain('  nickname?: string;');
    expect(out).toContain("  path: Array<Omit<Point, 'type'>>;");
    expect(out).toContain('export type Message = Point | Sink;');
    expect(out).toContain('export const messages = defineMessages<Message>(');
  });

  it('declares a singular message-typed field as possibly absent, since it decodes to null when unset', () => {
    // proto3 message fields have presence: an unset `corner` decodes to null, so a non-optional
    // `corner: Omit<Point, 'type'>` would let `event.corner.x` type-check and then crash.
    const codec = newCodec();
    const back = codec.decodeMessage('fixtures.kitchen.Sink', new Uint8Array(), 's') as unknown as Record<string, unknown>;
    const unset = back['corner'];
    expect(unset === null || unset === undefined).toBe(true);
    const out = generateModule(join(fixtures, 'kitchen.proto'), './messages.ts');
    const line = out.split('\n').find((l) => l.trimStart().startsWith('corner'));
    expect(line).toBeDefined();
    expect(/corner\?:|\| null|\| undefined/.test(line!)).toBe(true);
  });

  it('the generated message set matches the schema (defineMessages over the emitted descriptor)', () => {
    expect([...kitchen.types.keys()].sort()).toEqual(['Point', 'Sink']);
    expect(kitchen.types.get('Sink')!.fullName).toBe('.fixtures.kitchen.Sink');
    expect([...counter.types.keys()]).toEqual(['Inc', 'Get', 'Count', 'Boom', 'Note', 'WatchIt', 'UnwatchIt', 'Relay', 'Finish', 'Blob']);
  });

  it('rejects a field named `type` (it names the event), naming the field and message', () => {
    expect(() => generateModule(join(fixtures, 'reserved-type-field.proto.txt'), './messages.ts')).toThrow(/'type'.*Shape|Shape.*'type'/);
  });

  it('plan() puts X.pb.ts beside X.proto with a relative codec import', () => {
    const [entry] = plan([join(fixtures, 'counter.proto')], messagesModule);
    expect(entry!.out).toBe(join(fixtures, 'counter.pb.ts'));
    expect(entry!.text).toContain("from '../../../framework/codec/messages.ts'");
  });

  it('repoProtos finds the protos of the repo, including the framework envelope and these fixtures', () => {
    const protos = repoProtos(repoRoot).map((p) => relative(repoRoot, p));
    expect(protos).toContain(join('framework', 'codec', 'envelope.proto'));
    expect(protos).toContain(join('test', 'unit', 'fixtures', 'counter.proto'));
    expect(protos.some((p) => p.includes('node_modules'))).toBe(false);
    expect(protos.every((p) => p.endsWith('.proto'))).toBe(true);
  });

  it('--check semantics: every committed .pb.ts is up to date with its .proto', () => {
    const stale: string[] = [];
    for (const { out, text } of plan(repoProtos(repoRoot), messagesModule)) {
      const current = existsSync(out) ? readFileSync(out, 'utf8') : '<missing>';
      if (current !== text) stale.push(relative(repoRoot, out));
    }
    expect(stale, 'run `npm run proto`').toEqual([]);
  });
});
