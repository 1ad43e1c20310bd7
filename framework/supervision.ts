/**
 * Supervision, OTP style: what a supervisor does when a child fails. `decide` is pure — the
 * supervisor machine (framework/supervisor.ts) calls it and the host carries out the directive.
 */

/** What to do with a failed child. */
export const Directive = {
  /** Replace the child with a fresh one (fresh state, same mailbox; the failing message is dropped). */
  Restart: 'restart',
  /** Keep the child's last good state and go on with the next message. */
  Resume: 'resume',
  /** Stop the child for good; its watchers get `Terminated`. */
  Stop: 'stop',
  /** Fail the supervisor itself, so its own supervisor decides. */
  Escalate: 'escalate',
} as const;
export type Directive = (typeof Directive)[keyof typeof Directive];

/** Which siblings a directive applies to. */
export const Strategy = {
  /** Only the failed child. */
  OneForOne: 'one-for-one',
  /** Every child of the supervisor. */
  OneForAll: 'one-for-all',
  /** The failed child and every child started after it. */
  RestForOne: 'rest-for-one',
} as const;
export type Strategy = (typeof Strategy)[keyof typeof Strategy];

/** Exponential restart backoff: `minMs · factor^(n-1)`, capped at `maxMs`, for the n-th restart in the window. */
export interface BackoffOptions {
  /** @default 0 (restart at once) */
  minMs: number;
  /** @default 10_000 */
  maxMs: number;
  /** @default 2 */
  factor: number;
  /** Fraction of the delay taken away at random (0 = none, 1 = full jitter). @default 0 */
  jitter: number;
}

/** How one child is supervised. */
export interface SupervisionPolicy {
  /** Restart intensity: at most this many restarts… @default 3 */
  maxRestarts: number;
  /** …within this window; one more failure escalates. @default 5_000 */
  withinMs: number;
  backoff: BackoffOptions;
  /** Maps a failure to a directive before intensity is applied. @default always `restart` */
  decider: (error: unknown) => Directive;
}

/** Partial policy as given in options. */
export interface SupervisionOptions {
  maxRestarts?: number;
  withinMs?: number;
  backoff?: Partial<BackoffOptions>;
  decider?: (error: unknown) => Directive;
}

export const DEFAULT_MAX_RESTARTS = 3;
export const DEFAULT_RESTART_WINDOW_MS = 5_000;
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { minMs: 0, maxMs: 10_000, factor: 2, jitter: 0 };

const restartAlways = (): Directive => Directive.Restart;

function checkNumber(name: string, value: number, min: number, max = Number.POSITIVE_INFINITY): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
    throw new RangeError(`supervision option ${name} must be a number in [${min}, ${max}], got ${String(value)}`);
  }
}

/** Fill defaults and validate; throws `RangeError` naming the bad option. */
export function resolvePolicy(options: SupervisionOptions = {}): SupervisionPolicy {
  const policy: SupervisionPolicy = {
    maxRestarts: options.maxRestarts ?? DEFAULT_MAX_RESTARTS,
    withinMs: options.withinMs ?? DEFAULT_RESTART_WINDOW_MS,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    decider: options.decider ?? restartAlways,
  };
  checkNumber('maxRestarts', policy.maxRestarts, 0);
  if (!Number.isInteger(policy.maxRestarts)) throw new RangeError(`supervision option maxRestarts must be an integer, got ${policy.maxRestarts}`);
  checkNumber('withinMs', policy.withinMs, 0);
  checkNumber('backoff.minMs', policy.backoff.minMs, 0);
  checkNumber('backoff.maxMs', policy.backoff.maxMs, policy.backoff.minMs);
  checkNumber('backoff.factor', policy.backoff.factor, 1);
  checkNumber('backoff.jitter', policy.backoff.jitter, 0, 1);
  return policy;
}

/** Restart history of one child: times of the restarts still inside the window. */
export interface RestartStats {
  readonly restartTimesMs: readonly number[];
}

export const NO_RESTARTS: RestartStats = { restartTimesMs: [] };

/** The outcome of one failure. */
export interface Decision {
  readonly directive: Directive;
  /** Stats to keep for the next failure. */
  readonly stats: RestartStats;
  /** Wait this long before restarting (0 unless restarting with backoff); jitter not yet applied. */
  readonly delayMs: number;
  /** Plain-words reason, for logs and the inspector. */
  readonly reason: string;
}

/**
 * Decide what to do with a failed child. Pure: same inputs, same decision.
 * A restart beyond `maxRestarts` within `withinMs` becomes `escalate`.
 */
export function decide(error: unknown, stats: RestartStats, nowMs: number, policy: SupervisionPolicy): Decision {
  let base: Directive;
  try {
    base = policy.decider(error);
  } catch {
    base = Directive.Escalate;
  }
  if (base !== Directive.Restart) {
    return { directive: base, stats, delayMs: 0, reason: `decider chose ${base}` };
  }
  const recent = stats.restartTimesMs.filter((t) => nowMs - t < policy.withinMs);
  if (recent.length >= policy.maxRestarts) {
    return {
      directive: Directive.Escalate,
      stats: { restartTimesMs: recent },
      delayMs: 0,
      reason: `restart intensity exceeded: ${recent.length} restarts within ${policy.withinMs} ms (max ${policy.maxRestarts})`,
    };
  }
  const n = recent.length + 1;
  const { minMs, maxMs, factor } = policy.backoff;
  const delayMs = minMs === 0 ? 0 : Math.min(maxMs, minMs * factor ** (n - 1));
  return {
    directive: Directive.Restart,
    stats: { restartTimesMs: [...recent, nowMs] },
    delayMs,
    reason: `restart ${n} of ${policy.maxRestarts} within ${policy.withinMs} ms`,
  };
}

/** Children a directive applies to, in start order, under `strategy`. */
export function affectedChildren(strategy: Strategy, failed: string, childrenInStartOrder: readonly string[]): string[] {
  switch (strategy) {
    case Strategy.OneForOne:
      return [failed];
    case Strategy.OneForAll:
      return [...childrenInStartOrder];
    case Strategy.RestForOne: {
      const i = childrenInStartOrder.indexOf(failed);
      return i < 0 ? [failed] : childrenInStartOrder.slice(i);
    }
  }
}
