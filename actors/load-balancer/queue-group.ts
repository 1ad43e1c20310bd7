/**
 * Queue-group mode: the pool's members subscribe to one subject in one NATS queue group and the
 * server hands each request to one of them — no client-side choice, no per-backend state. A member
 * that stops (or whose node dies) unsubscribes, so the server stops sending it work at once; there
 * is no ejection of a member that is alive but failing.
 */
import { createCodec, type Codec } from '../../framework/codec/codec.ts';
import type { MessageObject, MessageSet } from '../../framework/codec/messages.ts';
import {
  AskTimeoutError, NoBackendsError, NoRespondersError, RemoteError, TransportTimeoutError, TroupeError,
} from '../../framework/errors.ts';
import type { RefLike } from '../../framework/ref.ts';
import type { ActorSystem } from '../../framework/system.ts';
import { serviceSubject } from '../../framework/transport/subjects.ts';
import type { TransportMsg } from '../../framework/transport/transport.ts';
import { messages as lbMessages, type QueuedCall, type QueuedReply } from './load-balancer.pb.ts';

/** Longest a member lets one queued request run when the caller sent no budget. */
const DEFAULT_MEMBER_TIMEOUT_MS = 5_000;

/** The subject of a pool's queue group. `key` must be a valid name token. */
export function queueSubject(system: ActorSystem, key: string): string {
  return serviceSubject(system.cluster, 'lb', key);
}

function codecFor(system: ActorSystem, sets: MessageSet | readonly MessageSet[]): Codec {
  const codec = createCodec({ maxPayloadBytes: system.transport.maxPayloadBytes });
  codec.register(lbMessages);
  for (const set of Array.isArray(sets) ? sets : [sets as MessageSet]) codec.register(set);
  return codec;
}

/** A member of a pool's queue group. */
export interface QueueGroupMember {
  /** Leave the queue group (the server stops sending work at once). Idempotent. */
  stop(): void;
}

/**
 * Serve `ref` (a local actor) to the pool `key` in queue-group mode: each request the server hands
 * this member is asked of `ref`, and its reply (or error) goes back to the caller.
 * @example const member = serveQueueGroup(system, { key: 'work', ref: worker, messages });
 */
export function serveQueueGroup(system: ActorSystem, options: { key: string; ref: RefLike; messages: MessageSet | readonly MessageSet[] }): QueueGroupMember {
  const codec = codecFor(system, options.messages);
  const subject = queueSubject(system, options.key);
  const answer = (msg: TransportMsg, reply: QueuedReply): void => {
    try {
      msg.respond(codec.encodeMessage(reply).bytes);
    } catch (err) {
      system.logger.warn({ err }, `queue group ${options.key}: could not answer`);
    }
  };
  const fail = (msg: TransportMsg, err: unknown): void => {
    const e = err instanceof TroupeError ? err : undefined;
    answer(msg, {
      type: 'QueuedReply', messageType: '', payload: new Uint8Array(),
      errorCode: e?.code ?? 'ERROR', errorMessage: err instanceof Error ? err.message : String(err), retryable: e?.retryable ?? false,
    });
  };
  const sub = system.transport.subscribe(subject, (msg) => {
    let message: MessageObject;
    let timeoutMs: number;
    try {
      const call = codec.decodeMessage('troupe.lb.QueuedCall', msg.data, msg.subject) as QueuedCall;
      message = codec.decodeMessage(call.messageType, call.payload, msg.subject);
      timeoutMs = call.timeoutMs > 0 ? call.timeoutMs : DEFAULT_MEMBER_TIMEOUT_MS;
    } catch (err) {
      fail(msg, err);
      return;
    }
    if (!msg.reply) {
      system.deliver(options.ref, message); // a tell
      return;
    }
    system.ask(options.ref, message, { timeoutMs }).then(
      (reply) => {
        const { typeName, bytes } = codec.encodeMessage(reply);
        answer(msg, { type: 'QueuedReply', messageType: typeName, payload: bytes, errorCode: '', errorMessage: '', retryable: false });
      },
      (err: unknown) => fail(msg, err),
    );
  }, { queue: options.key });
  return { stop: () => sub.unsubscribe() };
}

/** The caller's side of a queue group: one request, the server picks the member. */
export interface QueueGroupCaller {
  ask<R extends MessageObject>(message: MessageObject, timeoutMs: number, signal?: AbortSignal): Promise<R>;
  /** Hand `message` to one member as a tell (dropped by the server when the group is empty). */
  tell(message: MessageObject): void;
}

export function queueGroupCaller(system: ActorSystem, key: string, sets: MessageSet | readonly MessageSet[]): QueueGroupCaller {
  const codec = codecFor(system, sets);
  const subject = queueSubject(system, key);
  const call = (message: MessageObject, timeoutMs: number): Uint8Array => {
    const { typeName, bytes } = codec.encodeMessage(message);
    return codec.encodeMessage({ type: 'QueuedCall', messageType: typeName, payload: bytes, timeoutMs: Math.ceil(timeoutMs) } satisfies QueuedCall).bytes;
  };
  return {
    tell(message) {
      system.transport.publish(subject, call(message, 0));
    },
    async ask<R extends MessageObject>(message: MessageObject, timeoutMs: number, signal?: AbortSignal): Promise<R> {
      const data = call(message, timeoutMs);
      let msg: TransportMsg;
      try {
        msg = await system.transport.request(subject, data, signal ? { timeoutMs, signal } : { timeoutMs });
      } catch (err) {
        if (err instanceof NoRespondersError) throw new NoBackendsError(key, 'no member in the queue group');
        if (err instanceof TransportTimeoutError) throw new AskTimeoutError(`queue:${key}`, timeoutMs, message.type);
        throw err;
      }
      const reply = codec.decodeMessage('troupe.lb.QueuedReply', msg.data, msg.subject) as QueuedReply;
      if (reply.errorCode) {
        if (reply.errorCode === 'ASK_TIMEOUT') throw new AskTimeoutError(`queue:${key}`, timeoutMs, message.type);
        throw new RemoteError(reply.errorCode, reply.errorMessage, reply.retryable);
      }
      return codec.decodeMessage(reply.messageType, reply.payload, msg.subject) as R;
    },
  };
}
