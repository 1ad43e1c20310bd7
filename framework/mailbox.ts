/**
 * A bounded two-queue mailbox: system messages are always taken before user messages, and only
 * user messages count against the capacity (a full mailbox must still accept a stop or a watch).
 */

/** A FIFO queue with O(1) push and shift. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number { return this.items.length - this.head; }
  push(item: T): void { this.items.push(item); }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

/**
 * A bounded two-queue mailbox. `pushUser` returns false when the user queue is at capacity (the
 * caller dead-letters or rejects); system messages are always accepted and always taken first.
 */
export class Mailbox<S, U> {
  private readonly system = new Fifo<S>();
  private readonly user = new Fifo<U>();
  constructor(readonly capacity: number) {}
  get size(): number { return this.system.length + this.user.length; }
  get userSize(): number { return this.user.length; }
  pushSystem(message: S): void { this.system.push(message); }
  pushUser(message: U): boolean {
    if (this.user.length >= this.capacity) return false;
    this.user.push(message);
    return true;
  }
  /** Next system message, if any (take these before any user message). */
  shiftSystem(): S | undefined { return this.system.shift(); }
  /** Next user message, if any. */
  shiftUser(): U | undefined { return this.user.shift(); }
  /** Remove and return everything left (for dead-lettering on stop). */
  drain(): { system: S[]; user: U[] } {
    return { system: this.system.drain(), user: this.user.drain() };
  }
}

export function createMailbox<S, U>(capacity: number): Mailbox<S, U> {
  return new Mailbox<S, U>(capacity);
}
