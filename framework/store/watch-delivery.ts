/**
 * How a store hands entries to one watch, as the `KvStore.watch` contract requires: asynchronously
 * (never inside the call that wrote them), in the order offered, a `delete` only for a key whose
 * value this watch has delivered, an exception of `onEntry` reported to `onError` without ending
 * the watch, and nothing after `stop()`. Shared by the stores that deliver from their own state
 * (memory, Raft) rather than from a server's consumer.
 */
import type { KvEntry, KvWatch } from './store.ts';

/** A running watch that the store feeds. */
export interface WatchDelivery extends KvWatch {
  /** The pattern the watch was opened with (the store decides what matches). */
  readonly pattern: string;
  /**
   * Queue an entry for delivery. Entries at or below the last revision offered are dropped, so a
   * store may offer the same revisions again (a replica re-applying its log after a restart).
   */
  offer(entry: KvEntry): void;
  /** End the watch because the store lost it: `onError(err)`, then as `stop()`. */
  lose(err: Error): void;
}

/**
 * Start delivering `initial` (sorted by revision), then whatever is offered.
 * `onStop` is called once, by the first `stop()`.
 */
export function createWatchDelivery(
  pattern: string,
  initial: readonly KvEntry[],
  onEntry: (entry: KvEntry) => void,
  onError: ((err: Error) => void) | undefined,
  onStop: (w: WatchDelivery) => void,
): WatchDelivery {
  const queue: KvEntry[] = [];
  const seen = new Set<string>();
  let lastOffered = 0;
  let scheduled = false;
  let stopped = false;

  const reportError = (err: unknown): void => {
    try {
      onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // A failing error handler must not stop delivery.
    }
  };
  const drain = (): void => {
    scheduled = false;
    while (!stopped && queue.length > 0) {
      const entry = queue.shift()!;
      if (entry.operation === 'put') {
        seen.add(entry.key);
      } else if (!seen.delete(entry.key)) {
        continue; // this watch never showed the key: its deletion is not news here
      }
      try {
        onEntry({ ...entry, value: new Uint8Array(entry.value) }); // a copy: the handler may keep or change it
      } catch (err) {
        reportError(err);
      }
    }
  };
  const schedule = (): void => {
    if (scheduled || queue.length === 0) return;
    scheduled = true;
    queueMicrotask(drain);
  };
  const delivery: WatchDelivery = {
    pattern,
    offer(entry) {
      if (stopped || entry.revision <= lastOffered) return;
      lastOffered = entry.revision;
      queue.push(entry);
      schedule();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      queue.length = 0;
      onStop(delivery);
    },
    lose(err) {
      if (stopped) return;
      delivery.stop();
      reportError(err);
    },
  };
  for (const entry of initial) delivery.offer(entry);
  return delivery;
}
