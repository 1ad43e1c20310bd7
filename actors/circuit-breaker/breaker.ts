/**
 * `createCircuitBreaker(options)`: a circuit breaker policy whose state lives in an XState machine
 * (./machine.ts) you can watch. Calls in the closed state only touch a counter and a sliding
 * window; the machine hears about a call only when it matters (a trip, a half-open trial), so the
 * success path costs about what cockatiel's does.
 */
import { createActor, type Actor } from 'xstate';
import { realClock, type Clock } from '../../framework/clock.ts';
import { BrokenCircuitError } from '../../framework/errors.ts';
import { NEVER_ABORTED, type Policy, type Protected } from '../policy/policy.ts';
import { breakerMachine, BreakerState, type BreakerContext, type BreakerStateName, type BreakerTransition } from './machine.ts';
import { countWindow, timeWindow, type OutcomeWindow } from './window.ts';

export const DEFAULT_OPEN_MS = 10_000;
export const DEFAULT_CONSECUTIVE_FAILURES = 5;
export const DEFAULT_HALF_OPEN_TRIALS = 1;
export const DEFAULT_MINIMUM_CALLS = 10;
export const DEFAULT_TIME_BUCKETS = 10;

/** The sliding window a rate rule looks at. */
export type WindowSpec = { kind: 'count'; size: number } | { kind: 'time'; durationMs: number; buckets?: number };

export interface CircuitBreakerOptions {
  /** Name in errors, logs and the inspector. @default 'breaker' */
  name?: string;
  /**
   * Open after this many failures in a row. @default 5 when no other trip rule is given
   */
  consecutiveFailures?: number;
  /** Open when the failure rate over the window reaches `threshold` (0–1), once `minimumCalls` were seen. */
  failureRate?: { threshold: number; window: WindowSpec; minimumCalls?: number };
  /**
   * Calls slower than `durationMs` are slow; open when the slow-call rate over the window reaches
   * `threshold` (0–1), once `minimumCalls` were seen. Slow successes still succeed for the caller.
   */
  slowCall?: { durationMs: number; threshold: number; window: WindowSpec; minimumCalls?: number };
  /** How long the circuit stays open before trial calls. @default 10_000 */
  openMs?: number;
  /** Exponential backoff of the open duration after consecutive trips. @default { factor: 1 } (constant) */
  openBackoff?: { factor: number; maxMs: number };
  /** Trial calls let through in half-open; all must succeed to close. Never more at once. @default 1 */
  halfOpenTrials?: number;
  /** Which errors count as failures. @default every error */
  isFailure?: (error: unknown) => boolean;
  /** @default realClock() */
  clock?: Clock;
  /** Start from a state saved with `breaker.snapshot()`. */
  restore?: BreakerSnapshot;
}

/** Serialisable breaker state. */
export interface BreakerSnapshot {
  readonly state: BreakerStateName;
  readonly context: Omit<BreakerContext, 'openMs' | 'backoffFactor' | 'maxOpenMs' | 'halfOpenTrials'>;
}

/** What listeners hear. */
export type BreakerEventMap = {
  stateChange: { from: BreakerStateName; to: BreakerStateName; reason: string; atMs: number };
  success: { durationMs: number; state: BreakerStateName };
  failure: { error: unknown; durationMs: number; state: BreakerStateName };
  rejected: { state: BreakerStateName; retryAtMs: number | undefined };
};

