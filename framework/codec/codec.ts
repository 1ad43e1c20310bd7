/**
 * Protobuf encoding of envelopes and user messages. One codec per system (no shared registry):
 * it knows the message sets of the actors defined on that system, plus troupe's own wire types.
 */
import protobuf from 'protobufjs';
import { DecodeError, PayloadTooLargeError, UnknownMessageTypeError } from '../errors.ts';
import type { MessageObject, MessageSet } from './messages.ts';
import { messages as wireMessages } from './envelope.pb.ts';

/** Envelope kinds (the wire enum `troupe.wire.Kind`). */
export const EnvelopeKind = { User: 0, System: 1, Reply: 2, Error: 3 } as const;
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** The envelope as the runtime handles it. */
export interface WireEnvelope {
  kind: EnvelopeKind;
  /** Target address `node/path`. */
  target: string;
  /** Sender address, or '' when sent from outside an actor. */
  sender: string;
  /** Fully qualified protobuf type name of `payload`. */
  messageType: string;
  correlationId: string;
  replyTo: string;
  payload: Uint8Array;
  headers?: Record<string, string>;
}

/** Everything of an envelope but its payload (which `encode` writes from the message itself). */
export type EnvelopeHead = Omit<WireEnvelope, 'messageType' | 'payload'>;

export interface Codec {
  /**
   * Encode `message` inside an envelope, in one pass (the payload is written in place, not copied).
   * Throws `UnknownMessageTypeError`, `PayloadTooLargeError`, or `TypeError` for a field of the wrong type.
   */
  encode(head: EnvelopeHead, message: MessageObject): Uint8Array;
  /** Learn a message set; short names must be unique per system. */
  register(set: MessageSet): void;
  /** True when the short name is a registered message type. */
  knows(shortName: string): boolean;
  /** Encode a user (or wire) message; returns its fully qualified type name and bytes. */
  encodeMessage(message: MessageObject): { typeName: string; bytes: Uint8Array };
  /** Decode a payload named by its fully qualified type; throws `UnknownMessageTypeError` / `DecodeError`. */
  decodeMessage(typeName: string, bytes: Uint8Array, subject: string): MessageObject;
  encodeEnvelope(envelope: WireEnvelope): Uint8Array;
  /** Throws `DecodeError` for bytes that are not an envelope of a known version; `PayloadTooLargeError` over the limit. */
  decodeEnvelope(bytes: Uint8Array, subject: string): WireEnvelope;
  readonly maxPayloadBytes: number;
}

/** Current wire version; envelopes of another major version are rejected. */
export const WIRE_VERSION = 1;

const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true };

interface Entry { type: protobuf.Type; shortName: string; fullName: string; hasEnums: boolean }

/** True when `type` or a message nested in its fields has an enum field. */
function usesEnums(type: protobuf.Type, seen = new Set<protobuf.Type>()): boolean {
  if (seen.has(type)) return false;
  seen.add(type);
  return type.fieldsArray.some((f) => {
    f.resolve();
    if (f.resolvedType instanceof protobuf.Enum) return true;
    return f.resolvedType instanceof protobuf.Type && usesEnums(f.resolvedType, seen);
  });
}

/**
 * Enum values may be given by name (as the generated types declare them); protobuf wants numbers.
 * Returns a copy with names replaced, leaving anything unknown for `verify` to reject.
 */
function enumsToNumbers(type: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...obj };
  for (const f of type.fieldsArray) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    const rt = f.resolvedType;
    const one = (x: unknown): unknown => {
      if (rt instanceof protobuf.Enum) return typeof x === 'string' && x in rt.values ? rt.values[x] : x;
      if (rt instanceof protobuf.Type && typeof x === 'object' && x !== null) return enumsToNumbers(rt, x as Record<string, unknown>);
      return x;
    };
    if (f instanceof protobuf.MapField) out[f.name] = Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, one(x)]));
    else if (f.repeated && Array.isArray(v)) out[f.name] = v.map(one);
    else out[f.name] = one(v);
  }
  return out;
}

