/**
 * The inspection publisher: turns a system's `inspect` sink into versioned JSON batches on the
 * transport (`troupe.<cluster>._inspect.<node>`), for an inspector server to collect.
 *
 * What it promises: structural events (spawned, stopped, failed, supervision directives, and
 * snapshots whose state value changed) are always published while the buffer has room; chatty ones
 * (received events, messages, dead letters, snapshots with an unchanged state value) are sampled
 * and rate limited per actor, and an actor's latest rate-limited snapshot is published with the
 * next batch, so an inspector's picture of every actor ends up current. Each actor type's machine
 * graph travels once (again after a `sync` request). Nothing here blocks or throws into the runtime.
 */
import { createRng, realClock, type Clock, type Rng } from '../clock.ts';
import type { ActorSystem } from '../system.ts';
import { inspectionControlSubject, inspectionSubject } from '../transport/subjects.ts';
import type { Subscription, Transport } from '../transport/transport.ts';
import {
  decodeControl, INSPECTION_VERSION, type InspectionEvent, type InspectionSink, type PublisherStats, type RunningTimer, type WireEvent,
} from './events.ts';
import { activeStates, isMachineLike, machineGraph, type ChartGraph, type MachineLike } from './graph.ts';

export const DEFAULT_INSPECT_BUFFER_SIZE = 10_000;
export const DEFAULT_INSPECT_FLUSH_INTERVAL_MS = 50;
export const DEFAULT_INSPECT_BATCH_SIZE = 500;
export const DEFAULT_INSPECT_RATE_PER_ACTOR = 50;
export const DEFAULT_INSPECT_MAX_EVENT_BYTES = 32 * 1024;
export const DEFAULT_INSPECT_HEARTBEAT_INTERVAL_MS = 1_000;
const MAX_BUCKETS = 100_000;

/** Who a context belongs to, for `sanitize`. */
export interface SanitizeTarget {
  readonly actor: string;
  readonly actorType: string;
}

/** Options of `createInspectionPublisher`. */
export interface InspectionPublisherOptions {
  /** Where batches go (the node's own transport is fine: the publisher never closes it). */
  transport: Transport;
  /** Cluster name (the subject namespace). */
  cluster: string;
  /** Time of flush and heartbeat timers and of rate limiting. @default realClock() */
  clock?: Clock;
  /** Randomness of sampling. @default createRng(1) */
  rng?: Rng;
  /** Events held between flushes; further ones are dropped and counted. @default 10_000 */
  bufferSize?: number;
  /** Longest an event waits before its batch is published. @default 50 */
  flushIntervalMs?: number;
  /** Events per transport message at most (a batch is also cut at half the transport's payload limit). @default 500 */
  batchSize?: number;
  /** Chatty events per actor per second (received events, messages, unchanged snapshots). @default 50 */
  ratePerActorPerSec?: number;
  /** Fraction of chatty events kept, in (0, 1]. @default 1 */
  sampleRate?: number;
  /** Context keys replaced by `"[redacted]"` at any depth, in contexts and received events. */
  redactKeys?: readonly string[];
  /** Rewrite a context before it leaves the process; `redactKeys` then apply to what it returns. */
  sanitize?: (context: unknown, target: SanitizeTarget) => unknown;
  /** An event whose JSON is longer has its context / payload replaced by a truncation note. @default 32 KiB */
  maxEventBytes?: number;
  /** Period of `node.heartbeat` events (liveness and counters); 0 = none. @default 1_000 */
  heartbeatIntervalMs?: number;
}

/** A running publisher. */
export interface InspectionPublisher {
  /** Pass as `createSystem({ inspect: publisher.sink })`; one publisher may serve several systems. */
  readonly sink: InspectionSink;
  stats(): PublisherStats;
  /** Publish what is buffered now. */
  flush(): void;
  /**
   * Let inspectors started with `--allow-send` deliver events to this system's actors. Off by
   * default: a publisher ignores `send` requests for systems it was not given. Returns an undo function.
   */
  acceptSends(system: ActorSystem): () => void;
  /** Flush, stop timers and the control subscription. Idempotent. */
  close(): void;
}