export interface CircuitBreaker extends Policy {
  readonly kind: 'circuit-breaker';
  readonly name: string;
  /** Current state. */
  readonly state: BreakerStateName;
  /** The hosted XState actor (inspection, tests). */
  readonly actor: Actor<typeof breakerMachine>;
  /** Force open until `reset()`. */
  isolate(): void;
  /** Leave `isolated` (back to closed). */
  reset(): void;
  /** Let every call through and record nothing, until `enable()`. */
  disable(): void;
  enable(): void;
  /** Another node's view (cluster-wide sharing): open until `retryAtMs`, or closed. */
  applyRemote(update: { state: 'open'; retryAtMs: number; reason: string } | { state: 'closed' }): void;
  /**
   * Half-open trials are admitted only while `gate()` is true (cluster-wide sharing: only the node
   * that owns the trial probes). `undefined` removes the gate.
   */
  setTrialGate(gate: (() => boolean) | undefined): void;
  /** Serialisable state, for `restore`. */
  snapshot(): BreakerSnapshot;
  on<K extends keyof BreakerEventMap>(event: K, listener: (e: BreakerEventMap[K]) => void): () => void;
  /** Stop the machine (timers). */
  dispose(): void;
}

interface ResolvedRule { threshold: number; minimumCalls: number; window: OutcomeWindow }

function check(cond: boolean, name: string, value: unknown, expected: string): void {
  if (!cond) throw new RangeError(`circuit breaker option ${name} must be ${expected}, got ${JSON.stringify(value)}`);
}

function resolveWindow(name: string, spec: WindowSpec, clock: Clock): OutcomeWindow {
  check(typeof spec === 'object' && spec !== null, name, spec, "{ kind: 'count', size } or { kind: 'time', durationMs }");
  if (spec.kind === 'count') {
    check(Number.isInteger(spec.size) && spec.size >= 1, `${name}.size`, spec.size, 'an integer ≥ 1');
    return countWindow(spec.size);
  }
  check(spec.kind === 'time', `${name}.kind`, (spec as { kind: unknown }).kind, "'count' or 'time'");
  check(typeof spec.durationMs === 'number' && spec.durationMs > 0, `${name}.durationMs`, spec.durationMs, 'a number > 0');
  const buckets = spec.buckets ?? DEFAULT_TIME_BUCKETS;
  check(Number.isInteger(buckets) && buckets >= 1, `${name}.buckets`, buckets, 'an integer ≥ 1');
  return timeWindow(spec.durationMs, buckets, clock);
}

