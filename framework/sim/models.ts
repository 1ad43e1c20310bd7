/**
 * Sequential specifications the linearizability checker searches against: a key-value register
 * (read / write / delete / compare-and-set) and a mutex with fencing tokens.
 *
 * A model sees only operations that may have taken effect — `fail` operations are dropped by the
 * checker before it runs — and must follow these rules for `info` (indeterminate) operations,
 * which the checker treats as able to take effect at any time after their invoke, or never:
 * `step` must accept an info operation in EVERY state (`ok: true`), choosing "did not take
 * effect" (state unchanged) when taking effect is impossible there. "Never took effect" is the
 * same as "took effect after everything else", which the search always tries, so an operation that
 * merely timed out can never make a history invalid.
 */
import { InvalidHistoryError, OpType, type JsonValue, type Operation, type ProcessId } from './history.ts';

/**
 * A sequential object: its initial state and how each operation changes it.
 * Operations on different `key`s must be independent (P-compositionality), so that the checker
 * can check each key on its own.
 */
export interface Model<State, Op extends Operation = Operation> {
  /** The state before any operation. */
  init(): State;
  /**
   * Apply `op` to `state`. `ok: false` when `op` could not have returned what it returned in
   * `state`. Must not mutate `state`. See the module docs for `info` operations.
   */
  step(state: State, op: Op): { ok: boolean; state: State };
  /**
   * The partition `op` belongs to (register key, lock name). Called once per operation before the
   * search, so it is also where a model rejects operations it does not understand.
   * @throws InvalidHistoryError for an unknown `f` or a malformed `value`.
   */
  key(op: Op): string;
  /**
   * A string that identifies `state`: equal states, equal strings, and different states, different
   * strings (it is trusted for memoization). @default JSON.stringify
   */
  hash?(state: State): string;
  /**
   * Whether `op` constrains anything. Operations for which it returns false (an `info` read) are
   * left out of the search. @default every operation is included
   */
  include?(op: Op): boolean;
  /**
   * True when `op` leaves every state it is accepted in unchanged (an `ok` read). The search then
   * never tries it in more than one position, which is much faster on read-heavy histories and
   * changes no verdict — but only if it really is read-only in EVERY state (an info cas that
   * fails here but could succeed elsewhere is not). @default no operation is read-only
   */
  readOnly?(op: Op): boolean;
}

/** Register operations, by `f`. */
export const RegisterOp = { Read: 'read', Write: 'write', Delete: 'delete', Cas: 'cas' } as const;
export type RegisterOp = (typeof RegisterOp)[keyof typeof RegisterOp];

/**
 * A map of independent registers, one per `key`. `null` is "missing": a read of a missing key
 * returns `null`, `delete` makes a key missing (writing `null` does the same).
 *
 * - `read`   — `value` is the value observed (`null` if missing). An `info` read is ignored.
 * - `write`  — `value` is the value written.
 * - `delete` — `value` is ignored.
 * - `cas`    — `value` is `[expected, new]`; an `ok` cas SWAPPED (the current value equalled
 *   `expected`; `expected: null` means "create if missing"). A cas that found another value must
 *   be recorded as `fail` (it did not take effect) — as Jepsen does.
 *
 * Values are compared by their JSON encoding with object keys sorted.
 *
 * State: the canonical JSON encoding of the current value (`'null'` when missing).
 * @example
 * checkLinearizable(history.operations(), registerModel());
 */
