/**
 * Time and randomness. Framework and pattern code take both from here, injected through the
 * system options, so that one time source drives machine `after` delays, supervision windows,
 * ask timeouts and election timers — real in production, simulated in tests and the simulator.
 */
import { SimulatedClock as XStateSimulatedClock } from 'xstate';

/** Opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerId = unknown;

/**
 * A time source. Structurally compatible with XState's `Clock`, so the same object is passed to
 * every hosted XState actor (`createActor(machine, { clock })`).
 */
export interface Clock {
  /** Milliseconds since an arbitrary epoch; monotonic for the simulated clock. */
  now(): number;
  setTimeout(fn: () => void, delayMs: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** A clock you drive by hand: tests and the simulator. */
export interface ManualClock extends Clock {
  /** Advance time by `ms`, firing every timer that falls due, in order. */
  increment(ms: number): void;
  /** Jump to the absolute time `ms` (not backwards), firing due timers. */
  set(ms: number): void;
}

/** The wall clock. The only place in the framework allowed to touch real timers. */
export function realClock(): Clock {
  return {
    now: () => Date.now(), // real clock
    setTimeout: (fn, delayMs) => setTimeout(fn, delayMs), // real clock
    clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout), // real clock
  };
}

/**
 * A simulated clock (XState's `SimulatedClock`): time only moves when `increment`/`set` is called.
 * @example
 * const clock = simulatedClock();
 * const system = createSystem({ cluster: 't', clock });
 * clock.increment(1_000); // fires every timer due within the next second
 */
export function simulatedClock(startMs = 0): ManualClock {
  const c = new XStateSimulatedClock();
  if (startMs > 0) c.set(startMs);
  return c as ManualClock;
}

/** Seeded randomness. Same seed, same sequence, on every machine. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** A lowercase hex string of `length` characters (ids, node names). */
  hex(length: number): string;
  /** An independent generator derived from this one (for a child component). */
  fork(): Rng;
  /** The seed this generator was created with. */
  readonly seed: number;
}

/**
 * A small fast PRNG (sfc32 seeded through splitmix32). Not cryptographic.
 * @example
 * const rng = createRng(42); rng.int(6); // the same value on every run
 */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const next32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next32();
  const rng: Rng = {
    seed,
    next: () => next32() / 4294967296,
    int: (n) => Math.floor((next32() / 4294967296) * n),
    hex: (length) => {
      let out = '';
      while (out.length < length) out += next32().toString(16).padStart(8, '0');
      return out.slice(0, length);
    },
    fork: () => createRng(next32()),
  };
  return rng;
}

/**
 * A seed for production use, where determinism is not wanted: taken once from the wall clock and
 * the process id. Simulations and tests pass their own seed instead.
 */
export function entropySeed(): number {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(performance.now() * 1000)) >>> 0; // real clock
}
