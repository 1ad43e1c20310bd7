/**
 * The Raft `KvStore` over the wire: a KV store service actor in front of each replica answers
 * writes, reads and watch requests from any node (over NATS, the in-process bus or the simulator),
 * and `createRemoteRaftKvStore` is the same store client as the in-process form, reaching the
 * services by address — it follows `NotLeaderError` hints to the leader's service, retries a
 * write with the same (client id, seq), and receives watch entries in a sink actor of its own.
 *
 * A watch is served by the replica whose service started it; if the client's node goes away
 * without stopping it, that service keeps sending (to dead letters) until the service stops.
 */
import { emit, setup } from 'xstate';
import { defineActor, isTroupeError, NotLeaderError, originOf, type ActorRef, type ActorSystem, type Origin } from '../../framework/index.ts';
import { StoreUnavailableError } from '../../framework/errors.ts';
import type { KvEntry, KvStore, KvWatch } from '../../framework/store/store.ts';
import { createWatchDelivery, type WatchDelivery } from '../../framework/store/watch-delivery.ts';
import { encodeKvStoreValue, type KvStoreResult } from './kv-store-machine.ts';
import {
  createRoutedKvStore,
  resolveRaftKvClientOptions,
  type KvStoreEndpoint,
  type KvStoreRoute,
  type RaftKvClientOptions,
  type RaftKvReplica,
  type ReplicaAttempt,
  type UnstampedKvStoreCommand,
} from './kv-store.ts';
import { messages, type KvStoreEntry, type KvStoreReadResult, type KvStoreWrite, type KvStoreWriteResult, type Message } from './kv-store.pb.ts';

type WireEntry = Omit<KvStoreEntry, 'type'>;
type ServiceRequest = { type: 'kvstore.request'; origin: Origin | undefined; request: Message };
type SinkEntry = { type: 'kvstore.entry'; watchId: string; entry: WireEntry | null | undefined; lost: string };

/** The service's chart: every request goes to its host, which answers once the replica has. */
export const kvStoreServiceMachine = setup({
  types: { events: {} as Message, emitted: {} as ServiceRequest },
  actions: { forward: emit(({ event }) => ({ type: 'kvstore.request' as const, origin: originOf(event), request: event })) },
}).createMachine({
  id: 'kvStoreService',
  on: { KvStoreWrite: { actions: 'forward' }, KvStoreRead: { actions: 'forward' }, KvStoreWatch: { actions: 'forward' }, KvStoreUnwatch: { actions: 'forward' } },
});

export const KvStoreService = defineActor({ type: 'kv-store-service', machine: kvStoreServiceMachine, messages });

/** The client's watch sink: hands every pushed entry to its host. */
export const kvStoreWatchSinkMachine = setup({
  types: { events: {} as Message, emitted: {} as SinkEntry },
}).createMachine({
  id: 'kvStoreWatchSink',
  on: { KvStoreWatchEntry: { actions: emit(({ event }) => ({ type: 'kvstore.entry' as const, watchId: event.watchId, entry: event.entry, lost: event.lost })) } },
});

export const KvStoreWatchSink = defineActor({ type: 'kv-store-watch-sink', machine: kvStoreWatchSinkMachine, messages });

const WRITE_OPS = ['create', 'update', 'put', 'delete'] as const;

function commandFromWire(w: KvStoreWrite): UnstampedKvStoreCommand | undefined {
  const head = { client: w.client, seq: w.seq, floor: w.floor, key: w.key };
  const value = encodeKvStoreValue(w.value);
  switch (w.op) {
    case 'create':
      return { ...head, op: 'create', value, ...(w.ttlMs > 0 ? { ttlMs: w.ttlMs } : {}) };
    case 'update':
      return { ...head, op: 'update', value, expectedRevision: w.expectedRevision };
    case 'put':
      return { ...head, op: 'put', value };
    case 'delete':
      return { ...head, op: 'delete', ...(w.expectedRevision > 0 ? { expectedRevision: w.expectedRevision } : {}) };
    default:
      return undefined;
  }
}

function commandToWire(c: UnstampedKvStoreCommand): KvStoreWrite {
  return {
    type: 'KvStoreWrite', client: c.client, seq: c.seq, floor: c.floor, op: c.op, key: c.key,
    value: 'value' in c ? new Uint8Array(Buffer.from(c.value, 'base64')) : new Uint8Array(0),
    ttlMs: c.op === 'create' ? (c.ttlMs ?? 0) : 0,
    expectedRevision: c.op === 'update' || c.op === 'delete' ? (c.expectedRevision ?? 0) : 0,
  };
}

