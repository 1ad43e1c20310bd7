/**
 * A `KvStore` served over a `Transport`, so that in the simulator every store call of a lock client
 * crosses the simulated network — and is delayed, cut by partitions, held while its node is
 * paused, and lost when it crashes — like a call to a real KV server.
 *
 * `serveKvStore(transport, store)` answers requests on one subject; `remoteKvStore(transport, …)`
 * is the client. A call that gets no reply within `timeoutMs` fails with a retryable
 * `StoreUnavailableError`: it may or may not have been applied. Watches are pushed as messages to
 * a per-watch inbox; on a lossy network a watch may miss entries (patterns built on it must poll,
 * as the lock does).
 */
import type { Clock } from '../../framework/clock.ts';
import { KvConflictError, StoreUnavailableError } from '../../framework/errors.ts';
import type { KvEntry, KvStore, KvWatch } from '../../framework/store/store.ts';
import type { Transport } from '../../framework/transport/transport.ts';

/** Default subject of the store service. */
export const DEFAULT_KV_SUBJECT = 'kv.rpc';

type Request =
  | { op: 'get'; key: string }
  | { op: 'create'; key: string; value: string; ttlMs?: number }
  | { op: 'update'; key: string; value: string; rev: number }
  | { op: 'put'; key: string; value: string }
  | { op: 'delete'; key: string; rev?: number }
  | { op: 'keys'; pattern: string }
  | { op: 'watch'; pattern: string; inbox: string }
  | { op: 'unwatch'; inbox: string };

type Reply = { ok: unknown } | { conflict: { key: string; expected?: number; actual?: number } } | { error: string };

interface WireEntry { key: string; value: string; revision: number; operation: 'put' | 'delete'; createdMs?: number }

const text = new TextEncoder();
const untext = new TextDecoder();
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const toWire = (e: KvEntry): WireEntry => ({ key: e.key, value: b64(e.value), revision: e.revision, operation: e.operation, createdMs: e.createdMs });
const fromWire = (w: WireEntry): KvEntry => ({ key: w.key, value: unb64(w.value), revision: w.revision, operation: w.operation, createdMs: w.createdMs });
const pack = (v: unknown): Uint8Array => text.encode(JSON.stringify(v));
const unpack = <T>(b: Uint8Array): T => JSON.parse(untext.decode(b)) as T;

/**
 * Serve `store` on `subject`. Returns a function that stops serving (watches included).
 * @example
 * const stop = serveKvStore(sim.nodes.get('kv')!.transport, createMemoryKvStore({ clock }));
 */
export function serveKvStore(transport: Transport, store: KvStore, subject = DEFAULT_KV_SUBJECT): () => void {
  const watches = new Map<string, Promise<KvWatch>>();
  const run = async (req: Request): Promise<unknown> => {
    switch (req.op) {
      case 'get': {
        const e = await store.get(req.key);
        return e ? toWire(e) : null;
      }
      case 'create': return store.create(req.key, unb64(req.value), req.ttlMs === undefined ? undefined : { ttlMs: req.ttlMs });
      case 'update': return store.update(req.key, unb64(req.value), req.rev);
      case 'put': return store.put(req.key, unb64(req.value));
      case 'delete': return store.delete(req.key, req.rev === undefined ? undefined : { expectedRevision: req.rev }).then(() => null);
      case 'keys': return store.keys(req.pattern);
      case 'watch': {
        const w = store.watch(req.pattern, (e) => {
          try {
            transport.publish(req.inbox, pack(toWire(e)));
          } catch {
            // the connection is gone (crash): the watch dies with it
          }
        });
        watches.set(req.inbox, w);
        await w;
        return null;
      }
      case 'unwatch': {
        const w = watches.get(req.inbox);
        watches.delete(req.inbox);
        if (w) (await w).stop();
        return null;
      }
    }
  };
  const sub = transport.subscribe(subject, (msg) => {
    let req: Request;
    try {
      req = unpack<Request>(msg.data);
    } catch {
      return; // not a request of ours
    }
    run(req).then(
      (ok) => msg.respond(pack({ ok: ok ?? null } satisfies Reply)),
      (err: unknown) => {
        const reply: Reply = err instanceof KvConflictError
          ? { conflict: { key: err.key, expected: err.expectedRevision, actual: err.actualRevision } }
          : { error: err instanceof Error ? err.message : String(err) };
        msg.respond(pack(reply));
      },
    );
  });
  return () => {
    sub.unsubscribe();
    for (const w of watches.values()) void w.then((x) => x.stop(), () => undefined);
    watches.clear();
  };
}

/** Options of {@link remoteKvStore}. */
export interface RemoteKvStoreOptions {
  /** Used for watch inboxes (must be unique among the clients of one service). */
  name: string;
  clock: Clock;
  /** Longest wait for a reply. */
  timeoutMs: number;
  /** @default 'kv.rpc' */
  subject?: string;
}

/** A `KvStore` whose every call is a request to a {@link serveKvStore} service over `transport`. */
export function remoteKvStore(transport: Transport, options: RemoteKvStoreOptions): KvStore {
  const subject = options.subject ?? DEFAULT_KV_SUBJECT;
  const label = `remote:${options.name}`;
  let watchSeq = 0;
  let closed = false;
  const call = async <T>(req: Request): Promise<T> => {
    if (closed) throw new StoreUnavailableError(label, 'the store is closed', { retryable: false });
    let reply: Reply;
    try {
      const msg = await transport.request(subject, pack(req), { timeoutMs: options.timeoutMs });
      reply = unpack<Reply>(msg.data);
    } catch (err) {
      throw new StoreUnavailableError(label, err instanceof Error ? err.message : String(err), { cause: err });
    }
    if ('ok' in reply) return reply.ok as T;
    if ('conflict' in reply) throw new KvConflictError(reply.conflict.key, reply.conflict.expected ?? undefined, reply.conflict.actual ?? undefined);
    throw new StoreUnavailableError(label, reply.error);
  };
  return {
    kind: 'remote',
    get: async (key) => {
      const w = await call<WireEntry | null>({ op: 'get', key });
      return w ? fromWire(w) : undefined;
    },
    create: (key, value, opts) => call<number>({ op: 'create', key, value: b64(value), ...(opts?.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}) }),
    update: (key, value, rev) => call<number>({ op: 'update', key, value: b64(value), rev }),
    put: (key, value) => call<number>({ op: 'put', key, value: b64(value) }),
    delete: async (key, opts) => {
      await call<null>({ op: 'delete', key, ...(opts?.expectedRevision !== undefined ? { rev: opts.expectedRevision } : {}) });
    },
    keys: (pattern = '>') => call<string[]>({ op: 'keys', pattern }),
    watch: async (pattern, onEntry, opts) => {
      const inbox = `kvw.${options.name}.${++watchSeq}`;
      let stopped = false;
      const sub = transport.subscribe(inbox, (msg) => {
        if (stopped) return;
        try {
          onEntry(fromWire(unpack<WireEntry>(msg.data)));
        } catch (err) {
          opts?.onError?.(err instanceof Error ? err : new Error(String(err)));
        }
      });
      try {
        await call<null>({ op: 'watch', pattern, inbox });
      } catch (err) {
        sub.unsubscribe();
        throw err;
      }
      return {
        stop: () => {
          if (stopped) return;
          stopped = true;
          sub.unsubscribe();
          try {
            transport.publish(subject, pack({ op: 'unwatch', inbox }));
          } catch {
            // closed: the service forgets the watch when it stops
          }
        },
      };
    },
    close: async () => {
      closed = true;
    },
  };
}
