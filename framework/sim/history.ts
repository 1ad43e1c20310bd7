/**
 * Client operation histories, recorded the way Jepsen records them: every operation a client
 * issues is an *invoke* followed by exactly one *completion*:
 *
 * - `ok`   — the operation took effect, once, somewhere between its invoke and its completion;
 *            `value` is what it returned (the value read, the fencing token granted…).
 * - `fail` — the operation certainly did NOT take effect (a lost compare-and-set, a rejected
 *            request that never reached the state machine). Checkers drop it.
 * - `info` — indeterminate: a timeout, a leader change, a connection lost after the request was
 *            sent. The operation may take effect at any time after its invoke — or never — even
 *            long after the client gave up. **When unsure, record `info`, never `fail`**: a wrong
 *            `fail` makes a correct system look broken; a wrong `info` only weakens the check.
 *
 * An operation that is still pending when the history is read counts as `info` with
 * `complete: Infinity`.
 *
 * Histories can be stored as JSON Lines, one operation per line:
 * `{"process":1,"type":"ok","f":"write","key":"x","value":3,"invoke":10,"complete":12}`
 * (`complete` is `null` for an info operation that never completed; `error` is optional).
 */
import { ErrorCode, TroupeError } from '../errors.ts';
import type { Clock } from '../clock.ts';

/** How an operation completed. Values reach files, so they never change meaning. */
export const OpType = { Ok: 'ok', Fail: 'fail', Info: 'info' } as const;
export type OpType = (typeof OpType)[keyof typeof OpType];

/** The client that issued an operation. By convention (Jepsen) a client has one operation in flight at a time. */
export type ProcessId = string | number;

/** A JSON value: what an operation's `value` may hold (decode bytes to strings before recording). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** One completed (or given-up) client operation. */
export interface Operation {
  /** The client that issued it. */
  readonly process: ProcessId;
  /** `ok` — took effect; `fail` — certainly did not; `info` — may take effect at any time after `invoke`, or never. */
  readonly type: OpType;
  /** The function called, e.g. `read`, `write`, `cas`, `acquire` — interpreted by the model. */
  readonly f: string;
  /** The object operated on (register key, lock name); checkers partition by it. */
  readonly key: string;
  /**
   * For `ok`: the result (the value read, the token granted) or, for operations without one, the
   * argument. For `fail` / `info`: the argument given at invoke.
   */
  readonly value: JsonValue;
  /** When the client invoked it (ms on the recorder's clock). */
  readonly invoke: number;
  /**
   * When the client saw the completion, `>= invoke`. For `info` operations it is the time the
   * client gave up, or `Infinity` if it never completed; it does NOT bound when the operation may
   * take effect.
   */
  readonly complete: number;
  /** Why it failed or is indeterminate (free text, for people). */
  readonly error?: string;
}

/**
 * A history is malformed: a bad JSON Lines record, an operation whose times are not ordered, an
 * operation a model does not understand. `line` (1-based, JSON Lines input) or `index` (0-based,
 * position in an operation array) and `field` say where.
 */
export class InvalidHistoryError extends TroupeError {
  readonly code = ErrorCode.InvalidHistory;
  readonly retryable = false;
  readonly line: number | undefined;
  readonly index: number | undefined;
  readonly field: string | undefined;
  constructor(message: string, where: { line?: number; index?: number; field?: string } = {}) {
    const at = where.line !== undefined ? `line ${where.line}: ` : where.index !== undefined ? `operation ${where.index}: ` : '';
    super(`${at}${message}`);
    this.line = where.line;
    this.index = where.index;
    this.field = where.field;
  }
}

/** Completes one invoked operation. The first completion wins; later calls return `false` and change nothing. */
export interface OpHandle {
  /**
   * It took effect. `value` is the result (the value read — `null` for a missing key — or the token
   * granted); omit it (or pass `undefined`) for operations whose result is their argument.
   */
  ok(value?: JsonValue): boolean;
  /** It certainly did not take effect. Only when sure — otherwise use {@link OpHandle.info}. */
  fail(error?: unknown): boolean;
  /** Outcome unknown (timeout, leader change, lost connection): it may take effect at any later time. */
  info(reason?: unknown): boolean;
}