function resultToWire(r: KvStoreResult): KvStoreWriteResult {
  return {
    type: 'KvStoreWriteResult', result: r.type,
    revision: r.type === 'written' ? r.revision : 0,
    expectedRevision: r.type === 'conflict' ? (r.expectedRevision ?? 0) : 0,
    actualRevision: r.type === 'conflict' ? (r.actualRevision ?? 0) : 0,
    reason: r.type === 'invalid' ? r.reason : '',
  };
}

function resultFromWire(w: KvStoreWriteResult): KvStoreResult {
  switch (w.result) {
    case 'written':
      return { type: 'written', revision: w.revision };
    case 'unchanged':
      return { type: 'unchanged' };
    case 'stale':
      return { type: 'stale' };
    case 'conflict':
      return { type: 'conflict', ...(w.expectedRevision > 0 ? { expectedRevision: w.expectedRevision } : {}), ...(w.actualRevision > 0 ? { actualRevision: w.actualRevision } : {}) };
    default:
      return { type: 'invalid', reason: w.reason || `unknown result '${w.result}'` };
  }
}

const entryToWire = (e: KvEntry): WireEntry => ({ key: e.key, value: e.value, revision: e.revision, operation: e.operation, createdMs: e.createdMs ?? 0 });
const entryFromWire = (w: WireEntry): KvEntry => ({ key: w.key, value: w.value, revision: w.revision, operation: w.operation === 'delete' ? 'delete' : 'put', createdMs: w.createdMs });

/** Options of {@link startRaftKvStoreService}. */
export interface RaftKvStoreServiceOptions {
  /** Actor name; the service's address is `<node>/<name>`. @default 'kv-store' */
  name?: string;
  /** How long the service waits for the replica before giving up on a request (the client's ask times out first). @default 5_000 */
  timeoutMs?: number;
}

/**
 * Spawn the KV store service for `replica` (a getter: the replica may be replaced on a restart).
 * @example
 * startRaftKvStoreService(system, () => replica);
 * const store = createRemoteRaftKvStore({ system: clientSystem, services: ['n1/kv-store', 'n2/kv-store', 'n3/kv-store'] });
 */
export function startRaftKvStoreService(system: ActorSystem, replica: () => RaftKvReplica, options: RaftKvStoreServiceOptions = {}): ActorRef {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const watches = new Map<string, KvWatch>();
  /** Unwatches that overtook their watch's start. */
  const unwatched = new Set<string>();
  return system.spawn(KvStoreService, {
    name: options.name ?? 'kv-store',
    onEffect: (effect, self) => {
      const { origin, request } = effect as ServiceRequest;
      const answer = <T>(attempt: ReplicaAttempt<T>, reply: (value: T) => Message): void => {
        const timer = system.clock.setTimeout(() => attempt.cancel(), timeoutMs);
        attempt.result.then(
          (value) => {
            system.clock.clearTimeout(timer);
            const message = reply(value);
            if (origin) system.reply(origin, message, self);
          },
          (err: unknown) => {
            system.clock.clearTimeout(timer);
            if (origin) system.reply(origin, isTroupeError(err) ? err : new NotLeaderError(self.address, undefined), self);
          },
        );
      };
      switch (request.type) {
        case 'KvStoreWrite': {
          const command = commandFromWire(request);
          if (!command) {
            if (origin) system.reply(origin, resultToWire({ type: 'invalid', reason: `unknown op '${request.op}' (${WRITE_OPS.join(', ')})` }), self);
            return;
          }
          answer(replica().submit(command), resultToWire);
          return;
        }
        case 'KvStoreRead': {
          const query = request.query === 'keys' ? { kind: 'keys' as const, pattern: request.key } : { kind: 'get' as const, key: request.key };
          answer(replica().read(query), (r): KvStoreReadResult => Array.isArray(r)
            ? { type: 'KvStoreReadResult', found: false, entry: null, keys: r }
            : { type: 'KvStoreReadResult', found: r !== undefined, entry: r ? entryToWire(r) : null, keys: [] });
          return;
        }
        case 'KvStoreWatch': {
          const { watchId, subscriber } = request;
          const push = (e: KvEntry): void => system.deliver(subscriber, { type: 'KvStoreWatchEntry', watchId, entry: entryToWire(e), lost: '' }, self.address);
          const lost = (err: Error): void => {
            watches.get(watchId)?.stop(); // the client's Unwatch, which follows, forgets it
            system.deliver(subscriber, { type: 'KvStoreWatchEntry', watchId, entry: null, lost: err.message }, self.address);
          };
          answer(replica().watch(request.pattern, request.includeHistory, push, lost), (w) => {
            if (unwatched.delete(watchId)) w.stop();
            else watches.set(watchId, w);
            return { type: 'KvStoreWatchStarted', watchId };
          });
          return;
        }
        case 'KvStoreUnwatch': {
          const w = watches.get(request.watchId);
          if (w) {
            w.stop();
            watches.delete(request.watchId);
          } else {
            unwatched.add(request.watchId);
          }
          return;
        }
        default:
          return;
      }
    },
  });
}

