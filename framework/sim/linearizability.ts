/**
 * Linearizability checking of client histories: is there one order of the operations, consistent
 * with their real-time order (an operation that completed before another was invoked comes first),
 * in which every operation does what the sequential model says?
 *
 * The search is Wing & Gong's, with Lowe's memoization of (set of operations linearized, model
 * state) pairs already explored, run separately per key (P-compositionality: a history is
 * linearizable iff each key's sub-history is). Semantics of the input:
 *
 * - `fail` operations are dropped: they did not take effect.
 * - `info` operations may take effect at any time after their invoke, or never: their completion
 *   time is ignored (treated as +∞).
 * - Events with equal times are treated as concurrent (an operation invoked at the instant another
 *   completed may be ordered either way).
 */
import { realClock, type Clock } from '../clock.ts';
import { InvalidHistoryError, OpType, validateOperation, type Operation } from './history.ts';
import type { Model } from './models.ts';

/** Default of {@link CheckOptions.maxSteps}. */
export const DEFAULT_MAX_STEPS = 10_000_000;

/** Options of {@link checkLinearizable}. */
export interface CheckOptions {
  /**
   * Search steps (model steps plus backtracks), over all keys, before giving up with
   * `valid: 'unknown'`. Deterministic, unlike `timeoutMs`. @default 10_000_000
   */
  maxSteps?: number;
  /** Wall-clock budget; `valid: 'unknown'` when exceeded. @default no limit */
  timeoutMs?: number;
  /** Time source for `timeoutMs`. @default realClock() */
  clock?: Pick<Clock, 'now'>;
}

/** Why a history is not linearizable, for people and for test assertions. */
export interface Witness<State> {
  /**
   * The operation the search could not get past: in every order the model allows, it could not be
   * placed before its completion. Of all such dead ends, the one furthest along in time.
   */
  readonly op: Operation;
  /** The longest linearization that reached `op`: operations in the order they were placed. */
  readonly linearized: readonly Operation[];
  /** The model state after `linearized`. */
  readonly state: State;
  /**
   * The other operations invoked before `op` completed but not in `linearized`: the candidates
   * that could have gone next (none of them helps).
   */
  readonly concurrent: readonly Operation[];
  /** One paragraph saying all of the above. */
  readonly message: string;
}

/** Outcome of {@link checkLinearizable}. `checked` counts the operations searched (fail ops and ops the model excludes are not). */
export type CheckResult<State> =
  | { readonly valid: true; readonly checked: number }
  | { readonly valid: false; readonly key: string; readonly witness: Witness<State>; readonly checked: number }
  | { readonly valid: 'unknown'; readonly reason: 'search budget exhausted'; readonly key: string; readonly checked: number };

/**
 * Check a history (any order; e.g. `recorder.operations()` or `parseJsonLines(text)`) against a
 * sequential model, key by key. Stops at the first key that is not linearizable.
 * @throws InvalidHistoryError for a malformed operation or one the model does not understand.
 * @throws RangeError naming a bad option.
 * @example
 * const result = checkLinearizable(history.operations(), registerModel(), { maxSteps: 1e6 });
 * if (result.valid === false) console.error(result.witness.message);
 */
export function checkLinearizable<State>(
  ops: readonly Operation[],
  model: Model<State>,
  options: CheckOptions = {},
): CheckResult<State> {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isSafeInteger(maxSteps) || maxSteps <= 0) {
    throw new RangeError(`checkLinearizable: options.maxSteps must be a positive integer (got ${String(options.maxSteps)})`);
  }
  const timeoutMs = options.timeoutMs;
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
    throw new RangeError(`checkLinearizable: options.timeoutMs must be a positive number of ms (got ${String(timeoutMs)})`);
  }
  const clock = options.clock ?? realClock();
  if (typeof clock.now !== 'function') throw new RangeError('checkLinearizable: options.clock must have a now() method');

  const partitions = new Map<string, Operation[]>();
  ops.forEach((raw, index) => {
    const op = validateOperation(raw, { index });
    if (op.type === OpType.Fail) return;
    let key: string;
    try {
      if (model.include !== undefined && !model.include(op)) return;
      key = model.key(op);
    } catch (err) {
      if (err instanceof InvalidHistoryError) throw new InvalidHistoryError(err.message, { index, field: err.field ?? 'f' });
      throw err;
    }
    let part = partitions.get(key);
    if (part === undefined) partitions.set(key, (part = []));
    part.push(op);
  });

  const deadline = timeoutMs === undefined ? Infinity : clock.now() + timeoutMs;
  const budget: Budget = { stepsLeft: maxSteps, deadline, clock };
  let checked = 0;
  for (const [key, part] of partitions) {
    checked += part.length;
    const outcome = searchPartition(part, model, budget);
    if (outcome === 'exhausted') return { valid: 'unknown', reason: 'search budget exhausted', key, checked };
    if (outcome !== 'linearizable') return { valid: false, key, witness: explain(key, part, outcome, model), checked };
  }
  return { valid: true, checked };
}