interface LiveActor {
  readonly actorType: string;
  readonly parent: string | undefined;
  readonly machine: MachineLike | undefined;
  readonly graphKey: string | undefined;
  readonly graph: ChartGraph | undefined;
  /** Last published state value, as JSON (to tell changes from repeats). */
  valueKey: string | undefined;
  active: readonly string[];
  timers: readonly RunningTimer[];
  /** Last snapshot seen, published or not (re-sent on sync). */
  lastSnapshot: Extract<InspectionEvent, { kind: 'actor.snapshot' }> | undefined;
}

type Buffered = { ev: WireEvent; target?: SanitizeTarget };

/**
 * Start publishing inspection events.
 * @example
 * const transport = await connectNats({ servers: url });
 * const publisher = createInspectionPublisher({ transport, cluster: 'shop', redactKeys: ['cardNumber'] });
 * const system = createSystem({ cluster: 'shop', node: 'n1', transport, inspect: publisher.sink });
 */
export function createInspectionPublisher(options: InspectionPublisherOptions): InspectionPublisher {
  const o = resolve(options);
  const { transport, cluster, clock } = o;
  const counters = { published: 0, batches: 0, droppedOverflow: 0, droppedRate: 0, droppedSampled: 0, droppedTransport: 0 };
  const live = new Map<string, LiveActor>();
  const graphs = new WeakMap<object, ChartGraph>();
  const sentGraphs = new Set<string>();
  /** Chatty-event budgets by kind and actor: an actor's received events, its snapshots and its messages each get the rate. */
  const buckets = new Map<string, { tokens: number; refilledAt: number }>();
  const nodes = new Set<string>();
  /** What waits for the next flush. */
  let buffer: Buffered[] = [];
  const pendingSnapshots = new Map<string, Extract<InspectionEvent, { kind: 'actor.snapshot' }>>();
  let flushTimer: unknown;
  let heartbeatTimer: unknown;
  let closed = false;
  const sendTargets = new Map<string, ActorSystem>();
  const redact = new Set(o.redactKeys);

  const control: Subscription | undefined = (() => {
    try {
      return transport.subscribe(inspectionControlSubject(cluster), (msg) => {
        const m = decodeControl(msg.data);
        if (m?.type === 'sync') resync();
        else if (m?.type === 'send') {
          const system = sendTargets.get(m.actor.slice(0, m.actor.indexOf('/')));
          if (system) system.deliver(system.ref(m.actor), m.event);
        }
      });
    } catch {
      return undefined; // a closed transport: publish attempts will count as transport drops
    }
  })();

  const allow = (bucket: { tokens: number; refilledAt: number }, now: number): boolean => {
    const rate = o.ratePerActorPerSec;
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.refilledAt) * rate) / 1_000);
    bucket.refilledAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  };
  /** Sampling and rate limiting of chatty events; true when `ev` may be published. */
  const admitChatty = (key: string, now: number): boolean => {
    if (o.sampleRate < 1 && o.rng.next() >= o.sampleRate) {
      counters.droppedSampled++;
      return false;
    }
    let bucket = buckets.get(key);
    if (!bucket) {
      if (buckets.size >= MAX_BUCKETS) buckets.clear(); // bounded: a storm of distinct keys only resets budgets
      bucket = { tokens: o.ratePerActorPerSec, refilledAt: now };
      buckets.set(key, bucket);
    }
    if (allow(bucket, now)) return true;
    counters.droppedRate++;
    return false;
  };

  const push = (ev: WireEvent, target?: SanitizeTarget): void => {
    if (closed) return;
    if (buffer.length >= o.bufferSize) {
      counters.droppedOverflow++;
      return;
    }
    buffer.push(target ? { ev, target } : { ev });
    nodes.add(ev.node);
    if (buffer.length >= o.batchSize) flush();
    else if (flushTimer === undefined) flushTimer = clock.setTimeout(onFlushTimer, o.flushIntervalMs);
  };
  const onFlushTimer = (): void => {
    flushTimer = undefined;
    flush();
  };

  const graphOf = (machine: unknown): { machine: MachineLike; graph: ChartGraph } | undefined => {
    if (!isMachineLike(machine)) return undefined;
    let graph = graphs.get(machine);
    if (!graph) {
      try {
        graph = machineGraph(machine);
      } catch {
        return undefined;
      }
      graphs.set(machine, graph);
    }
    return { machine, graph };
  };

  const spawnedWire = (ev: { at: number; node: string; actor: string }, a: LiveActor): WireEvent => {
    const first = a.graphKey !== undefined && !sentGraphs.has(a.graphKey);
    if (first) sentGraphs.add(a.graphKey!);
    return {
      v: INSPECTION_VERSION, at: ev.at, node: ev.node, kind: 'actor.spawned', actor: ev.actor, actorType: a.actorType,
      ...(a.parent !== undefined ? { parent: a.parent } : {}),
      ...(a.graphKey !== undefined ? { machineKey: a.graphKey } : {}),
      ...(first ? { machine: a.graph } : {}),
    };
  };

  const timersFor = (a: LiveActor, active: readonly string[], context: unknown, at: number): RunningTimer[] => {
    if (!a.graph) return [];
    const before = new Set(a.active);
    const kept = a.timers.filter((t) => before.has(sourceOf(t.transition)) && active.includes(sourceOf(t.transition)));
    const out = [...kept];
    for (const t of a.graph.transitions) {
      if (t.trigger.kind !== 'after' || !active.includes(t.source) || before.has(t.source)) continue;
      let delayMs = t.trigger.delayMs;
      if (delayMs === undefined && typeof t.trigger.delay === 'string') {
        const impl = a.machine?.implementations?.delays?.[t.trigger.delay];
        try {
          const v = typeof impl === 'function' ? (impl as (args: { context: unknown }) => unknown)({ context }) : impl;
          if (typeof v === 'number' && Number.isFinite(v)) delayMs = v;
        } catch {
          // a delay that cannot be computed outside its actor shows without a countdown
        }
      }
      if (delayMs !== undefined) out.push({ transition: t.id, delayMs, startedAt: at });
    }
    return out;
  };

  const snapshotWire = (ev: Extract<InspectionEvent, { kind: 'actor.snapshot' }>, a: LiveActor | undefined): WireEvent => {
    const base = { v: INSPECTION_VERSION as typeof INSPECTION_VERSION, at: ev.at, node: ev.node, kind: 'actor.snapshot' as const, actor: ev.actor, value: ev.value, context: ev.context, status: ev.status };
    return a && a.timers.length > 0 ? { ...base, timers: a.timers } : base;
  };

  const onSnapshot = (ev: Extract<InspectionEvent, { kind: 'actor.snapshot' }>): void => {
    const a = live.get(ev.actor);
    const valueKey = typeof ev.value === 'string' ? `${ev.status}|${ev.value}` : `${ev.status}|${JSON.stringify(ev.value)}`;
    if (a) a.lastSnapshot = ev;
    if (a === undefined || valueKey !== a.valueKey) {
      if (a) {
        const active = a.graph ? activeStates(a.graph, ev.value) : [];
        a.timers = timersFor(a, active, ev.context, ev.at);
        a.active = active;
        a.valueKey = valueKey;
      }
      pendingSnapshots.delete(ev.actor);
      push(snapshotWire(ev, a), target(ev.actor, a));
      return;
    }
    if (admitChatty(`s|${ev.actor}`, ev.at)) {
      pendingSnapshots.delete(ev.actor);
      push(snapshotWire(ev, a), target(ev.actor, a));
    } else {
      pendingSnapshots.set(ev.actor, ev);
      if (flushTimer === undefined && !closed) flushTimer = clock.setTimeout(onFlushTimer, o.flushIntervalMs);
    }
  };

  const target = (actor: string, a: LiveActor | undefined): SanitizeTarget => ({ actor, actorType: a?.actorType ?? 'unknown' });

  const sink: InspectionSink = (ev) => {
    if (closed) return;
    switch (ev.kind) {
      case 'actor.spawned': {
        const g = graphOf(ev.machine);
        const a: LiveActor = {
          actorType: ev.actorType, parent: ev.parent, machine: g?.machine, graph: g?.graph,
          graphKey: g ? `${ev.actorType}:${g.graph.id}` : undefined,
          valueKey: undefined, active: [], timers: [], lastSnapshot: undefined,
        };
        live.set(ev.actor, a);
        push(spawnedWire(ev, a));
        return;
      }
      case 'actor.stopped':
        live.delete(ev.actor);
        for (const k of 'sem') buckets.delete(`${k}|${ev.actor}`);
        pendingSnapshots.delete(ev.actor);
        push(ev);
        return;
      case 'actor.snapshot':
        onSnapshot(ev);
        return;
      case 'actor.event':
        if (admitChatty(`e|${ev.actor}`, ev.at)) push(ev, target(ev.actor, live.get(ev.actor)));
        return;
      case 'message.sent':
        if (admitChatty(`m|${ev.from ?? ev.to}`, ev.at)) push(ev);
        return;
      case 'message.dead':
        if (admitChatty(`d|${ev.to ?? ''}`, ev.at)) push(ev);
        return;
      default:
        push(ev);
    }
  };

  const serialize = (b: Buffered): string => {
    const replacer = (key: string, value: unknown): unknown => {
      if (redact.has(key)) return '[redacted]';
      return jsonSafe(value);
    };
    let ev = b.ev;
    if (b.target && o.sanitize && ev.kind === 'actor.snapshot') {
      try {
        ev = { ...ev, context: o.sanitize(ev.context, b.target) };
      } catch {
        ev = { ...ev, context: '[sanitize failed]' };
      }
    }
    let s: string | undefined;
    try {
      s = JSON.stringify(ev, redact.size > 0 ? replacer : (_k, v: unknown) => jsonSafe(v));
    } catch {
      s = undefined; // cycles
    }
    if (s === undefined || s.length > o.maxEventBytes) {
      const note = { truncated: true, bytes: s?.length ?? -1 };
      const slim = ev.kind === 'actor.snapshot' ? { ...ev, context: note } : ev.kind === 'actor.event' ? { ...ev, event: { type: eventType(ev.event), ...note } } : ev;
      try {
        s = JSON.stringify(slim, (_k, v: unknown) => jsonSafe(v));
      } catch {
        s = undefined;
      }
    }
    return s ?? '';
  };

  const publishNode = (node: string, items: string[]): void => {
    if (items.length === 0) return;
    const limit = Math.max(1_024, Math.floor(transport.maxPayloadBytes / 2));
    let start = 0;
    while (start < items.length) {
      let bytes = 40 + node.length;
      let end = start;
      while (end < items.length && end - start < o.batchSize && (end === start || bytes + items[end]!.length + 1 <= limit)) {
        bytes += items[end]!.length + 1;
        end++;
      }
      const text = `{"v":${INSPECTION_VERSION},"node":${JSON.stringify(node)},"events":[${items.slice(start, end).join(',')}]}`;
      try {
        transport.publish(inspectionSubject(cluster, node), new TextEncoder().encode(text));
        counters.published += end - start;
        counters.batches++;
      } catch {
        counters.droppedTransport += end - start;
      }
      start = end;
    }
  };

  function flush(): void {
    if (flushTimer !== undefined) {
      clock.clearTimeout(flushTimer);
      flushTimer = undefined;
    }
    for (const ev of pendingSnapshots.values()) {
      const a = live.get(ev.actor);
      buffer.push({ ev: snapshotWire(ev, a), target: target(ev.actor, a) });
    }
    pendingSnapshots.clear();
    if (buffer.length === 0) return;
    const taken = buffer;
    buffer = [];
    const byNode = new Map<string, string[]>();
    for (const b of taken) {
      const s = serialize(b);
      if (s === '') continue;
      let list = byNode.get(b.ev.node);
      if (!list) byNode.set(b.ev.node, (list = []));
      list.push(s);
    }
    for (const [node, items] of byNode) publishNode(node, items);
  }

  /** An inspector asked for the full picture: every live actor (with its graph) and its last snapshot. */
  function resync(): void {
    sentGraphs.clear();
    const now = clock.now();
    for (const [actor, a] of live) {
      const node = actor.slice(0, actor.indexOf('/'));
      push(spawnedWire({ at: now, node, actor }, a));
      if (a.lastSnapshot) pendingSnapshots.set(actor, a.lastSnapshot);
    }
    flush();
  }

  const heartbeat = (): void => {
    heartbeatTimer = undefined;
    if (closed) return;
    const now = clock.now();
    for (const node of nodes) {
      let actors = 0;
      for (const k of live.keys()) if (k.startsWith(`${node}/`)) actors++;
      push({ v: INSPECTION_VERSION, at: now, node, kind: 'node.heartbeat', actors, stats: { ...counters } });
    }
    flush();
    heartbeatTimer = clock.setTimeout(heartbeat, o.heartbeatIntervalMs);
  };
  if (o.heartbeatIntervalMs > 0) heartbeatTimer = clock.setTimeout(heartbeat, o.heartbeatIntervalMs);

  return {
    sink,
    stats: () => ({ ...counters }),
    flush,
    acceptSends(system) {
      sendTargets.set(system.node, system);
      return () => {
        if (sendTargets.get(system.node) === system) sendTargets.delete(system.node);
      };
    },
    close() {
      if (closed) return;
      flush();
      closed = true;
      if (heartbeatTimer !== undefined) clock.clearTimeout(heartbeatTimer);
      heartbeatTimer = undefined;
      control?.unsubscribe();
      sendTargets.clear();
    },
  };
}

