/**
 * `replicateMachine(node, machine)`: any XState machine as Raft's replicated state machine. Events
 * are proposed to the log; every replica feeds the committed events, in log order, to its own actor
 * of the machine — so every replica's chart goes through the same states with the same context.
 *
 * The machine must be deterministic: its transitions may depend only on its context and the events
 * (no `after` delays, no randomness, no clock reads in actions), since replicas run it at different
 * moments.
 */
import { createActor, type Actor, type AnyStateMachine, type EventFromLogic } from 'xstate';
import type { Clock } from '../../framework/clock.ts';
import { AskTimeoutError, NotLeaderError } from '../../framework/errors.ts';
import type { RaftNodeHandle } from './node.ts';
import type { Entry } from './types.ts';

export interface ReplicatedMachine<M extends AnyStateMachine> {
  /** This replica's actor of the machine (read its snapshot; never send to it directly). */
  readonly actor: Actor<M>;
  /** Feed committed entries (wire to the Raft node's `onApply`). */
  apply(entries: readonly Entry[]): void;
  /** The actor's persisted snapshot (XState `getPersistedSnapshot`), for Raft's log compaction. */
  snapshot(): Uint8Array;
  /** Replace the actor with one restored from `snapshot()` bytes (taken on any replica). */
  restore(data: Uint8Array): void;
  /**
   * Propose an event (on the leader); resolves when this replica has applied it. Rejects with
   * `NotLeaderError` on a follower, `AskTimeoutError` after `timeoutMs` (the event may still be
   * applied later: a leader change can commit or drop it).
   */
  send(event: EventFromLogic<M>, timeoutMs?: number): Promise<void>;
}

/** Replicate `machine` through `node`'s log. Create one per replica, before any entry is applied. */
export function replicateMachine<M extends AnyStateMachine>(
  node: () => RaftNodeHandle, machine: M, options: { clock: Clock; input?: unknown; timeoutMs?: number },
): ReplicatedMachine<M> {
  const { clock, input } = options;
  const create = (snapshot?: unknown): Actor<M> => {
    const a = (createActor as (m: AnyStateMachine, o?: object) => Actor<M>)(machine, {
      ...(input === undefined ? {} : { input }), ...(snapshot === undefined ? {} : { snapshot }),
    });
    a.start();
    return a;
  };
  let actor = create();
  const waiting = new Map<string, () => void>();
  let seq = 0;
  return {
    get actor() {
      return actor;
    },
    snapshot: () => new TextEncoder().encode(JSON.stringify(actor.getPersistedSnapshot())),
    restore(data) {
      actor.stop();
      actor = create(JSON.parse(new TextDecoder().decode(data)));
    },
    apply(entries) {
      for (const e of entries) {
        if (e.data.length === 0) continue;
        const { id, event } = JSON.parse(new TextDecoder().decode(e.data)) as { id: string; event: EventFromLogic<M> };
        actor.send(event);
        waiting.get(id)?.();
        waiting.delete(id);
      }
    },
    send(event, timeoutMs = options.timeoutMs ?? 2_000) {
      const n = node();
      if (n.role() !== 'leader') return Promise.reject(new NotLeaderError(n.id, n.leader()));
      const id = `${n.id}#${++seq}`;
      return new Promise<void>((resolve, reject) => {
        const timer = clock.setTimeout(() => {
          waiting.delete(id);
          reject(new AskTimeoutError(n.id, timeoutMs, String((event as { type?: unknown }).type)));
        }, timeoutMs);
        waiting.set(id, () => {
          clock.clearTimeout(timer);
          resolve();
        });
        n.propose(new TextEncoder().encode(JSON.stringify({ id, event })));
      });
    },
  };
}
