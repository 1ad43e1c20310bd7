/**
 * What `troupe sim <name>` needs of a simulation scenario: its module exports
 * `run(options: ScenarioRunOptions): Promise<ScenarioRun>`, which runs one seed exactly as the
 * scenario's test does (so the command a failing test prints replays that run), and reports whether
 * every check held. It may also reject with a `SimulationFailure` (an invariant broke mid-run).
 */
import type { CheckResult } from './linearizability.ts';

/** Options of a scenario's `run`. */
export interface ScenarioRunOptions {
  seed: number;
  /** Simulated time with clients and faults. @default the scenario's test's */
  durationMs?: number;
  /** Fault kinds to apply, for scenarios that take them (others reject an unknown kind or ignore it). */
  faults?: readonly string[];
  /** The command line's flags, for options only one scenario has (e.g. ecommerce's `--inventory`). */
  argv?: readonly string[];
}

/** One seed's outcome. */
export interface ScenarioRun {
  readonly seed: number;
  /** Every check of the scenario held. */
  readonly ok: boolean;
  /** One line: what ran and what was checked (operations, faults, …). */
  readonly summary: string;
  /** Why it failed, when `!ok` (a few lines). */
  readonly failure?: string;
  /** The command that replays this seed. */
  readonly replay: string;
  /** A full report (several lines), for scenarios that make one. */
  readonly report?: string;
}

/** A run whose verdict is a linearizability check of its history. */
export function linearizabilityRun(seed: number, check: CheckResult<unknown>, summary: string, replay: string): ScenarioRun {
  const verdict = check.valid === true ? 'yes' : check.valid === false ? 'NO' : 'undecided';
  const failure = check.valid === false ? `key ${check.key}: ${check.witness.message}` : check.valid === 'unknown' ? `key ${check.key}: ${check.reason}` : undefined;
  return { seed, ok: check.valid === true, summary: `linearizable: ${verdict}, ${summary}`, ...(failure ? { failure } : {}), replay };
}