export function registerModel(): Model<string> {
  return {
    init: () => 'null',
    hash: (state) => state,
    include: (op) => !(op.f === RegisterOp.Read && op.type === OpType.Info),
    readOnly: (op) => op.f === RegisterOp.Read,
    key(op) {
      switch (op.f) {
        case RegisterOp.Read:
        case RegisterOp.Write:
        case RegisterOp.Delete:
          return op.key;
        case RegisterOp.Cas:
          if (!Array.isArray(op.value) || op.value.length !== 2) {
            throw new InvalidHistoryError(`cas on "${op.key}" needs value [expected, new] (got ${JSON.stringify(op.value)})`, { field: 'value' });
          }
          return op.key;
        default:
          throw new InvalidHistoryError(`the register model has no operation "${op.f}" (read, write, delete, cas)`, { field: 'f' });
      }
    },
    step(state, op) {
      switch (op.f) {
        case RegisterOp.Read:
          return { ok: canonicalJson(op.value) === state, state };
        case RegisterOp.Write:
          return { ok: true, state: canonicalJson(op.value) };
        case RegisterOp.Delete:
          return { ok: true, state: 'null' };
        default: {
          const [expected, next] = op.value as readonly [JsonValue, JsonValue];
          if (canonicalJson(expected) === state) return { ok: true, state: canonicalJson(next) };
          // an indeterminate cas that finds another value fails there: no effect
          return { ok: op.type === OpType.Info, state };
        }
      }
    },
  };
}

/** JSON with object keys sorted, so that equal values have equal encodings. */
function canonicalJson(value: JsonValue | undefined): string {
  if (value === null || value === undefined || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const obj = value as { readonly [k: string]: JsonValue };
  return `{${Object.keys(obj).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** Mutex operations, by `f`. */
export const MutexOp = { Acquire: 'acquire', Release: 'release' } as const;
export type MutexOp = (typeof MutexOp)[keyof typeof MutexOp];

/** The state of one lock: who holds it and the last fencing token granted. */
export interface MutexState {
  readonly holder: ProcessId | null;
  /** The greatest token granted so far; `null` before the first. */
  readonly token: number | null;
}

/**
 * Locks with fencing tokens, one per `key` (the lock name). A correct history has at most one
 * holder at a time and strictly increasing tokens.
 *
 * - `acquire` — `value` is the fencing token granted (a number, greater than every token granted
 *   before). Holder identity is the operation's `process`.
 * - `release` — by the holder; `value` is the token being released, or `null` to not check it.
 *
 * A holder whose lease expired without a release it could see should record an `info` release:
 * the lock was given up at some unknown time after that point. An `info` acquire may have taken
 * the lock (its token, if any, is not trusted for the ordering check) or not.
 * @example
 * checkLinearizable(lockHistory.operations(), mutexModel());
 */
export function mutexModel(): Model<MutexState> {
  return {
    init: () => ({ holder: null, token: null }),
    hash: (s) => JSON.stringify([s.holder, s.token]),
    key(op) {
      if (op.f === MutexOp.Acquire) {
        if (op.type === OpType.Ok && (typeof op.value !== 'number' || !Number.isFinite(op.value))) {
          throw new InvalidHistoryError(`ok acquire of "${op.key}" needs its fencing token as value (got ${JSON.stringify(op.value)})`, { field: 'value' });
        }
        return op.key;
      }
      if (op.f === MutexOp.Release) {
        if (op.value !== null && typeof op.value !== 'number') {
          throw new InvalidHistoryError(`release of "${op.key}" takes a token or null as value (got ${JSON.stringify(op.value)})`, { field: 'value' });
        }
        return op.key;
      }
      throw new InvalidHistoryError(`the mutex model has no operation "${op.f}" (acquire, release)`, { field: 'f' });
    },
    step(state, op) {
      const info = op.type === OpType.Info;
      if (op.f === MutexOp.Acquire) {
        if (state.holder !== null) return { ok: info, state };
        if (info) return { ok: true, state: { holder: op.process, token: state.token } };
        const token = op.value as number;
        if (state.token !== null && token <= state.token) return { ok: false, state };
        return { ok: true, state: { holder: op.process, token } };
      }
      const mine = state.holder !== null && state.holder === op.process
        && (op.value === null || op.value === state.token);
      if (!mine) return { ok: info, state };
      return { ok: true, state: { holder: null, token: state.token } };
    },
  };
}