interface Budget { stepsLeft: number; readonly deadline: number; readonly clock: Pick<Clock, 'now'> }

/** The furthest dead end of a failed search, in partition-local op indexes. */
interface DeadEnd<State> { readonly stuck: number; readonly linearized: number[]; readonly state: State }

/**
 * Wing–Gong search over one partition, depth first, with Lowe's memoization: a configuration
 * (set of placed operations, model state) is explored at most once. The history is a doubly
 * linked list of call and return events in time order; placing an operation (linearizing it)
 * unlinks both its events, and backtracking links them back in reverse order (Porcupine's
 * `checkSingle` works the same way). Reaching a return event means its operation had to be placed
 * before that point and was not: backtrack. Two refinements cut the search without changing its
 * verdict: read-only operations are placed as soon as they can be and never reordered, and the
 * operation with the earliest pending return is tried first.
 */
function searchPartition<State>(ops: readonly Operation[], model: Model<State>, budget: Budget): 'linearizable' | 'exhausted' | DeadEnd<State> {
  const n = ops.length;
  if (n === 0) return 'linearizable';
  const hash = model.hash ?? ((s: State) => JSON.stringify(s));

  // Events sorted by time; at equal times calls come before returns (concurrent, never ordered).
  const order = new Int32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) order[i] = i;
  const timeOf = (e: number): number => {
    const op = ops[e >> 1]!;
    return (e & 1) === 0 ? op.invoke : op.type === OpType.Info ? Infinity : op.complete;
  };
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a & 1) - (b & 1) || a - b);

  // Nodes: 0 is the head sentinel, 1..2n the events in time order, 2n+1 the tail sentinel.
  const tail = 2 * n + 1;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  const opOf = new Int32Array(2 * n + 2);
  const isCall = new Uint8Array(2 * n + 2);
  const callNode = new Int32Array(n);
  const returnNode = new Int32Array(n);
  for (let node = 0; node <= tail; node++) {
    next[node] = node + 1;
    prev[node] = node - 1;
  }
  for (let i = 0; i < 2 * n; i++) {
    const e = order[i]!;
    const node = i + 1;
    opOf[node] = e >> 1;
    if ((e & 1) === 0) {
      isCall[node] = 1;
      callNode[e >> 1] = node;
    } else {
      returnNode[e >> 1] = node;
    }
  }
  const unlink = (x: number): void => {
    next[prev[x]!] = next[x]!;
    prev[next[x]!] = prev[x]!;
  };
  const relink = (x: number): void => {
    next[prev[x]!] = x;
    prev[next[x]!] = x;
  };

  // The linearized set as a bitset, with two incremental (Zobrist) hashes of it for the cache key.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const z1 = new Int32Array(n);
  const z2 = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    z1[i] = mix32(2 * i + 1);
    z2[i] = mix32(2 * i + 2);
  }
  let h1 = 0;
  let h2 = 0;
  const toggle = (op: number): void => {
    bits[op >>> 5]! ^= 1 << (op & 31);
    h1 ^= z1[op]!;
    h2 ^= z2[op]!;
  };
  const seen = new Map<string, Uint32Array[]>();
  const remember = (stateHash: string): boolean => {
    const cacheKey = `${h1}:${h2}:${stateHash}`;
    const bucket = seen.get(cacheKey);
    if (bucket === undefined) {
      seen.set(cacheKey, [bits.slice()]);
      return true;
    }
    for (const other of bucket) if (sameBits(other, bits)) return false;
    bucket.push(bits.slice());
    return true;
  };

  const readOnly = new Uint8Array(n);
  if (model.readOnly !== undefined) for (let i = 0; i < n; i++) readOnly[i] = model.readOnly(ops[i]!) ? 1 : 0;

  const stackOps: number[] = [];
  const stackStates: State[] = [];
  const stackHow: number[] = [];
  /** Per depth: the operation whose return ends the candidate window there (tried first). */
  const levelFirst = new Int32Array(n + 1);
  let state = model.init();
  // the furthest dead end so far: the return node reached and the linearization that reached it
  let stuckNode = -1;
  let stuckPrefix: number[] = [];
  let stuckState = state;

  /** One model step, or undefined when the budget is spent. */
  const step = (op: number): { ok: boolean; state: State } | undefined => {
    if (--budget.stepsLeft < 0
      || ((budget.stepsLeft & 0xfff) === 0 && budget.deadline !== Infinity && budget.clock.now() > budget.deadline)) {
      return undefined;
    }
    return model.step(state, ops[op]!);
  };
  /** Place `op` (already stepped to `next`) unless this configuration was explored before. */
  const place = (op: number, nextState: State, how: number): boolean => {
    toggle(op);
    if (!remember(hash(nextState))) {
      toggle(op);
      return false;
    }
    stackOps.push(op);
    stackStates.push(state);
    stackHow.push(how);
    state = nextState;
    unlink(callNode[op]!);
    unlink(returnNode[op]!);
    return true;
  };

  // The candidates of a configuration are the calls before the first remaining return event R:
  // an operation whose return is reached unplaced can no longer be placed. Order of trial:
  // 1. a read-only operation that can go now goes now, and nothing else is tried here — if the
  //    configuration has a linearization, so has the one with that read placed first (it changes
  //    no state, and every operation that had to precede it is placed already);
  // 2. R's own operation (earliest deadline first: usually the right guess);
  // 3. the other candidates in call order.
  // scanFrom: where step 3 resumes at the current depth; FRESH when the configuration is new.
  const FRESH = -1;
  let scanFrom = FRESH;
  while (next[0] !== tail) {
    const depth = stackOps.length;
    let failedWhole = false;
    if (scanFrom === FRESH) {
      let x = next[0]!;
      let forced = false;
      for (; isCall[x] === 1; x = next[x]!) {
        const op = opOf[x]!;
        if (readOnly[op] === 0) continue;
        const r = step(op);
        if (r === undefined) return 'exhausted';
        if (!r.ok) continue;
        forced = true;
        if (!place(op, r.state, FORCED_READ)) failedWhole = true; // explored before, and failed
        break;
      }
      if (forced && !failedWhole) continue;
      if (!failedWhole) {
        const first = opOf[x]!;
        levelFirst[depth] = first;
        if (readOnly[first] === 0) {
          const r = step(first);
          if (r === undefined) return 'exhausted';
          if (r.ok && place(first, r.state, FIRST)) continue;
        }
        scanFrom = next[0]!;
      }
    }
    if (!failedWhole) {
      const first = levelFirst[depth];
      let x = scanFrom;
      let placed = false;
      for (; isCall[x] === 1; x = next[x]!) {
        const op = opOf[x]!;
        if (readOnly[op] === 1 || op === first) continue;
        const r = step(op);
        if (r === undefined) return 'exhausted';
        if (r.ok && place(op, r.state, IN_ORDER)) {
          placed = true;
          break;
        }
      }
      if (placed) {
        scanFrom = FRESH;
        continue;
      }
      // x is R: its operation had to be placed before here and could not be.
      if (x > stuckNode || (x === stuckNode && depth > stuckPrefix.length)) {
        stuckNode = x;
        stuckPrefix = stackOps.slice();
        stuckState = state;
      }
    }
    // Backtrack to the last placement that has alternatives left.
    for (;;) {
      if (stackOps.length === 0) return { stuck: opOf[stuckNode]!, linearized: stuckPrefix, state: stuckState };
      if (--budget.stepsLeft < 0) return 'exhausted';
      const op = stackOps.pop()!;
      const how = stackHow.pop()!;
      state = stackStates.pop()!;
      toggle(op);
      relink(returnNode[op]!);
      relink(callNode[op]!);
      if (how === FORCED_READ) continue; // the configuration below it has failed as a whole
      scanFrom = how === FIRST ? next[0]! : next[callNode[op]!]!;
      break;
    }
  }
  return 'linearizable';
}