/** A codec that encodes and checks payloads up to `maxPayloadBytes`. */
export function createCodec(options: { maxPayloadBytes: number }): Codec {
  const byShort = new Map<string, Entry>();
  const byFull = new Map<string, Entry>();
  const { maxPayloadBytes } = options;

  const register = (set: MessageSet): void => {
    for (const [shortName, type] of set.types) {
      const fullName = type.fullName.startsWith('.') ? type.fullName.slice(1) : type.fullName;
      const existing = byShort.get(shortName);
      if (existing) {
        if (existing.fullName === fullName) continue;
        throw new Error(`message type '${shortName}' is declared by both ${existing.fullName} and ${fullName}; short names must be unique per system`);
      }
      const entry = { type, shortName, fullName, hasEnums: usesEnums(type) };
      byShort.set(shortName, entry);
      byFull.set(fullName, entry);
    }
  };
  register(wireMessages as MessageSet);
  const envelopeType = byShort.get('Envelope')!.type;

  const checked = (message: MessageObject): { entry: Entry; obj: Record<string, unknown> } => {
    const entry = byShort.get(message.type);
    if (!entry) throw new UnknownMessageTypeError(String(message.type));
    const obj = entry.hasEnums ? enumsToNumbers(entry.type, message) : (message as Record<string, unknown>);
    // protobufjs would silently zero or coerce a field of the wrong type; refuse instead
    const problem = entry.type.verify(obj);
    if (problem !== null) throw new TypeError(`cannot encode ${entry.fullName}: ${problem}`);
    return { entry, obj };
  };

  return {
    maxPayloadBytes,
    register,
    encode(head, message) {
      const { entry, obj } = checked(message);
      // Field numbers and wire types of troupe.wire.Envelope (see envelope.proto).
      const w = protobuf.Writer.create();
      w.uint32(8).uint32(WIRE_VERSION);
      if (head.kind !== 0) w.uint32(16).uint32(head.kind);
      if (head.target) w.uint32(26).string(head.target);
      if (head.sender) w.uint32(34).string(head.sender);
      w.uint32(42).string(entry.fullName);
      if (head.correlationId) w.uint32(50).string(head.correlationId);
      if (head.replyTo) w.uint32(58).string(head.replyTo);
      w.uint32(66).fork();
      entry.type.encode(obj, w);
      w.ldelim();
      if (head.headers) {
        for (const [k, v] of Object.entries(head.headers)) w.uint32(74).fork().uint32(10).string(k).uint32(18).string(v).ldelim();
      }
      const bytes = w.finish();
      if (bytes.length > maxPayloadBytes) throw new PayloadTooLargeError(bytes.length, maxPayloadBytes, head.target || undefined);
      return bytes;
    },
    knows: (shortName) => byShort.has(shortName),
    encodeMessage(message) {
      const { entry, obj } = checked(message);
      let bytes: Uint8Array;
      try {
        bytes = entry.type.encode(obj).finish();
      } catch (cause) {
        throw new TypeError(`cannot encode ${entry.fullName}: ${(cause as Error).message}`, { cause });
      }
      if (bytes.length > maxPayloadBytes) throw new PayloadTooLargeError(bytes.length, maxPayloadBytes);
      return { typeName: entry.fullName, bytes };
    },
    decodeMessage(typeName, bytes, subject) {
      const entry = byFull.get(typeName);
      if (!entry) throw new UnknownMessageTypeError(typeName);
      let obj: Record<string, unknown>;
      try {
        obj = entry.type.toObject(entry.type.decode(bytes), TO_OBJECT);
      } catch (cause) {
        throw new DecodeError(subject, `payload is not a valid ${typeName}: ${(cause as Error).message}`, { cause });
      }
      obj['type'] = entry.shortName;
      return obj as unknown as MessageObject;
    },
    encodeEnvelope(e) {
      const bytes = envelopeType
        .encode({
          version: WIRE_VERSION, kind: e.kind, target: e.target, sender: e.sender, messageType: e.messageType,
          correlationId: e.correlationId, replyTo: e.replyTo, payload: e.payload, headers: e.headers,
        })
        .finish();
      if (bytes.length > maxPayloadBytes) throw new PayloadTooLargeError(bytes.length, maxPayloadBytes, e.target);
      return bytes;
    },
    decodeEnvelope(bytes, subject) {
      if (bytes.length > maxPayloadBytes) throw new PayloadTooLargeError(bytes.length, maxPayloadBytes, subject);
      let m: Record<string, unknown>;
      try {
        m = envelopeType.decode(bytes) as unknown as Record<string, unknown>;
      } catch (cause) {
        throw new DecodeError(subject, `not a troupe envelope: ${(cause as Error).message}`, { cause });
      }
      if (m['version'] !== WIRE_VERSION) {
        throw new DecodeError(subject, `unsupported envelope version ${String(m['version'])} (expected ${WIRE_VERSION})`);
      }
      const kind = m['kind'] as number;
      if (kind !== 0 && kind !== 1 && kind !== 2 && kind !== 3) throw new DecodeError(subject, `unknown envelope kind ${kind}`);
      const headers = m['headers'] as Record<string, string> | undefined;
      return {
        kind,
        target: m['target'] as string,
        sender: m['sender'] as string,
        messageType: m['messageType'] as string,
        correlationId: m['correlationId'] as string,
        replyTo: m['replyTo'] as string,
        payload: m['payload'] as Uint8Array,
        ...(headers && Object.keys(headers).length > 0 ? { headers } : {}),
      };
    },
  };
}
