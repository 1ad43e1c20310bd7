/**
 * Inspection events: what a running system tells an inspector. Versioned (`v`), plain data.
 * Produced only when the system has an `inspect` sink; when it has none, nothing is built.
 */

export const INSPECTION_VERSION = 1;

interface Base {
  readonly v: typeof INSPECTION_VERSION;
  /** Clock time (ms) on the producing node. */
  readonly at: number;
  readonly node: string;
}

export type InspectionEvent = Base &
  (
    | { readonly kind: 'actor.spawned'; readonly actor: string; readonly actorType: string; readonly parent?: string; readonly machine: unknown }
    | { readonly kind: 'actor.stopped'; readonly actor: string; readonly reason: string }
    | { readonly kind: 'actor.snapshot'; readonly actor: string; readonly value: unknown; readonly context: unknown; readonly status: string }
    | { readonly kind: 'actor.event'; readonly actor: string; readonly event: unknown }
    | { readonly kind: 'actor.failed'; readonly actor: string; readonly error: string }
    | { readonly kind: 'supervision.directive'; readonly supervisor: string; readonly child: string; readonly directive: string; readonly reason: string; readonly delayMs: number }
    | { readonly kind: 'message.sent'; readonly from?: string; readonly to: string; readonly messageType: string; readonly ask: boolean }
    | { readonly kind: 'message.dead'; readonly to?: string; readonly reason: string; readonly messageType?: string }
  );

/** An inspection event before the producer stamps `v`, `at` and `node`. */
export type InspectionPayload = InspectionEvent extends infer E ? (E extends unknown ? Omit<E, 'v' | 'at' | 'node'> : never) : never;

/** Where inspection events go. Must not throw; must be cheap (buffer, don't block). */
export type InspectionSink = (event: InspectionEvent) => void;