function sourceOf(transitionId: string): string {
  return transitionId.slice(0, transitionId.lastIndexOf('#'));
}

function eventType(event: unknown): string {
  const t = (event as { type?: unknown } | null)?.type;
  return typeof t === 'string' ? t : 'unknown';
}

/** A JSON-safe stand-in for values JSON cannot carry (bytes, bigints, maps, actor refs). */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Uint8Array) return `[${value.length} bytes]`;
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  if (value instanceof Error) return { error: value.name, message: value.message };
  // an XState actor ref: its id, not its whole system
  const ref = value as { sessionId?: unknown; send?: unknown; id?: unknown };
  if (typeof ref.sessionId === 'string' && typeof ref.send === 'function') return `[actor ${String(ref.id)}]`;
  return value;
}

function resolve(options: InspectionPublisherOptions): Required<Omit<InspectionPublisherOptions, 'sanitize'>> & Pick<InspectionPublisherOptions, 'sanitize'> {
  const int = (name: string, v: number | undefined, fallback: number, min: number): number => {
    const x = v ?? fallback;
    if (!Number.isInteger(x) || x < min) throw new RangeError(`option ${name} must be an integer ≥ ${min}, got ${String(x)}`);
    return x;
  };
  const sampleRate = options.sampleRate ?? 1;
  if (!(sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`option sampleRate must be in (0, 1], got ${String(sampleRate)}`);
  if (!options.transport) throw new RangeError('option transport is required');
  return {
    transport: options.transport,
    cluster: options.cluster,
    clock: options.clock ?? realClock(),
    rng: options.rng ?? createRng(1),
    bufferSize: int('bufferSize', options.bufferSize, DEFAULT_INSPECT_BUFFER_SIZE, 1),
    flushIntervalMs: int('flushIntervalMs', options.flushIntervalMs, DEFAULT_INSPECT_FLUSH_INTERVAL_MS, 0),
    batchSize: int('batchSize', options.batchSize, DEFAULT_INSPECT_BATCH_SIZE, 1),
    ratePerActorPerSec: int('ratePerActorPerSec', options.ratePerActorPerSec, DEFAULT_INSPECT_RATE_PER_ACTOR, 1),
    sampleRate,
    redactKeys: options.redactKeys ?? [],
    sanitize: options.sanitize,
    maxEventBytes: int('maxEventBytes', options.maxEventBytes, DEFAULT_INSPECT_MAX_EVENT_BYTES, 256),
    heartbeatIntervalMs: int('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_INSPECT_HEARTBEAT_INTERVAL_MS, 0),
  };
}
