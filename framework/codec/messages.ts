/**
 * Message sets: the protobuf schema of a group of user messages, as generated from a `.proto` file
 * by `npm run proto`. The generated module exports the TypeScript message types and one
 * `messages` set built with {@link defineMessages}; actors name the sets they accept.
 */
import protobuf from 'protobufjs';

/** A user message as actors see it: the protobuf fields plus `type`, the message's short name. */
export interface MessageObject {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** The protobuf types of a group of messages, keyed by short name (the XState event type). */
export interface MessageSet<M extends MessageObject = MessageObject> {
  /** Short name (e.g. `Ping`) → fully qualified protobuf type (e.g. `pingpong.Ping`). */
  readonly types: ReadonlyMap<string, protobuf.Type>;
  /** Phantom field carrying the message union for type inference; never set at run time. */
  readonly __messages?: M;
}

/** The message union of a set. */
export type MessagesOf<S> = S extends MessageSet<infer M> ? M : never;

/**
 * Build a message set from a protobufjs JSON descriptor (what the generator writes).
 * Every message type in the descriptor becomes a member, nested messages included.
 */
export function defineMessages<M extends MessageObject>(descriptor: object): MessageSet<M> {
  const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
  root.resolveAll();
  const types = new Map<string, protobuf.Type>();
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) {
        if (types.has(nested.name)) {
          throw new Error(`message name '${nested.name}' is declared twice in one set; short names must be unique`);
        }
        types.set(nested.name, nested);
      }
      if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(root);
  return { types };
}
