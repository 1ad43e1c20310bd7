/**
 * Inspection events: what a running system tells an inspector. Versioned (`v`), plain data.
 * Produced only when the system has an `inspect` sink; when it has none, nothing is built.
 *
 * Two forms: `InspectionEvent` is what the runtime hands its sink (in process; `actor.spawned`
 * carries the machine object itself); `WireEvent` is what a publisher sends over the transport
 * (JSON; the machine as a `ChartGraph`, sent once per actor type; contexts sanitized).
 */
import type { ChartGraph } from './graph.ts';

export const INSPECTION_VERSION = 1;

interface Base {
  readonly v: typeof INSPECTION_VERSION;
  /** Clock time (ms) on the producing node. */
  readonly at: number;
  readonly node: string;
}

export type InspectionEvent = Base &
  (
    /** `machine` is the XState machine (or actor logic) the actor runs, as an object. */
    | { readonly kind: 'actor.spawned'; readonly actor: string; readonly actorType: string; readonly parent?: string; readonly machine: unknown }
    | { readonly kind: 'actor.stopped'; readonly actor: string; readonly reason: string }
    | { readonly kind: 'actor.snapshot'; readonly actor: string; readonly value: unknown; readonly context: unknown; readonly status: string }
    | { readonly kind: 'actor.event'; readonly actor: string; readonly event: unknown }
    | { readonly kind: 'actor.failed'; readonly actor: string; readonly error: string }
    | { readonly kind: 'supervision.directive'; readonly supervisor: string; readonly child: string; readonly directive: string; readonly reason: string; readonly delayMs: number }
    /** A tell (`ask: false`), an ask (`ask: true`) or the reply to an ask (`reply: true`). `from` is absent outside any actor. */
    | { readonly kind: 'message.sent'; readonly from?: string; readonly to: string; readonly messageType: string; readonly ask: boolean; readonly reply?: boolean }
    | { readonly kind: 'message.dead'; readonly to?: string; readonly from?: string; readonly reason: string; readonly messageType?: string }
  );

/** An inspection event before the producer stamps `v`, `at` and `node`. */
export type InspectionPayload = InspectionEvent extends infer E ? (E extends unknown ? Omit<E, 'v' | 'at' | 'node'> : never) : never;

/** Where inspection events go. Must not throw; must be cheap (buffer, don't block). */
export type InspectionSink = (event: InspectionEvent) => void;

/** An `after` timer running in an active state: fires at `startedAt + delayMs` unless the state is left. */
export interface RunningTimer {
  /** Transition id in the actor's `ChartGraph`. */
  readonly transition: string;
  readonly delayMs: number;
  /** Clock time (ms) the state was entered. */
  readonly startedAt: number;
}

type WireOf<E> = E extends { kind: 'actor.spawned' }
  ? Omit<E, 'machine'> & {
    /** Key of the actor's graph (`actorType:machineId`); the graph itself rides along the first time a publisher sees that key. */
    readonly machineKey?: string;
    readonly machine?: ChartGraph;
  }
  : E extends { kind: 'actor.snapshot' }
    ? E & { readonly timers?: readonly RunningTimer[] }
    : E;

/** An inspection event as sent on the wire. */
export type WireEvent =
  | WireOf<InspectionEvent>
  /** A publisher's periodic sign of life, with its counters. */
  | (Base & { readonly kind: 'node.heartbeat'; readonly actors: number; readonly stats: PublisherStats });

/** Counters of a publisher (what it dropped, and why). */
export interface PublisherStats {
  readonly published: number;
  readonly batches: number;
  /** Dropped because the buffer was full. */
  readonly droppedOverflow: number;
  /** Dropped by the per-actor rate limit. */
  readonly droppedRate: number;
  /** Dropped by sampling. */
  readonly droppedSampled: number;
  /** Lost because the transport refused the batch (closed, oversize). */
  readonly droppedTransport: number;
}

/** One transport message: a batch of events from one node. */
export interface WireBatch {
  readonly v: typeof INSPECTION_VERSION;
  readonly node: string;
  readonly events: readonly WireEvent[];
}

/** Control messages an inspector sends to publishers. */
export type ControlMessage =
  | { readonly v: typeof INSPECTION_VERSION; readonly type: 'sync' }
  | { readonly v: typeof INSPECTION_VERSION; readonly type: 'send'; readonly actor: string; readonly event: { readonly type: string } & Record<string, unknown> };

