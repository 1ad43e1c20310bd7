/**
 * Retry budget: a token bucket shared by every retry policy that calls one target, after
 * Finagle's `RetryBudget`. Each first attempt deposits `ratio` tokens, each retry withdraws one;
 * tokens expire after `windowMs`, and a small reserve (`minRetriesPerSecond × windowMs`) lets a
 * quiet client retry at all. So retries add at most `ratio` extra load (plus the reserve) however
 * many callers retry at once: a failing dependency is not hammered by a retry storm.
 */
import { realClock, type Clock } from '../../framework/clock.ts';

export const DEFAULT_RETRY_BUDGET_NAME = 'retry';
/** Retries may add at most 10 % to the load of first attempts. */
export const DEFAULT_RETRY_BUDGET_RATIO = 0.1;
/** A floor that lets a low-traffic client retry (Finagle's default). */
export const DEFAULT_RETRY_BUDGET_MIN_RETRIES_PER_SECOND = 10;
/** How long deposits and withdrawals count (Finagle's default TTL). */
export const DEFAULT_RETRY_BUDGET_WINDOW_MS = 10_000;
/** The window is kept as this many slots; a slot's tokens expire together. */
export const RETRY_BUDGET_SLOTS = 10;
/**
 * Tokens are kept as integers in millionths, so ten deposits of 0.1 make exactly one retry.
 * `ratio` is therefore honoured to 6 decimal places (rounded down).
 */
const SCALE = 1_000_000;

/** Options of {@link createRetryBudget}. */
export interface RetryBudgetOptions {
  /** Name of the target, for errors and logs. @default 'retry' */
  name?: string;
  /** Retries allowed per first attempt, a finite number ≥ 0 (0.1 = retries add at most 10 %). @default 0.1 */
  ratio?: number;
  /** Retries allowed per second even without traffic, a finite number ≥ 0. @default 10 */
  minRetriesPerSecond?: number;
  /** How long a deposit or withdrawal counts, an integer ≥ 10 ms. @default 10_000 */
  windowMs?: number;
  /** @default realClock() */
  clock?: Clock;
}

/** {@link RetryBudgetOptions} after defaults and validation. */
export interface ResolvedRetryBudgetOptions {
  readonly name: string;
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
  readonly clock: Clock;
}

/**
 * A retry budget. Guarantee: at every moment, the retries withdrawn in the current window (the last
 * `windowMs`, in slots of `windowMs / 10`) are at most `ratio` × the first attempts deposited in it
 * plus `minRetriesPerSecond × windowMs / 1000`. It does NOT guarantee anything across processes —
 * share one budget object per target within a process ({@link createRetryBudgets}).
 */
export interface RetryBudget {
  readonly name: string;
  /** Record a first attempt: adds `ratio` tokens. */
  deposit(): void;
  /** Take one token for a retry; false (and nothing taken) when fewer than one is left. */
  tryWithdraw(): boolean;
  /**
   * Take one token unconditionally, for a retry that `available()` allowed a moment ago (the
   * balance may dip below zero if the window moved in between; later retries then wait longer).
   */
  withdraw(): void;
  /** Whole retries the budget would allow right now (≥ 0). */
  available(): number;
}

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : String(v));
const bad = (option: string, expected: string, value: unknown): never => {
  throw new RangeError(`option ${option} must be ${expected}, got ${show(value)}`);
};

/** Fill defaults and validate; throws `RangeError` naming the bad option and its value. */
export function resolveRetryBudgetOptions(options: RetryBudgetOptions = {}): ResolvedRetryBudgetOptions {
  const name = options.name ?? DEFAULT_RETRY_BUDGET_NAME;
  if (typeof name !== 'string' || name.length === 0) bad('name', 'a non-empty string', name);
  const ratio = options.ratio ?? DEFAULT_RETRY_BUDGET_RATIO;
  if (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio < 0) bad('ratio', 'a finite number ≥ 0', ratio);
  const minRetriesPerSecond = options.minRetriesPerSecond ?? DEFAULT_RETRY_BUDGET_MIN_RETRIES_PER_SECOND;
  if (typeof minRetriesPerSecond !== 'number' || !Number.isFinite(minRetriesPerSecond) || minRetriesPerSecond < 0) {
    bad('minRetriesPerSecond', 'a finite number ≥ 0', minRetriesPerSecond);
  }
  const windowMs = options.windowMs ?? DEFAULT_RETRY_BUDGET_WINDOW_MS;
  if (typeof windowMs !== 'number' || !Number.isInteger(windowMs) || windowMs < RETRY_BUDGET_SLOTS) {
    bad('windowMs', `an integer ≥ ${RETRY_BUDGET_SLOTS}`, windowMs);
  }
  return { name, ratio, minRetriesPerSecond, windowMs, clock: options.clock ?? realClock() };
}

