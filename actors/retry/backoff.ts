/**
 * Backoff between retry attempts: a pure function of the retry number, the previous delay and one
 * uniform random number, so the retry chart stays pure and a seeded `Rng` replays the same delays.
 */

/** Exponential growth without jitter, or with full / decorrelated jitter. */
export const Jitter = {
  /** `min(maxMs, initialMs × factor^(n−1))`. */
  None: 'none',
  /** Uniform in `[0, min(maxMs, initialMs × factor^(n−1))]` (AWS "full jitter"). */
  Full: 'full',
  /** Uniform in `[initialMs, min(maxMs, previous × 3)]`, starting from `initialMs` (AWS "decorrelated jitter"). */
  Decorrelated: 'decorrelated',
} as const;
export type Jitter = (typeof Jitter)[keyof typeof Jitter];

/** How long to wait before each retry. */
export type Backoff =
  /** The same delay before every retry. */
  | { readonly kind: 'constant'; readonly delayMs: number }
  /** Delays that grow by `factor` from `initialMs` up to `maxMs`, optionally jittered. */
  | {
      readonly kind: 'exponential';
      readonly initialMs: number;
      readonly maxMs: number;
      /** Growth per retry, ≥ 1 (not used by decorrelated jitter, whose multiplier is 3). @default 2 */
      readonly factor?: number;
      /** @default 'full' */
      readonly jitter?: Jitter;
    };

/** A backoff after defaults and validation. */
export type ResolvedBackoff =
  | { readonly kind: 'constant'; readonly delayMs: number }
  | { readonly kind: 'exponential'; readonly initialMs: number; readonly maxMs: number; readonly factor: number; readonly jitter: Jitter };

export const DEFAULT_BACKOFF_FACTOR = 2;
export const DEFAULT_BACKOFF_JITTER: Jitter = Jitter.Full;
/** Exponential from 100 ms up to 10 s, doubling, with full jitter. */
export const DEFAULT_BACKOFF: ResolvedBackoff = {
  kind: 'exponential', initialMs: 100, maxMs: 10_000, factor: DEFAULT_BACKOFF_FACTOR, jitter: DEFAULT_BACKOFF_JITTER,
};
/** Decorrelated jitter's multiplier of the previous delay. */
export const DECORRELATED_MULTIPLIER = 3;

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));
const bad = (option: string, expected: string, value: unknown): never => {
  throw new RangeError(`option ${option} must be ${expected}, got ${show(value)}`);
};
const isMs = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min;

/** Validate a backoff and fill its defaults; throws `RangeError` naming `backoff.<field>` and its value. */
export function resolveBackoff(backoff: Backoff | undefined): ResolvedBackoff {
  if (backoff === undefined) return DEFAULT_BACKOFF;
  if (backoff === null || typeof backoff !== 'object') return bad('backoff', 'an object', backoff);
  if (backoff.kind === 'constant') {
    if (!isMs(backoff.delayMs, 0)) bad('backoff.delayMs', 'a finite number ≥ 0', backoff.delayMs);
    return { kind: 'constant', delayMs: backoff.delayMs };
  }
  if (backoff.kind === 'exponential') {
    const { initialMs, maxMs } = backoff;
    if (!isMs(initialMs, 1)) bad('backoff.initialMs', 'a finite number ≥ 1', initialMs);
    if (!isMs(maxMs, initialMs)) bad('backoff.maxMs', `a finite number ≥ backoff.initialMs (${initialMs})`, maxMs);
    const factor = backoff.factor ?? DEFAULT_BACKOFF_FACTOR;
    if (!isMs(factor, 1)) bad('backoff.factor', 'a finite number ≥ 1', factor);
    const jitter = backoff.jitter ?? DEFAULT_BACKOFF_JITTER;
    if (jitter !== Jitter.None && jitter !== Jitter.Full && jitter !== Jitter.Decorrelated) {
      bad('backoff.jitter', `one of 'none', 'full', 'decorrelated'`, jitter);
    }
    return { kind: 'exponential', initialMs, maxMs, factor, jitter };
  }
  return bad('backoff.kind', `'constant' or 'exponential'`, (backoff as { kind?: unknown }).kind);
}

/** True when the backoff draws a random number per delay. */
export const isJittered = (b: ResolvedBackoff): boolean => b.kind === 'exponential' && b.jitter !== Jitter.None;

/**
 * The delay before retry number `retry` (1 for the wait after the first attempt).
 * `previousMs` is the delay before the previous retry (ignored for the first), `random` a uniform
 * number in [0, 1). Bounds, for every input: constant → exactly `delayMs`; none → the cap
 * `min(maxMs, initialMs × factor^(retry−1))`; full → `[0, cap]`; decorrelated → `[initialMs, maxMs]`.
 */
export function nextDelayMs(b: ResolvedBackoff, retry: number, previousMs: number, random: number): number {
  if (b.kind === 'constant') return b.delayMs;
  if (b.jitter === Jitter.Decorrelated) {
    const prev = retry <= 1 ? b.initialMs : Math.max(b.initialMs, previousMs);
    const upper = Math.min(b.maxMs, prev * DECORRELATED_MULTIPLIER);
    return Math.min(upper, b.initialMs + Math.floor(random * (upper - b.initialMs + 1)));
  }
  const cap = Math.min(b.maxMs, b.initialMs * b.factor ** (retry - 1));
  return b.jitter === Jitter.Full ? Math.min(cap, Math.floor(random * (cap + 1))) : cap;
}