/** Options of {@link createRemoteRaftKvStore}. */
export interface RemoteRaftKvStoreOptions extends RaftKvClientOptions {
  /** The client's system: it asks the services and hosts the watch sink; its clock bounds every call. */
  system: ActorSystem;
  /** Addresses of the group's KV store services, one per node (`<node>/<name>`). */
  services: readonly string[];
}

/**
 * A `KvStore` (kind `'raft'`) over the KV store services of one Raft group, from any node.
 * @example
 * const store = createRemoteRaftKvStore({ system, services: ['n1/kv-store', 'n2/kv-store', 'n3/kv-store'], timeoutMs: 2_000 });
 * await store.create('lock.orders', enc('node-a'), { ttlMs: 10_000 });
 */
export function createRemoteRaftKvStore(options: RemoteRaftKvStoreOptions): KvStore {
  const { system, services } = options;
  if (!Array.isArray(services) || services.length === 0) throw new RangeError('raft KV store option services must be a non-empty array of addresses');
  const client = resolveRaftKvClientOptions(system.clock, options);
  const deliveries = new Map<string, WatchDelivery>();
  let watchSeq = 0;
  const sink = system.spawn(KvStoreWatchSink, {
    name: `kv-store-watch-${client.clientId}`,
    onEffect: (effect) => {
      const { watchId, entry, lost } = effect as SinkEntry;
      if (lost) deliveries.get(watchId)?.lose(new StoreUnavailableError(`raft:${client.name}`, lost));
      else if (entry) deliveries.get(watchId)?.offer(entryFromWire(entry));
    },
  });
  const ask = <R extends Message>(address: string, message: Message): Promise<R> => system.ask<R>(address, message, { timeoutMs: client.attemptTimeoutMs });
  const endpoint = (address: string): KvStoreEndpoint => ({
    submit: (command) => ({ result: ask<KvStoreWriteResult>(address, commandToWire(command)).then(resultFromWire), cancel: () => undefined }),
    read: (query) => ({
      result: ask<KvStoreReadResult>(address, { type: 'KvStoreRead', query: query.kind, key: query.kind === 'get' ? query.key : query.pattern })
        .then((r) => (query.kind === 'keys' ? r.keys : r.found && r.entry ? entryFromWire(r.entry) : undefined)),
      cancel: () => undefined,
    }),
    watch(pattern, includeHistory, onEntry, onError) {
      const watchId = `${client.clientId}.${++watchSeq}`;
      const delivery = createWatchDelivery(pattern, [], onEntry, onError, () => {
        deliveries.delete(watchId);
        system.deliver(address, { type: 'KvStoreUnwatch', watchId }, sink.address);
      });
      deliveries.set(watchId, delivery);
      const result = ask(address, { type: 'KvStoreWatch', watchId, pattern, includeHistory, subscriber: sink.address }).then(
        (): KvWatch => delivery,
        (err: unknown) => {
          deliveries.delete(watchId);
          throw err;
        },
      );
      return { result, cancel: () => delivery.stop() };
    },
  });
  const endpoints = services.map(endpoint);
  let guess = 0;
  const route: KvStoreRoute = {
    next(skip) {
      for (let i = 0; i < endpoints.length; i++) {
        const e = endpoints[(guess + i) % endpoints.length]!;
        if (!skip.has(e)) return e;
      }
      return undefined;
    },
    refused(_endpoint, err) {
      // a hint names the leader's Raft node (`node/name`): its service is on the same node
      const node = err.leader?.slice(0, err.leader.indexOf('/'));
      const hinted = node ? services.findIndex((s) => s.startsWith(`${node}/`)) : -1;
      if (hinted >= 0) guess = hinted;
    },
    answered(e) {
      guess = endpoints.indexOf(e);
    },
  };
  return createRoutedKvStore(client, route, () => {
    for (const d of Array.from(deliveries.values())) d.stop();
    system.stop(sink);
  });
}
