/**
 * Actor references: one structural type for local and remote actors.
 */
import type { MessageObject } from './codec/messages.ts';

/** An actor address, `node/path` (e.g. `n1/orders/worker-3`). Built and checked by the system. */
export type Address = string & { readonly __brand: 'Address' };

/**
 * A handle to an actor anywhere in the cluster. `send` is fire-and-forget (tell): failures to
 * deliver become dead letters, never exceptions. Use `system.ask` for request/reply.
 */
export interface ActorRef<M extends MessageObject = MessageObject> {
  readonly address: Address;
  /** Tell: deliver `message` at most once. */
  send(message: M): void;
  toString(): string;
}

/** Something that names an actor: a ref or an address string. */
export type RefLike = ActorRef<never> | ActorRef | Address | string;

/** Where a message came from and where its reply goes. Attached to events as `origin`. */
export interface Origin {
  /** Sender's address, when the message was sent by an actor. */
  readonly sender?: Address;
  /** Set when the message is an ask. */
  readonly correlationId?: string;
  /** Reply subject for a remote ask; empty for a local ask. */
  readonly replyTo?: string;
}

/** The origin attached to a delivered event, if any (keep it to reply later with `replyTo`). */
export function originOf(event: unknown): Origin | undefined {
  return (event as { origin?: Origin } | undefined)?.origin;
}

/** The address named by a ref or string. */
export function addressOf(ref: RefLike): Address {
  return (typeof ref === 'string' ? ref : ref.address) as Address;
}
