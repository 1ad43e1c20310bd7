/**
 * One lock client's view of one lock (`LockView`): who holds it and who waits, kept by one watch
 * on `<prefix>.<name>.>` and by `get`s of entries that fell silent (the `KvStore` contract does not
 * deliver expiry to watchers). It tells the client's first waiting lease when its turn has come.
 */
import type { Actor } from 'xstate';
import type { Clock, TimerId } from '../../framework/clock.ts';
import type { KvEntry, KvStore, KvWatch } from '../../framework/store/store.ts';
import type { leaseMachine } from './machine.ts';
import { decodeRecord } from './record.ts';

/** A client stops watching a lock none of its callers has waited for this long. */
export const LOCK_VIEW_IDLE_MS = 60_000;

/** What a view needs from its lock client. */
export interface LockViewHost {
  readonly clock: Clock;
  readonly kv: KvStore;
  holderKey(name: string): string;
  lockPattern(name: string): string;
  queuePrefix(name: string): string;
  queueKey(name: string, leaseId: string): string;
  /** The holder key was seen (or found missing): returns whether the lock is free. */
  noteHolder(name: string, entry: KvEntry | undefined): boolean;
  /** The view has been idle for {@link LOCK_VIEW_IDLE_MS}: stop and forget it. */
  dropView(name: string, view: LockView): void;
}

/** A lease waiting in the queue, as the view sees it. */
export interface Waiter {
  readonly leaseId: string;
  readonly ttlMs: number;
  readonly actor: Actor<typeof leaseMachine>;
}

/** See the module docs. Created by the client on the first wait for a lock. */
export class LockView {
  private holder: { revision: number; seenAtMs: number } | undefined;
  private readonly queue = new Map<string, { ticket: number; revision: number; seenAtMs: number }>();
  /** Highest revision seen per key, deletes included, so that late reads never undo newer news. */
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Set<Waiter>();
  private watch: KvWatch | undefined;
  private ready = false;
  private stopped = false;
  private pollTimer: TimerId | undefined;
  private idleTimer: TimerId | undefined;
  private polling = false;

  constructor(private readonly client: LockViewHost, private readonly name: string, private readonly pollIntervalMs: number) {
    void this.open();
  }

  /** The lock is held or has waiters, as far as this view knows: a newcomer should queue. */
  contended(): boolean {
    return this.holder !== undefined || this.queue.size > 0;
  }

  addWaiter(rec: Waiter): void {
    this.waiters.add(rec);
    if (this.idleTimer !== undefined) this.client.clock.clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.schedulePoll();
  }

  removeWaiter(rec: Waiter): void {
    this.waiters.delete(rec);
    if (this.waiters.size > 0 || this.idleTimer !== undefined || this.stopped) return;
    // Keep watching for a while (a client that waited once is likely to again, and the view keeps
    // it from overtaking other waiters), then let the lock go quiet.
    this.idleTimer = this.client.clock.setTimeout(() => {
      this.idleTimer = undefined;
      if (this.waiters.size === 0) this.client.dropView(this.name, this);
    }, LOCK_VIEW_IDLE_MS);
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
    if (this.pollTimer !== undefined) this.client.clock.clearTimeout(this.pollTimer);
    if (this.idleTimer !== undefined) this.client.clock.clearTimeout(this.idleTimer);
  }

  private async open(): Promise<void> {
    const kv = this.client.kv;
    const holderKey = this.client.holderKey(this.name);
    const queuePrefix = this.client.queuePrefix(this.name);
    for (;;) {
      if (this.stopped) return;
      try {
        this.watch = await kv.watch(this.client.lockPattern(this.name), (e) => this.apply(e), {
          onError: () => undefined, // the polls below cover what a failing watch misses
        });
        if (this.stopped) {
          this.watch.stop();
          return;
        }
        // The watch's first entries come asynchronously with no end marker: read the current state
        // too, so that the view is complete before anyone is told it is their turn.
        const [holder, keys] = await Promise.all([kv.get(holderKey), kv.keys(`${queuePrefix}>`)]);
        if (holder) this.apply(holder);
        const entries = await Promise.all(keys.map((k) => kv.get(k)));
        for (const e of entries) if (e) this.apply(e);
        this.ready = true;
        this.evaluate();
        return;
      } catch {
        this.watch?.stop();
        this.watch = undefined;
        await new Promise<void>((resolve) => this.client.clock.setTimeout(resolve, this.pollIntervalMs));
      }
    }
  }