/** How an operation was placed (see the trial order in searchPartition). */
const FORCED_READ = 0;
const FIRST = 1;
const IN_ORDER = 2;

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A 32-bit integer hash (murmur3 finalizer): well-spread Zobrist keys without randomness. */
function mix32(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

function explain<State>(key: string, ops: readonly Operation[], deadEnd: DeadEnd<State>, model: Model<State>): Witness<State> {
  const op = ops[deadEnd.stuck]!;
  const linearized = deadEnd.linearized.map((i) => ops[i]!);
  const placed = new Set(deadEnd.linearized);
  const deadline = op.type === OpType.Info ? Infinity : op.complete;
  const concurrent = ops.filter((o, i) => i !== deadEnd.stuck && !placed.has(i) && o.invoke <= deadline);
  const describeState = model.hash ?? ((s: State) => JSON.stringify(s));
  const list = (xs: readonly Operation[]): string => (xs.length === 0 ? 'none' : xs.map(describeOp).join('; '));
  const message =
    `key ${JSON.stringify(key)}: ${describeOp(op)} cannot be linearized. ` +
    `Longest linearization reaching it (${linearized.length} ops): ${list(linearized)}; ` +
    `state then: ${describeState(deadEnd.state)}. ` +
    `Concurrent operations that could go next: ${list(concurrent)}.`;
  return { op, linearized, state: deadEnd.state, concurrent, message };
}

/** `read(1) by process 2 [40, 50]`; an info op shows `info` and when its client gave up. */
function describeOp(op: Operation): string {
  const end = op.type === OpType.Info ? (Number.isFinite(op.complete) ? `gave up at ${op.complete}` : 'never completed') : String(op.complete);
  return `${op.f}(${JSON.stringify(op.value)})${op.type === OpType.Info ? ' info' : ''} by process ${JSON.stringify(op.process)} [${op.invoke}, ${end}]`;
}
