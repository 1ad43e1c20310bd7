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

export interface Mailbox<S, U> {
  /** Always accepted. */
  pushSystem(message: S): void;
  /** False when the user queue is at capacity (the caller dead-letters or rejects). */
  pushUser(message: U): boolean;
  /** Next system message, if any (take these before any user message). */
  shiftSystem(): S | undefined;
  /** Next user message, if any. */
  shiftUser(): U | undefined;
  readonly size: number;
  readonly userSize: number;
  readonly capacity: number;
  /** Remove and return everything left (for dead-lettering on stop). */
  drain(): { system: S[]; user: U[] };
}

export function createMailbox<S, U>(capacity: number): Mailbox<S, U> {
  const system = new Fifo<S>();
  const user = new Fifo<U>();
  return {
    capacity,
    get size() { return system.length + user.length; },
    get userSize() { return user.length; },
    pushSystem: (m) => system.push(m),
    pushUser: (m) => {
      if (user.length >= capacity) return false;
      user.push(m);
      return true;
    },
    shiftSystem: () => system.shift(),
    shiftUser: () => user.shift(),
    drain: () => ({ system: system.drain(), user: user.drain() }),
  };
}