const KINDS = new Set([
  'actor.spawned', 'actor.stopped', 'actor.snapshot', 'actor.event', 'actor.failed', 'supervision.directive', 'message.sent', 'message.dead',
  'node.heartbeat',
]);

const str = (o: Record<string, unknown>, k: string): boolean => typeof o[k] === 'string';
const optStr = (o: Record<string, unknown>, k: string): boolean => o[k] === undefined || typeof o[k] === 'string';

/**
 * Validate one decoded event. Returns it typed, or `undefined` when it is not a well-formed
 * version-1 event (wrong version, unknown kind, missing or mistyped fields).
 */
export function parseWireEvent(value: unknown): WireEvent | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if (o['v'] !== INSPECTION_VERSION || !str(o, 'kind') || !KINDS.has(o['kind'] as string)) return undefined;
  if (!str(o, 'node') || typeof o['at'] !== 'number' || !Number.isFinite(o['at'])) return undefined;
  let ok: boolean;
  switch (o['kind']) {
    case 'actor.spawned':
      ok = str(o, 'actor') && str(o, 'actorType') && optStr(o, 'parent') && optStr(o, 'machineKey')
        && (o['machine'] === undefined || isGraph(o['machine']));
      break;
    case 'actor.stopped':
      ok = str(o, 'actor') && str(o, 'reason');
      break;
    case 'actor.snapshot':
      ok = str(o, 'actor') && str(o, 'status') && (o['timers'] === undefined || Array.isArray(o['timers']));
      break;
    case 'actor.event':
      ok = str(o, 'actor') && typeof o['event'] === 'object' && o['event'] !== null;
      break;
    case 'actor.failed':
      ok = str(o, 'actor') && str(o, 'error');
      break;
    case 'supervision.directive':
      ok = str(o, 'supervisor') && str(o, 'child') && str(o, 'directive') && str(o, 'reason') && typeof o['delayMs'] === 'number';
      break;
    case 'message.sent':
      ok = str(o, 'to') && str(o, 'messageType') && optStr(o, 'from') && typeof o['ask'] === 'boolean';
      break;
    case 'message.dead':
      ok = str(o, 'reason') && optStr(o, 'to') && optStr(o, 'from') && optStr(o, 'messageType');
      break;
    case 'node.heartbeat':
      ok = typeof o['actors'] === 'number' && typeof o['stats'] === 'object' && o['stats'] !== null;
      break;
    default:
      ok = false;
  }
  return ok ? (o as unknown as WireEvent) : undefined;
}

function isGraph(value: unknown): value is ChartGraph {
  if (typeof value !== 'object' || value === null) return false;
  const g = value as Record<string, unknown>;
  return g['v'] === 1 && typeof g['id'] === 'string' && typeof g['root'] === 'object' && g['root'] !== null && Array.isArray(g['transitions']);
}

/** Encode a batch for the transport (UTF-8 JSON). */
export function encodeBatch(batch: WireBatch): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(batch));
}

/**
 * Decode a batch: the well-formed events, and how many were malformed (an undecodable message
 * counts as one). Never throws.
 */
export function decodeBatch(data: Uint8Array): { events: WireEvent[]; malformed: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { events: [], malformed: 1 };
  }
  const b = parsed as Partial<WireBatch> | null;
  if (typeof b !== 'object' || b === null || b.v !== INSPECTION_VERSION || !Array.isArray(b.events)) return { events: [], malformed: 1 };
  const events: WireEvent[] = [];
  let malformed = 0;
  for (const e of b.events) {
    const ok = parseWireEvent(e);
    if (ok) events.push(ok);
    else malformed++;
  }
  return { events, malformed };
}

/** Decode a control message, or `undefined` when malformed. */
export function decodeControl(data: Uint8Array): ControlMessage | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(data)) as Partial<Record<string, unknown>> | null;
    if (typeof m !== 'object' || m === null || m['v'] !== INSPECTION_VERSION) return undefined;
    if (m['type'] === 'sync') return m as ControlMessage;
    if (m['type'] === 'send' && typeof m['actor'] === 'string' && typeof m['event'] === 'object' && m['event'] !== null
      && typeof (m['event'] as { type?: unknown }).type === 'string') return m as ControlMessage;
    return undefined;
  } catch {
    return undefined;
  }
}

/** Encode a control message. */
export function encodeControl(message: ControlMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message));
}