/** Records one client-side history. Create one per test or simulation run. */
export interface HistoryRecorder {
  /**
   * Record an invoke at `clock.now()`. `value` is the argument (`write` value, `cas`
   * `[expected, new]`; `null` when there is none).
   */
  invoke(process: ProcessId, f: string, key: string, value?: JsonValue): OpHandle;
  /** Every operation so far, in invoke order; pending ones as `info` with `complete: Infinity`. */
  operations(): Operation[];
  /** {@link operations} as JSON Lines (see {@link toJsonLines}). */
  toJsonLines(): string;
}

/** Options of {@link createHistory}. */
export interface HistoryOptions {
  /** Where invoke and completion times come from: the system's (usually simulated) clock. */
  clock: Pick<Clock, 'now'>;
}

/**
 * A history recorder timestamping with the given clock.
 *
 * Times only order operations: two events at the same clock reading count as concurrent (the
 * checker never assumes an order the clock could not see), so under a simulated clock steps that
 * share a millisecond are checked less strictly, never wrongly.
 * @example
 * const history = createHistory({ clock });
 * const op = history.invoke('client-1', 'write', 'x', 3);
 * try { await store.put('x', '3'); op.ok(); } catch (err) { op.info(err); }
 * checkLinearizable(history.operations(), registerModel());
 */
export function createHistory(options: HistoryOptions): HistoryRecorder {
  const clock = options?.clock;
  if (clock === undefined || clock === null || typeof clock.now !== 'function') {
    throw new RangeError('createHistory: options.clock must be an object with a now() method');
  }
  interface Rec { process: ProcessId; type: OpType | null; f: string; key: string; value: JsonValue; invoke: number; complete: number; error?: string }
  const records: Rec[] = [];
  const now = (): number => {
    const t = clock.now();
    if (!Number.isFinite(t)) throw new RangeError(`createHistory: options.clock.now() returned ${t}, not a finite number`);
    return t;
  };

  const recorder: HistoryRecorder = {
    invoke(process, f, key, value = null) {
      if (typeof process !== 'string' && !(typeof process === 'number' && Number.isFinite(process))) {
        throw new RangeError('invoke: process must be a string or a finite number');
      }
      if (typeof f !== 'string' || f === '') throw new RangeError('invoke: f must be a non-empty string');
      if (typeof key !== 'string') throw new RangeError('invoke: key must be a string');
      const rec: Rec = { process, type: null, f, key, value, invoke: now(), complete: Infinity };
      records.push(rec);
      const complete = (type: OpType, result: JsonValue, error: unknown): boolean => {
        if (rec.type !== null) return false;
        rec.type = type;
        rec.value = result;
        rec.complete = now();
        if (error !== undefined) rec.error = describeError(error);
        return true;
      };
      return {
        ok: (result) => complete(OpType.Ok, result === undefined ? rec.value : result, undefined),
        fail: (error) => complete(OpType.Fail, rec.value, error),
        info: (reason) => complete(OpType.Info, rec.value, reason),
      };
    },
    operations() {
      return records.map((r): Operation => {
        const op: Operation = r.type === null
          ? { process: r.process, type: OpType.Info, f: r.f, key: r.key, value: r.value, invoke: r.invoke, complete: Infinity, error: 'never completed' }
          : { process: r.process, type: r.type, f: r.f, key: r.key, value: r.value, invoke: r.invoke, complete: r.complete };
        if (r.type !== null && r.error !== undefined) return { ...op, error: r.error };
        return op;
      });
    },
    toJsonLines() {
      return toJsonLines(recorder.operations());
    },
  };
  return recorder;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error); // circular or otherwise unserializable
  }
}

/** Operations as JSON Lines, one object per line, newline-terminated. `Infinity` is written as `null`. */
export function toJsonLines(ops: readonly Operation[]): string {
  let out = '';
  for (const op of ops) {
    const rec: Record<string, unknown> = {
      process: op.process, type: op.type, f: op.f, key: op.key, value: op.value,
      invoke: op.invoke, complete: Number.isFinite(op.complete) ? op.complete : null,
    };
    if (op.error !== undefined) rec.error = op.error;
    out += JSON.stringify(rec) + '\n';
  }
  return out;
}