class TokenRetryBudget implements RetryBudget {
  readonly name: string;
  private readonly clock: Clock;
  private readonly slotMs: number;
  private readonly depositUnits: number;
  private readonly reserveUnits: number;
  /** Net units (deposits − withdrawals) per slot of the window, a ring indexed by slot number. */
  private readonly slots = new Array<number>(RETRY_BUDGET_SLOTS).fill(0);
  /** Sum of `slots`. */
  private sum = 0;
  /** Slot number (time / slotMs) the ring was last advanced to. */
  private current: number;

  constructor(o: ResolvedRetryBudgetOptions) {
    this.name = o.name;
    this.clock = o.clock;
    this.slotMs = o.windowMs / RETRY_BUDGET_SLOTS;
    this.depositUnits = Math.floor(o.ratio * SCALE);
    this.reserveUnits = Math.floor(o.minRetriesPerSecond * (o.windowMs / 1000) * SCALE);
    this.current = Math.floor(o.clock.now() / this.slotMs);
  }

  deposit(): void {
    this.add(this.depositUnits);
  }

  tryWithdraw(): boolean {
    if (this.units() < SCALE) return false;
    this.add(-SCALE);
    return true;
  }

  withdraw(): void {
    this.add(-SCALE);
  }

  available(): number {
    return Math.max(0, Math.floor(this.units() / SCALE));
  }

  private units(): number {
    this.advance();
    return this.reserveUnits + this.sum;
  }

  private add(units: number): void {
    this.advance();
    this.slots[this.current % RETRY_BUDGET_SLOTS] = this.slots[this.current % RETRY_BUDGET_SLOTS]! + units;
    this.sum += units;
  }

  /** Expire the slots that have left the window. */
  private advance(): void {
    const now = Math.floor(this.clock.now() / this.slotMs);
    if (now <= this.current) return;
    const expired = Math.min(now - this.current, RETRY_BUDGET_SLOTS);
    for (let i = 1; i <= expired; i++) {
      const k = (this.current + i) % RETRY_BUDGET_SLOTS;
      this.sum -= this.slots[k]!;
      this.slots[k] = 0;
    }
    this.current = now;
  }
}

/**
 * Create a retry budget. Share it between every retry policy that calls the same target.
 * @example
 * const budget = createRetryBudget({ name: 'payments', ratio: 0.1 });
 * const retry = createRetry({ maxAttempts: 3, budget });
 */
export function createRetryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  return new TokenRetryBudget(resolveRetryBudgetOptions(options));
}

/** One retry budget per named target, created on first use. */
export interface RetryBudgetRegistry {
  /** The budget of `target` (named after it), created on first use. */
  for(target: string): RetryBudget;
  /** Targets that have a budget so far. */
  targets(): string[];
}

/**
 * A registry of retry budgets, one per target, all with the same options (validated here).
 * @example
 * const budgets = createRetryBudgets({ ratio: 0.1, clock });
 * const retry = createRetry({ maxAttempts: 4, budget: budgets.for('payments') });
 */
export function createRetryBudgets(defaults: Omit<RetryBudgetOptions, 'name'> = {}): RetryBudgetRegistry {
  resolveRetryBudgetOptions(defaults);
  const budgets = new Map<string, RetryBudget>();
  return {
    for(target: string): RetryBudget {
      let b = budgets.get(target);
      if (b === undefined) {
        b = createRetryBudget({ ...defaults, name: target });
        budgets.set(target, b);
      }
      return b;
    },
    targets: () => [...budgets.keys()],
  };
}
