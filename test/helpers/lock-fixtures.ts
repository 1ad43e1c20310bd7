/**
 * Fixtures of the distributed-lock tests: a clock that can be frozen (a paused or killed process:
 * its timers do not fire until it is thawed) and a store wrapper that injects faults between one
 * client and its store (unreachable; the reply to a create lost after it was applied) and counts
 * calls.
 */
import type { Clock, TimerId } from '../../framework/clock.ts';
import { StoreUnavailableError } from '../../framework/errors.ts';
import type { KvStore } from '../../framework/store/store.ts';

/** A clock whose timers can be held (a paused process) and later released. */
export interface FreezableClock extends Clock {
  freeze(): void;
  /** Release the held timers (each fires at once, late) and run normally again. */
  thaw(): void;
  readonly frozen: boolean;
}

export function freezableClock(base: Clock): FreezableClock {
  let frozen = false;
  const held: Array<() => void> = [];
  return {
    now: () => base.now(),
    setTimeout: (fn, delayMs): TimerId => base.setTimeout(() => {
      if (frozen) held.push(fn);
      else fn();
    }, delayMs),
    clearTimeout: (id) => base.clearTimeout(id),
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      for (const fn of held.splice(0)) fn();
    },
    get frozen() {
      return frozen;
    },
  };
}

/** What the faulty link between one client and the store does. */
export type LinkMode =
  /** Calls go through. */
  | 'ok'
  /** Every call fails with a retryable `StoreUnavailableError` without reaching the store. */
  | 'down'
  /** Every call waits for ever (a store that stopped answering; no timeout below the lock). */
  | 'hang'
  /** The next `create` of a key ending in `suffix` is applied, then its reply is lost; then back to `ok`. */
  | { loseCreateReply: string; then: 'ok' | 'down' };

export interface FaultyStore extends KvStore {
  mode: LinkMode;
  /** Calls made through this wrapper, by operation and key suffix (`create:.holder`). */
  readonly calls: Map<string, number>;
}

/** Wrap `store` for one client; `close()` does not close the shared store. */
export function faultyStore(store: KvStore): FaultyStore {
  const calls = new Map<string, number>();
  const count = (op: string, key: string): void => {
    const suffix = key.endsWith('.holder') ? '.holder' : key.includes('.q.') ? '.q' : '';
    calls.set(`${op}:${suffix}`, (calls.get(`${op}:${suffix}`) ?? 0) + 1);
  };
  const down = (): never => {
    throw new StoreUnavailableError(`${store.kind}:faulty`, 'link down (test)');
  };
  const hang = (): Promise<never> => new Promise<never>(() => undefined);
  const w: FaultyStore = {
    kind: store.kind,
    mode: 'ok',
    calls,
    async get(key) {
      count('get', key);
      if (w.mode === 'down') down();
      if (w.mode === 'hang') return hang();
      return store.get(key);
    },
    async create(key, value, opts) {
      count('create', key);
      const m = w.mode;
      if (m === 'down') down();
      if (m === 'hang') return hang();
      if (typeof m === 'object' && key.endsWith(m.loseCreateReply)) {
        w.mode = m.then;
        await store.create(key, value, opts);
        throw new StoreUnavailableError(`${store.kind}:faulty`, 'reply lost (test)');
      }
      return store.create(key, value, opts);
    },
    async update(key, value, rev) {
      count('update', key);
      if (w.mode === 'down') down();
      if (w.mode === 'hang') return hang();
      return store.update(key, value, rev);
    },
    async put(key, value) {
      count('put', key);
      if (w.mode === 'down') down();
      return store.put(key, value);
    },
    async delete(key, opts) {
      count('delete', key);
      if (w.mode === 'down') down();
      if (w.mode === 'hang') return hang();
      return store.delete(key, opts);
    },
    async watch(pattern, onEntry, opts) {
      count('watch', '');
      if (w.mode === 'down') down();
      const inner = await store.watch(pattern, (e) => {
        if (w.mode !== 'down') onEntry(e); // a cut link delivers nothing
      }, opts);
      let stopped = false;
      return {
        stop: () => {
          if (!stopped) count('unwatch', '');
          stopped = true;
          inner.stop();
        },
      };
    },
    async keys(pattern) {
      if (w.mode === 'down') down();
      return store.keys(pattern);
    },
    async close() {
      // the store is shared by the test's clients; the backend closes it
    },
  };
  return w;
}