/**
 * Parse JSON Lines written by {@link toJsonLines} (or by hand). Blank lines are skipped and
 * unknown fields ignored; a missing `value` is `null`. `complete` may be `null` or absent only
 * for `info` operations (it then is `Infinity`).
 * @throws InvalidHistoryError naming the line and field of the first bad record.
 */
export function parseJsonLines(text: string): Operation[] {
  const ops: Operation[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const line = i + 1;
    let rec: unknown;
    try {
      rec = JSON.parse(raw);
    } catch (err) {
      throw new InvalidHistoryError(`not valid JSON (${(err as Error).message})`, { line });
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
      throw new InvalidHistoryError('expected a JSON object', { line });
    }
    ops.push(validateRecord(rec as Record<string, unknown>, { line }));
  }
  return ops;
}

/**
 * Check that `op` is a well-formed {@link Operation} (as held in memory: `complete` is a number,
 * `Infinity` allowed only for `info`) and return it unchanged.
 * @throws InvalidHistoryError naming `where` and the bad field.
 */
export function validateOperation(op: unknown, where: { line?: number; index?: number }): Operation {
  if (typeof op !== 'object' || op === null || Array.isArray(op)) {
    throw new InvalidHistoryError('expected an operation object', where);
  }
  const rec = op as Record<string, unknown>;
  if (typeof rec.complete !== 'number') fieldError(rec, 'complete', 'must be a number (Infinity for an info operation that never completed)', where);
  checkFields(rec, where);
  if (rec.value === undefined) fieldError(rec, 'value', 'must be present (null when there is none)', where);
  return op as Operation;
}

function validateRecord(rec: Record<string, unknown>, where: { line?: number; index?: number }): Operation {
  const complete = rec.complete === null || rec.complete === undefined ? Infinity : rec.complete;
  checkFields({ ...rec, complete }, where);
  const op: Operation = {
    process: rec.process as ProcessId, type: rec.type as OpType, f: rec.f as string, key: rec.key as string,
    value: rec.value === undefined ? null : (rec.value as JsonValue), invoke: rec.invoke as number, complete: complete as number,
  };
  return rec.error === undefined ? op : { ...op, error: rec.error as string };
}

function fieldError(rec: Record<string, unknown>, field: string, why: string, where: { line?: number; index?: number }): never {
  const got = rec[field] === Infinity ? 'Infinity' : JSON.stringify(rec[field]) ?? 'nothing';
  throw new InvalidHistoryError(`"${field}" ${why} (got ${got})`, { ...where, field });
}

/** The checks shared by parsed and in-memory operations; `complete` already mapped null → Infinity. */
function checkFields(rec: Record<string, unknown>, where: { line?: number; index?: number }): void {
  const bad = (field: string, why: string): never => fieldError(rec, field, why, where);
  const { process, type, f, key, invoke, complete, error } = rec;
  if (typeof process !== 'string' && !(typeof process === 'number' && Number.isFinite(process))) bad('process', 'must be a string or a number');
  if (type !== OpType.Ok && type !== OpType.Fail && type !== OpType.Info) bad('type', 'must be one of "ok", "fail", "info"');
  if (typeof f !== 'string' || f === '') bad('f', 'must be a non-empty string');
  if (typeof key !== 'string') bad('key', 'must be a string');
  if (typeof invoke !== 'number' || !Number.isFinite(invoke)) bad('invoke', 'must be a finite number');
  if (typeof complete !== 'number' || Number.isNaN(complete)) bad('complete', 'must be a number or null');
  if (complete === Infinity && type !== OpType.Info) bad('complete', `must be finite for a "${type as string}" operation (only "info" operations may lack one)`);
  if ((complete as number) < (invoke as number)) bad('complete', `must not be before invoke (${invoke as number})`);
  if (error !== undefined && typeof error !== 'string') bad('error', 'must be a string when present');
}
