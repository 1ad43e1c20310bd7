/**
 * How a simulation reports a failure: one error whose message carries everything needed to
 * reproduce it — the seed, where it happened, the fault schedule applied so far, and the one
 * command that replays the run.
 */
import { ErrorCode, TroupeError } from '../errors.ts';
import { describeFault, type FaultEvent } from './nemesis.ts';

/** The command that replays simulation `scenario` with `seed`. */
export function replayCommand(scenario: string, seed: number): string {
  return `npx tsx framework/cli.ts sim ${scenario} --seed ${seed}`;
}

/** A fault schedule, one `t=…ms op(args)` line per operation. */
export function formatSchedule(schedule: readonly FaultEvent[]): string {
  if (schedule.length === 0) return '  (no faults)';
  return schedule.map((ev) => `  t=${ev.atMs}ms ${describeFault(ev)}`).join('\n');
}

/** What a {@link SimulationFailure} knows. */
export interface SimulationFailureDetails {
  readonly scenario: string;
  readonly seed: number;
  /** Simulated time of the failure, in ms. */
  readonly atMs: number;
  /** Events run before the failure. */
  readonly step: number;
  /** What went wrong (an invariant and its violation, an assertion, an event that threw…). */
  readonly reason: string;
  /** Faults applied up to the failure. */
  readonly schedule: readonly FaultEvent[];
}

/**
 * A simulation run failed: an invariant was violated, a `sim.assert` did not hold, an event threw,
 * or a run did not finish. The message names the seed, lists the fault schedule so far and ends
 * with the replay command; the same data is in the fields.
 */
export class SimulationFailure extends TroupeError {
  readonly code = ErrorCode.SimulationFailed;
  readonly retryable = false;
  readonly scenario: string;
  readonly seed: number;
  readonly atMs: number;
  readonly step: number;
  readonly reason: string;
  readonly schedule: readonly FaultEvent[];
  /** `npx tsx framework/cli.ts sim <scenario> --seed <seed>` */
  readonly replayCommand: string;

  constructor(details: SimulationFailureDetails, options?: { cause?: unknown }) {
    const replay = replayCommand(details.scenario, details.seed);
    super(
      `simulation '${details.scenario}' failed at t=${details.atMs}ms (step ${details.step}), seed ${details.seed}: ${details.reason}\n` +
        `fault schedule so far (${details.schedule.length}):\n${formatSchedule(details.schedule)}\n` +
        `replay: ${replay}`,
      options,
    );
    this.scenario = details.scenario;
    this.seed = details.seed;
    this.atMs = details.atMs;
    this.step = details.step;
    this.reason = details.reason;
    this.schedule = details.schedule;
    this.replayCommand = replay;
  }

  /** Structured fields for logs. */
  override fields(): Record<string, string | number> {
    return { scenario: this.scenario, seed: this.seed, atMs: this.atMs, step: this.step, reason: this.reason, replay: this.replayCommand };
  }
}

/** True for a {@link SimulationFailure}. */
export const isSimulationFailure = (e: unknown): e is SimulationFailure => e instanceof SimulationFailure;
