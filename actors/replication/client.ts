/**
 * `replicationClient(system, options)`: write to a replicated actor from any node — it finds the
 * primary (following the `NotPrimary` hints replicas answer with) and retries on another replica
 * when one is unreachable. A write is sent to one primary at most once: a write whose answer
 * does not come (timeout) or that its primary could not get acknowledged fails with
 * `WriteUnacknowledgedError` — its outcome is unknown, and retrying it could apply it twice.
 */
import type { EventObject } from 'xstate';
import { createCodec } from '../../framework/codec/codec.ts';
import { NoRespondersError, NotPrimaryError, TransportTimeoutError, WriteUnacknowledgedError } from '../../framework/errors.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { serviceSubject, validateName } from '../../framework/transport/subjects.ts';
import type { WriteReceipt } from './replicated.ts';
import { messages, type ReplWrite, type ReplWriteReply } from './replication.pb.ts';

/** Options of {@link replicationClient}. */
export interface ReplicationClientOptions {
  /** The replicated actor's name. */
  name: string;
  /** Node names of its replicas. */
  replicas: readonly string[];
  /** A write gives up finding a primary after this long (`NotPrimaryError`). @default 10000 */
  timeoutMs?: number;
  /** One request to one replica. @default 2000 */
  attemptTimeoutMs?: number;
  /** Pause when no replica knows a primary (an election is going on). @default 50 */
  retryDelayMs?: number;
}

export interface ReplicationClient<E extends EventObject = EventObject & Record<string, unknown>> {
  /** The primary of the last successful write, if any. */
  readonly primary: string | undefined;
  /**
   * Write `event` through the primary. Rejects with `WriteUnacknowledgedError` (outcome unknown)
   * or `NotPrimaryError` (no primary found within `timeoutMs`; not applied).
   */
  send(event: E): Promise<WriteReceipt>;
}

/**
 * @example
 * const orders = replicationClient(system, { name: 'orders', replicas: ['a', 'b', 'c'] });
 * const { epoch, seq } = await orders.send({ type: 'ADD', id: 'o-1' });
 */
export function replicationClient<E extends EventObject = EventObject & Record<string, unknown>>(system: ActorSystem, options: ReplicationClientOptions): ReplicationClient<E> {
  validateName(options.name, 'replicated actor name');
  if (!Array.isArray(options.replicas) || options.replicas.length === 0) throw new RangeError(`replication client option replicas must be a non-empty list, got ${String(options.replicas)}`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 2_000;
  const retryDelayMs = options.retryDelayMs ?? 50;
  for (const [k, v] of Object.entries({ timeoutMs, attemptTimeoutMs, retryDelayMs })) {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`replication client option ${k} must be a positive number of milliseconds, got ${v}`);
  }
  const codec = createCodec({ maxPayloadBytes: system.transport.maxPayloadBytes });
  codec.register(messages);
  const clock = system.clock;
  const encoder = new TextEncoder();
  let primary: string | undefined;
  let next = 0;
  const pause = (ms: number): Promise<void> => new Promise((r) => clock.setTimeout(r, ms));

  return {
    get primary() { return primary; },
    async send(event) {
      const bytes = codec.encodeMessage({ type: 'ReplWrite', event: encoder.encode(JSON.stringify(event)) } satisfies ReplWrite).bytes;
      const deadline = clock.now() + timeoutMs;
      let lastHint: string | undefined;
      while (clock.now() < deadline) {
        const target = primary ?? options.replicas[next++ % options.replicas.length]!;
        const subject = serviceSubject(system.cluster, 'replication', options.name, target, 'write');
        let reply: ReplWriteReply;
        try {
          const m = await system.transport.request(subject, bytes, { timeoutMs: Math.min(attemptTimeoutMs, Math.max(1, deadline - clock.now())) });
          reply = codec.decodeMessage('troupe.replication.ReplWriteReply', m.data, m.subject) as ReplWriteReply;
        } catch (err) {
          if (err instanceof NoRespondersError) { // that replica is down: nothing was written
            primary = undefined;
            continue;
          }
          if (err instanceof TransportTimeoutError) throw new WriteUnacknowledgedError(options.name, 0, 0, 0, `no answer from ${target} within ${attemptTimeoutMs} ms`);
          throw err;
        }
        if (reply.ok) {
          primary = target;
          return { epoch: reply.epoch, seq: reply.seq };
        }
        if (reply.errorCode === 'NOT_PRIMARY') {
          lastHint = reply.primary || undefined;
          primary = lastHint !== undefined && lastHint !== target ? lastHint : undefined;
          if (primary === undefined) await pause(retryDelayMs);
          continue;
        }
        throw new WriteUnacknowledgedError(options.name, reply.seq, 0, 0, reply.errorMessage);
      }
      throw new NotPrimaryError(options.name, system.node, lastHint, `no primary found within ${timeoutMs} ms`);
    },
  };
}