function resolveRule(name: string, rule: { threshold: number; window: WindowSpec; minimumCalls?: number }, clock: Clock): ResolvedRule {
  check(typeof rule.threshold === 'number' && rule.threshold > 0 && rule.threshold <= 1, `${name}.threshold`, rule.threshold, 'a number in (0, 1]');
  const minimumCalls = rule.minimumCalls ?? DEFAULT_MINIMUM_CALLS;
  check(Number.isInteger(minimumCalls) && minimumCalls >= 1, `${name}.minimumCalls`, minimumCalls, 'an integer ≥ 1');
  return { threshold: rule.threshold, minimumCalls, window: resolveWindow(`${name}.window`, rule.window, clock) };
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const everyError = (): boolean => true;

/**
 * A circuit breaker.
 * @example
 * const breaker = createCircuitBreaker({ name: 'payments', consecutiveFailures: 5, openMs: 10_000 });
 * const receipt = await breaker.execute(({ signal }) => pay(order, { signal }));
 */
export function createCircuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  const name = options.name ?? 'breaker';
  const clock = options.clock ?? realClock();
  const anyRule = options.consecutiveFailures !== undefined || options.failureRate !== undefined || options.slowCall !== undefined;
  const consecutiveLimit = options.consecutiveFailures ?? (anyRule ? Number.POSITIVE_INFINITY : DEFAULT_CONSECUTIVE_FAILURES);
  check(consecutiveLimit === Number.POSITIVE_INFINITY || (Number.isInteger(consecutiveLimit) && consecutiveLimit >= 1),
    'consecutiveFailures', options.consecutiveFailures, 'an integer ≥ 1');
  const rate = options.failureRate ? resolveRule('failureRate', options.failureRate, clock) : undefined;
  const slowRule = options.slowCall ? resolveRule('slowCall', options.slowCall, clock) : undefined;
  const slowMs = options.slowCall?.durationMs ?? Number.POSITIVE_INFINITY;
  if (options.slowCall) check(typeof slowMs === 'number' && slowMs > 0, 'slowCall.durationMs', slowMs, 'a number > 0');
  const openMs = options.openMs ?? DEFAULT_OPEN_MS;
  check(typeof openMs === 'number' && openMs >= 0 && Number.isFinite(openMs), 'openMs', openMs, 'a finite number ≥ 0');
  const backoffFactor = options.openBackoff?.factor ?? 1;
  const maxOpenMs = options.openBackoff?.maxMs ?? openMs;
  check(typeof backoffFactor === 'number' && backoffFactor >= 1, 'openBackoff.factor', backoffFactor, 'a number ≥ 1');
  check(typeof maxOpenMs === 'number' && maxOpenMs >= openMs, 'openBackoff.maxMs', maxOpenMs, `a number ≥ openMs (${openMs})`);
  const halfOpenTrials = options.halfOpenTrials ?? DEFAULT_HALF_OPEN_TRIALS;
  check(Number.isInteger(halfOpenTrials) && halfOpenTrials >= 1, 'halfOpenTrials', halfOpenTrials, 'an integer ≥ 1');
  const isFailure = options.isFailure ?? everyError;
  const timed = slowRule !== undefined;

  const actor = createActor(breakerMachine, {
    clock,
    input: { openMs, backoffFactor, maxOpenMs, halfOpenTrials, ...(options.restore ? { restore: options.restore.context } : {}) },
    ...(options.restore && options.restore.state !== 'closed'
      ? { snapshot: breakerMachine.resolveState({ value: options.restore.state, context: { openMs, backoffFactor, maxOpenMs, halfOpenTrials, ...options.restore.context } }) }
      : {}),
  });

  let state: BreakerStateName = BreakerState.Closed;
  let consecutive = 0;
  let trialsInFlight = 0;
  let trialGate: (() => boolean) | undefined;
  const listeners: Partial<Record<keyof BreakerEventMap, Set<(e: never) => void>>> = {};
  const fire = <K extends keyof BreakerEventMap>(event: K, payload: BreakerEventMap[K]): void => {
    const set = listeners[event] as Set<(e: BreakerEventMap[K]) => void> | undefined;
    if (set) for (const l of set) l(payload);
  };

  actor.on('breaker.transition', (t: BreakerTransition) => {
    const from = state;
    state = t.to;
    trialsInFlight = 0;
    if (t.to === BreakerState.Closed) {
      consecutive = 0;
      rate?.window.reset();
      slowRule?.window.reset();
    }
    fire('stateChange', { from, to: t.to, reason: t.reason, atMs: clock.now() });
  });
  actor.start();
  state = actor.getSnapshot().value as BreakerStateName;

  /** Record a closed-state outcome; trip when a rule says so. */
  const recordClosed = (failed: boolean, durationMs: number): void => {
    const slow = durationMs > slowMs;
    consecutive = failed ? consecutive + 1 : 0;
    let reason: string | undefined;
    if (consecutive >= consecutiveLimit) reason = `${consecutive} consecutive failures`;
    if (rate) {
      rate.window.record(failed, false);
      const t = rate.window.totals();
      if (reason === undefined && t.calls >= rate.minimumCalls && t.failures / t.calls >= rate.threshold) {
        reason = `failure rate ${Math.round((100 * t.failures) / t.calls)}% over ${t.calls} calls (threshold ${Math.round(rate.threshold * 100)}%)`;
      }
    }
    if (slowRule) {
      slowRule.window.record(false, slow);
      const t = slowRule.window.totals();
      if (reason === undefined && t.calls >= slowRule.minimumCalls && t.slow / t.calls >= slowRule.threshold) {
        reason = `slow-call rate ${Math.round((100 * t.slow) / t.calls)}% over ${t.calls} calls (slower than ${slowMs} ms)`;
      }
    }
    if (reason !== undefined) actor.send({ type: 'TRIP', nowMs: clock.now(), reason });
  };

  const reject = (): Promise<never> => {
    const retryAtMs = state === BreakerState.Isolated ? undefined : actor.getSnapshot().context.retryAtMs;
    if (listeners.rejected) fire('rejected', { state, retryAtMs });
    // A fast-fail needs no stack trace, and capturing one is most of its cost.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return Promise.reject(new BrokenCircuitError(name, state === BreakerState.HalfOpen ? 'half-open' : state, retryAtMs));
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
  };

  async function runClosed<T>(fn: Protected<T>, signal: AbortSignal): Promise<T> {
    const started = timed ? clock.now() : 0;
    try {
      const result = await fn({ signal });
      const durationMs = timed ? clock.now() - started : 0;
      if (state === BreakerState.Closed) recordClosed(false, durationMs);
      if (listeners.success) fire('success', { durationMs, state });
      return result;
    } catch (error) {
      const durationMs = timed ? clock.now() - started : 0;
      if (isFailure(error)) {
        if (state === BreakerState.Closed) recordClosed(true, durationMs);
        if (listeners.failure) fire('failure', { error, durationMs, state });
      }
      throw error;
    }
  }

  async function runTrial<T>(fn: Protected<T>, signal: AbortSignal): Promise<T> {
    trialsInFlight++;
    const started = clock.now();
    try {
      const result = await fn({ signal });
      if (state === BreakerState.HalfOpen) actor.send({ type: 'TRIAL_SUCCEEDED', nowMs: clock.now() });
      fire('success', { durationMs: clock.now() - started, state });
      return result;
    } catch (error) {
      if (state === BreakerState.HalfOpen) {
        if (isFailure(error)) actor.send({ type: 'TRIAL_FAILED', nowMs: clock.now(), reason: describe(error) });
        else actor.send({ type: 'TRIAL_SUCCEEDED', nowMs: clock.now() });
      }
      if (isFailure(error)) fire('failure', { error, durationMs: clock.now() - started, state });
      throw error;
    }
  }

  const breaker: CircuitBreaker = {
    kind: 'circuit-breaker',
    name,
    get state() { return state; },
    actor,
    execute<T>(fn: Protected<T>, signal?: AbortSignal): Promise<T> {
      switch (state) {
        case BreakerState.Closed:
          return runClosed(fn, signal ?? NEVER_ABORTED);
        case BreakerState.Disabled:
          return Promise.resolve().then(() => fn({ signal: signal ?? NEVER_ABORTED }));
        case BreakerState.HalfOpen:
          // single-threaded: check-and-increment is atomic, so never more than halfOpenTrials at once
          if (trialsInFlight >= halfOpenTrials || (trialGate !== undefined && !trialGate())) return reject();
          return runTrial(fn, signal ?? NEVER_ABORTED);
        default:
          return reject();
      }
    },
    isolate: () => void actor.send({ type: 'ISOLATE', nowMs: clock.now() }),
    reset: () => void actor.send({ type: 'RESET', nowMs: clock.now() }),
    disable: () => void actor.send({ type: 'DISABLE', nowMs: clock.now() }),
    enable: () => void actor.send({ type: 'ENABLE', nowMs: clock.now() }),
    applyRemote(update) {
      if (update.state === 'open') actor.send({ type: 'REMOTE_OPEN', nowMs: clock.now(), retryAtMs: update.retryAtMs, reason: update.reason });
      else actor.send({ type: 'REMOTE_CLOSE', nowMs: clock.now() });
    },
    setTrialGate(gate) {
      trialGate = gate;
    },
    snapshot() {
      const { openMs: _o, backoffFactor: _b, maxOpenMs: _m, halfOpenTrials: _h, ...context } = actor.getSnapshot().context;
      return { state, context };
    },
    on(event, listener) {
      const set = (listeners[event] ??= new Set()) as Set<typeof listener>;
      set.add(listener);
      return () => set.delete(listener);
    },
    dispose: () => actor.stop(),
  };
  return breaker;
}