  private apply(e: KvEntry): void {
    const known = this.seen.get(e.key);
    if (known !== undefined && known >= e.revision) return;
    this.seen.set(e.key, e.revision);
    // When the entry was written, as far as this client can tell: the store's timestamp when it is
    // not ahead of our clock (a clock behind only makes us check earlier, with a harmless `get`).
    const now = Math.min(this.client.clock.now(), e.createdMs ?? Infinity);
    const holderKey = this.client.holderKey(this.name);
    if (e.key === holderKey) {
      const free = this.client.noteHolder(this.name, e.operation === 'put' ? e : undefined);
      this.holder = free ? undefined : { revision: e.revision, seenAtMs: now };
    } else if (e.key.startsWith(this.client.queuePrefix(this.name))) {
      if (e.operation === 'put') this.queue.set(e.key, { ticket: decodeRecord(e.value)?.token ?? e.revision, revision: e.revision, seenAtMs: now });
      else this.queue.delete(e.key);
    }
    this.evaluate();
  }

  /** An entry read as missing by a poll: gone, unless something newer shows up. */
  private forget(key: string): void {
    if (key === this.client.holderKey(this.name)) {
      this.holder = undefined;
      this.client.noteHolder(this.name, undefined);
    }
    else this.queue.delete(key);
  }

  /** Tell the first waiter in line, if it is one of ours and the lock looks free, to take it. */
  evaluate(): void {
    if (!this.ready || this.stopped || this.holder !== undefined || this.waiters.size === 0) return;
    let mine: Waiter | undefined;
    let myTicket = Infinity;
    for (const rec of this.waiters) {
      const t = rec.actor.getSnapshot().context.ticket;
      if (t !== undefined && t < myTicket) {
        mine = rec;
        myTicket = t;
      }
    }
    if (!mine) return;
    for (const q of this.queue.values()) if (q.ticket < myTicket) return; // someone is ahead
    if (mine.actor.getSnapshot().matches({ pending: { waiting: 'queued' } })) mine.actor.send({ type: 'TURN' });
  }

  private schedulePoll(): void {
    if (this.pollTimer !== undefined || this.stopped) return;
    this.pollTimer = this.client.clock.setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll().finally(() => {
        if (this.waiters.size > 0) this.schedulePoll();
      });
    }, this.pollIntervalMs);
  }

  /** `get` the holder and the waiters ahead of ours that have been silent for a TTL. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped || !this.ready) return;
    this.polling = true;
    try {
      const now = this.client.clock.now();
      let ttlMs = Infinity;
      let myFirst = Infinity;
      for (const rec of this.waiters) {
        ttlMs = Math.min(ttlMs, rec.ttlMs);
        const t = rec.actor.getSnapshot().context.ticket;
        if (t !== undefined) myFirst = Math.min(myFirst, t);
      }
      if (!Number.isFinite(ttlMs)) return;
      const suspects: string[] = [];
      if (this.holder && now - this.holder.seenAtMs >= ttlMs) suspects.push(this.client.holderKey(this.name));
      for (const [key, q] of this.queue) if (q.ticket < myFirst && now - q.seenAtMs >= ttlMs) suspects.push(key);
      await Promise.all(suspects.map(async (key) => {
        try {
          const e = await this.client.kv.get(key);
          if (e === undefined) this.forget(key);
          else this.apply(e);
        } catch {
          // unreachable: try again next poll
        }
      }));
      this.evaluate();
    } finally {
      this.polling = false;
    }
  }
}
