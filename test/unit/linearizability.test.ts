import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRng, simulatedClock, type Rng } from '../../framework/clock.ts';
import {
  InvalidHistoryError, createHistory, parseJsonLines, toJsonLines, type JsonValue, type Operation, type OpType,
} from '../../framework/sim/history.ts';
import { checkLinearizable, type CheckResult } from '../../framework/sim/linearizability.ts';
import { mutexModel, registerModel, type Model } from '../../framework/sim/models.ts';

const fixture = (name: string): Operation[] =>
  parseJsonLines(readFileSync(new URL(`./fixtures/histories/${name}`, import.meta.url), 'utf8'));

/** A completed operation; `complete` defaults to `invoke + 1`. */
function op(process: number, type: OpType, f: string, key: string, value: JsonValue, invoke: number, complete = invoke + 1): Operation {
  return { process, type, f, key, value, invoke, complete };
}

function expectInvalid<S>(result: CheckResult<S>): Extract<CheckResult<S>, { valid: false }> {
  if (result.valid !== false) throw new Error(`expected an invalid history, got ${JSON.stringify(result)}`);
  return result;
}

describe('history recorder', () => {
  it('timestamps invoke and completion with the injected clock', () => {
    const clock = simulatedClock(100);
    const history = createHistory({ clock });
    const w = history.invoke(1, 'write', 'x', 3);
    clock.increment(5);
    const r = history.invoke('c2', 'read', 'x');
    clock.increment(2);
    expect(w.ok()).toBe(true);
    expect(r.ok(3)).toBe(true);
    expect(history.operations()).toEqual([
      { process: 1, type: 'ok', f: 'write', key: 'x', value: 3, invoke: 100, complete: 107 },
      { process: 'c2', type: 'ok', f: 'read', key: 'x', value: 3, invoke: 105, complete: 107 },
    ]);
  });

  it('records fail and info with their reason, keeps the argument, and lets the first completion win', () => {
    const clock = simulatedClock();
    const history = createHistory({ clock });
    const a = history.invoke(1, 'cas', 'x', [1, 2]);
    const b = history.invoke(2, 'write', 'x', 9);
    clock.increment(10);
    expect(a.fail(new RangeError('expected 1'))).toBe(true);
    expect(b.info('timeout')).toBe(true);
    clock.increment(10);
    expect(b.ok()).toBe(false); // a late reply after the client gave up changes nothing
    expect(a.info()).toBe(false);
    expect(history.operations()).toEqual([
      { process: 1, type: 'fail', f: 'cas', key: 'x', value: [1, 2], invoke: 0, complete: 10, error: 'RangeError: expected 1' },
      { process: 2, type: 'info', f: 'write', key: 'x', value: 9, invoke: 0, complete: 10, error: 'timeout' },
    ]);
  });

  it('reports operations still pending as info that never completed', () => {
    const history = createHistory({ clock: simulatedClock(7) });
    history.invoke(1, 'write', 'x', 1);
    expect(history.operations()).toEqual([
      { process: 1, type: 'info', f: 'write', key: 'x', value: 1, invoke: 7, complete: Infinity, error: 'never completed' },
    ]);
  });

  it('rejects a missing clock and bad invoke arguments with RangeError naming them', () => {
    expect(() => createHistory({} as never)).toThrow(/options\.clock/);
    const history = createHistory({ clock: simulatedClock() });
    expect(() => history.invoke(1, '', 'x')).toThrow(RangeError);
    expect(() => history.invoke({} as never, 'read', 'x')).toThrow(/process/);
  });

  it('two recorders are independent', () => {
    const clock = simulatedClock();
    const h1 = createHistory({ clock });
    const h2 = createHistory({ clock });
    h1.invoke(1, 'read', 'x').ok(null);
    expect(h2.operations()).toEqual([]);
  });
});

describe('JSON Lines', () => {
  it('round-trips a recorded history, info operations included', () => {
    const clock = simulatedClock();
    const history = createHistory({ clock });
    history.invoke(1, 'write', 'x', { a: [1, 'two'] }).ok();
    const t = history.invoke(2, 'cas', 'x', [null, 'v']);
    clock.increment(3);
    t.info(new Error('leader changed'));
    history.invoke(3, 'read', 'x'); // never completes
    const text = history.toJsonLines();
    expect(text.trim().split('\n')).toHaveLength(3);
    expect(text).toContain('"complete":null');
    expect(parseJsonLines(text)).toEqual(history.operations());
    expect(toJsonLines(parseJsonLines(text))).toBe(text);
  });

  it('loads the fixtures', () => {
    const ops = fixture('register-valid.jsonl');
    expect(ops).toHaveLength(14);
    expect(ops[12]).toMatchObject({ type: 'info', complete: Infinity });
  });

  it('skips blank lines and defaults a missing value to null', () => {
    const ops = parseJsonLines('\n{"process":1,"type":"ok","f":"delete","key":"k","invoke":1,"complete":2}\n\n');
    expect(ops).toEqual([{ process: 1, type: 'ok', f: 'delete', key: 'k', value: null, invoke: 1, complete: 2 }]);
  });

  const good = '{"process":1,"type":"ok","f":"read","key":"x","value":null,"invoke":1,"complete":2}';
  it.each([
    ['not JSON', '{"process":1,', 2, undefined, /line 2: not valid JSON/],
    ['not an object', '[1,2]', 2, undefined, /line 2: expected a JSON object/],
    ['unknown type', good.replace('"ok"', '"done"'), 2, 'type', /line 2: "type" must be one of/],
    ['missing f', good.replace('"f":"read",', ''), 2, 'f', /"f" must be a non-empty string \(got nothing\)/],
    ['key not a string', good.replace('"key":"x"', '"key":7'), 2, 'key', /"key" must be a string/],
    ['process an object', good.replace('"process":1', '"process":{}'), 2, 'process', /"process"/],
    ['invoke missing', good.replace('"invoke":1,', ''), 2, 'invoke', /"invoke" must be a finite number/],
    ['complete before invoke', good.replace('"complete":2', '"complete":0'), 2, 'complete', /must not be before invoke/],
    ['ok without complete', good.replace('"complete":2', '"complete":null'), 2, 'complete', /only "info" operations may lack one/],
    ['error not a string', good.replace('}', ',"error":5}'), 2, 'error', /"error" must be a string/],
  ])('names the line and field of a bad record: %s', (_name, bad, line, field, message) => {
    const text = `${good}\n${bad}\n${good}\n`;
    let caught: unknown;
    try {
      parseJsonLines(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidHistoryError);
    const err = caught as InvalidHistoryError;
    expect(err.message).toMatch(message);
    expect(err.line).toBe(line);
    expect(err.field).toBe(field);
  });
});

describe('register model: known-good histories are linearizable', () => {
  const model = registerModel();
  it.each<[string, Operation[]]>([
    ['empty', []],
    ['sequential writes, reads and a missing key', [
      op(1, 'ok', 'read', 'x', null, 0),
      op(1, 'ok', 'write', 'x', 'a', 2),
      op(2, 'ok', 'read', 'x', 'a', 4),
      op(2, 'ok', 'write', 'x', 'b', 6),
      op(1, 'ok', 'read', 'x', 'b', 8),
    ]],
    ['concurrent writes, a read after both sees the one placed last', [
      op(1, 'ok', 'write', 'x', 1, 0, 10),
      op(2, 'ok', 'write', 'x', 2, 0, 10),
      op(3, 'ok', 'read', 'x', 1, 11),
      op(3, 'ok', 'read', 'x', 1, 13),
    ]],
    ['a read overlapping a write sees the old value or the new one', [
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'ok', 'write', 'x', 2, 5, 20),
      op(3, 'ok', 'read', 'x', 1, 6, 8),
      op(4, 'ok', 'read', 'x', 2, 9, 12),
      op(5, 'ok', 'read', 'x', 2, 21),
    ]],
    ['events at the same instant count as concurrent', [
      op(1, 'ok', 'write', 'x', 1, 0, 5),
      op(2, 'ok', 'read', 'x', null, 5, 6),
    ]],
    ['a cas chain, create-if-missing first', [
      op(1, 'ok', 'cas', 'x', [null, 1], 0),
      op(2, 'ok', 'cas', 'x', [1, 2], 2, 10),
      op(3, 'ok', 'cas', 'x', [2, 3], 3, 11),
      op(1, 'ok', 'read', 'x', 3, 12),
    ]],
    ['object values compare by content, not key order', [
      op(1, 'ok', 'write', 'x', { a: 1, b: [2] }, 0),
      op(2, 'ok', 'read', 'x', { b: [2], a: 1 }, 2),
    ]],
    ['deletes', [
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'ok', 'delete', 'x', null, 2),
      op(3, 'ok', 'read', 'x', null, 4),
      op(1, 'ok', 'cas', 'x', [null, 5], 6),
      op(3, 'ok', 'read', 'x', 5, 8),
    ]],
    ['an info write that took effect long after its client gave up', [
      op(1, 'info', 'write', 'x', 1, 0, 5),
      op(2, 'ok', 'read', 'x', null, 10),
      op(2, 'ok', 'read', 'x', 1, 100),
    ]],
    ['an info write that never took effect', [
      op(1, 'info', 'write', 'x', 1, 0, 5),
      op(2, 'ok', 'read', 'x', null, 10),
      op(2, 'ok', 'write', 'x', 2, 20),
      op(2, 'ok', 'read', 'x', 2, 30),
    ]],
    ['an info cas that failed, and one that succeeded', [
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'info', 'cas', 'x', [7, 8], 2, 3),
      op(3, 'info', 'cas', 'x', [1, 9], 4, 5),
      op(1, 'ok', 'read', 'x', 9, 10),
    ]],
    ['an info read constrains nothing', [
      op(1, 'info', 'read', 'x', 'never written', 0, 2),
      op(2, 'ok', 'read', 'x', null, 3),
    ]],
    ['the fixture', fixture('register-valid.jsonl')],
  ])('%s', (_name, ops) => {
    const result = checkLinearizable(ops, model);
    expect(result).toEqual({ valid: true, checked: ops.filter((o) => o.type !== 'fail' && !(o.type === 'info' && o.f === 'read')).length });
  });
});

describe('register model: known-bad histories are not linearizable', () => {
  const model = registerModel();

  it('stale read: a read after a completed write returns the older value', () => {
    const result = expectInvalid(checkLinearizable(fixture('register-stale-read.jsonl'), model));
    expect(result.key).toBe('x');
    expect(result.witness.op).toMatchObject({ process: 3, f: 'read', value: 1, invoke: 20 });
    expect(result.witness.linearized.map((o) => o.value)).toEqual([1, 2]);
    expect(result.witness.state).toBe('2');
    expect(result.witness.message).toContain('read(1) by process 3 [20, 25] cannot be linearized');
    expect(result.witness.message).toContain('state then: 2');
  });

  it('lost write: an acknowledged write is never visible to reads strictly after it', () => {
    const result = expectInvalid(checkLinearizable(fixture('register-lost-write.jsonl'), model));
    expect(result.witness.op).toMatchObject({ process: 2, f: 'read', value: null, invoke: 10 });
    expect(result.witness.linearized).toMatchObject([{ f: 'write', value: 1 }]);
    expect(result.witness.state).toBe('1');
  });

  it('a read of a value never written', () => {
    const result = expectInvalid(checkLinearizable([
      op(1, 'ok', 'write', 'x', 1, 0, 10),
      op(2, 'ok', 'read', 'x', 42, 5, 15),
    ], model));
    expect(result.witness.op).toMatchObject({ value: 42 });
    expect(result.witness.concurrent).toEqual([]);
    expect(result.witness.message).toMatch(/read\(42\) by process 2 \[5, 15\] cannot be linearized.*write\(1\)/);
  });

  it('a cas that succeeded although the value was not the expected one', () => {
    const result = expectInvalid(checkLinearizable([
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'ok', 'cas', 'x', [2, 3], 10),
    ], model));
    expect(result.witness.op).toMatchObject({ f: 'cas', value: [2, 3] });
  });

  it('a read that goes back in time after another read saw the new value', () => {
    const result = expectInvalid(checkLinearizable([
      op(1, 'ok', 'write', 'x', 1, 0),
      op(1, 'ok', 'write', 'x', 2, 5, 50),
      op(2, 'ok', 'read', 'x', 2, 10),
      op(3, 'ok', 'read', 'x', 1, 20),
    ], model));
    expect(result.witness.op).toMatchObject({ process: 3, value: 1 });
    expect(result.witness.concurrent.map((o) => o.f)).toEqual([]);
  });

  it('names the concurrent operations that could not help', () => {
    const ops = [
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'ok', 'cas', 'x', [5, 6], 2, 30),
      op(3, 'ok', 'read', 'x', 6, 10, 20),
      op(4, 'ok', 'write', 'x', 7, 25, 26),
    ];
    const result = expectInvalid(checkLinearizable(ops, model));
    expect(result.witness.op).toBe(ops[2]);
    expect(result.witness.linearized).toEqual([ops[0]]);
    expect(result.witness.concurrent).toEqual([ops[1]]);
    expect(result.witness.message).toContain('could go next: cas([5,6]) by process 2 [2, 30]');
  });

  it('only the bad key is reported', () => {
    const result = expectInvalid(checkLinearizable([
      op(1, 'ok', 'write', 'a', 1, 0),
      op(1, 'ok', 'write', 'b', 1, 0),
      op(2, 'ok', 'read', 'b', null, 5),
      op(2, 'ok', 'read', 'a', 1, 5),
    ], model));
    expect(result.key).toBe('b');
  });
});

describe('fail and info semantics', () => {
  const model = registerModel();

  it('a fail operation did not happen: reads of the old value are fine…', () => {
    expect(checkLinearizable([
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'fail', 'write', 'x', 2, 2),
      op(2, 'fail', 'cas', 'x', [1, 3], 4),
      op(3, 'ok', 'read', 'x', 1, 6),
    ], model)).toEqual({ valid: true, checked: 2 });
  });

  it('…and a read that sees a failed write is not', () => {
    const result = expectInvalid(checkLinearizable([
      op(1, 'ok', 'write', 'x', 1, 0),
      op(2, 'fail', 'write', 'x', 2, 2, 4),
      op(3, 'ok', 'read', 'x', 2, 3, 10),
    ], model));
    expect(result.witness.op).toMatchObject({ process: 3, value: 2 });
  });

  it('an info write may take effect at any time after its invoke, but not before', () => {
    const before = expectInvalid(checkLinearizable([
      op(1, 'ok', 'read', 'x', 1, 0),
      op(2, 'info', 'write', 'x', 1, 5),
    ], model));
    expect(before.witness.op).toMatchObject({ f: 'read' });
    expect(checkLinearizable([
      op(2, 'info', 'write', 'x', 1, 0, 1),
      op(1, 'ok', 'read', 'x', null, 1_000),
      op(1, 'ok', 'read', 'x', 1, 1_000_000),
    ], model).valid).toBe(true);
  });

  it('an info write happens at most once: it cannot be seen, overwritten, and seen again', () => {
    expect(checkLinearizable([
      op(1, 'info', 'write', 'x', 1, 0),
      op(2, 'ok', 'read', 'x', 1, 10),
      op(2, 'ok', 'write', 'x', 2, 20),
      op(2, 'ok', 'read', 'x', 1, 30),
    ], model).valid).toBe(false);
  });
});

describe('mutex model with fencing tokens', () => {
  const model = mutexModel();

  it('accepts a correct history: handovers, an info acquire, a lease lost as an info release', () => {
    const ops = fixture('mutex-valid.jsonl');
    expect(checkLinearizable(ops, model)).toEqual({ valid: true, checked: ops.length - 1 });
  });

  it('rejects two holders at once', () => {
    const result = expectInvalid(checkLinearizable(fixture('mutex-two-holders.jsonl'), model));
    expect(result.key).toBe('lock');
    expect(result.witness.op).toMatchObject({ process: 2, f: 'acquire', value: 2 });
    expect(result.witness.state).toEqual({ holder: 1, token: 1 });
    expect(result.witness.message).toContain('acquire(2) by process 2 [10, 15] cannot be linearized');
  });

  it('rejects fencing tokens that do not increase', () => {
    const result = expectInvalid(checkLinearizable(fixture('mutex-token-regress.jsonl'), model));
    expect(result.witness.op).toMatchObject({ process: 2, value: 3 });
    expect(result.witness.state).toEqual({ holder: null, token: 5 });
    expectInvalid(checkLinearizable([
      op(1, 'ok', 'acquire', 'l', 5, 0),
      op(1, 'ok', 'release', 'l', 5, 2),
      op(2, 'ok', 'acquire', 'l', 5, 4),
    ], model));
  });

  it('rejects a release by a process that does not hold the lock, or with the wrong token', () => {
    expectInvalid(checkLinearizable([op(1, 'ok', 'acquire', 'l', 1, 0), op(2, 'ok', 'release', 'l', null, 2)], model));
    expectInvalid(checkLinearizable([op(1, 'ok', 'acquire', 'l', 1, 0), op(1, 'ok', 'release', 'l', 9, 2)], model));
  });

  it('concurrent acquires may be granted in either order, as long as tokens follow the grant order', () => {
    expect(checkLinearizable([
      op(1, 'ok', 'acquire', 'l', 2, 0, 10),
      op(2, 'ok', 'acquire', 'l', 1, 0, 10),
      op(2, 'ok', 'release', 'l', 1, 1, 9),
      op(1, 'ok', 'release', 'l', 2, 11),
    ], model).valid).toBe(true);
  });

  it('locks are independent', () => {
    expect(checkLinearizable([
      op(1, 'ok', 'acquire', 'a', 1, 0, 10),
      op(2, 'ok', 'acquire', 'b', 1, 0, 10),
    ], model).valid).toBe(true);
  });
});

describe('checker input and budget', () => {
  it('rejects bad options with RangeError naming the option', () => {
    expect(() => checkLinearizable([], registerModel(), { maxSteps: 0 })).toThrow(/options\.maxSteps/);
    expect(() => checkLinearizable([], registerModel(), { maxSteps: 1.5 })).toThrow(RangeError);
    expect(() => checkLinearizable([], registerModel(), { timeoutMs: -1 })).toThrow(/options\.timeoutMs/);
  });

  it('rejects malformed operations and ones the model does not know, naming the operation', () => {
    expect(() => checkLinearizable([op(1, 'ok', 'read', 'x', null, 0), op(1, 'ok', 'increment', 'x', 1, 2)], registerModel()))
      .toThrow(/operation 1: the register model has no operation "increment"/);
    expect(() => checkLinearizable([op(1, 'ok', 'cas', 'x', 5, 0)], registerModel())).toThrow(InvalidHistoryError);
    expect(() => checkLinearizable([op(1, 'ok', 'acquire', 'l', null, 0)], mutexModel())).toThrow(/fencing token/);
    expect(() => checkLinearizable([op(1, 'ok', 'read', 'x', null, 5, 2)], registerModel())).toThrow(/operation 0: "complete"/);
    expect(() => checkLinearizable([op(1, 'ok', 'read', 'x', null, 5, Infinity)], registerModel())).toThrow(/"complete" must be finite/);
    expect(() => checkLinearizable([{ ...op(1, 'info', 'write', 'x', 1, 0), complete: null } as never], registerModel())).toThrow(/Infinity/);
  });

  it('answers unknown when the search budget runs out', () => {
    // 24 fully concurrent writes and an impossible read: proving it invalid means trying every subset
    const ops = Array.from({ length: 24 }, (_, i) => op(i, 'ok', 'write', 'x', i, 0, 100));
    ops.push(op(99, 'ok', 'read', 'x', -1, 50, 60));
    expect(checkLinearizable(ops, registerModel(), { maxSteps: 10_000 })).toEqual({
      valid: 'unknown', reason: 'search budget exhausted', key: 'x', checked: 25,
    });
    const clock = simulatedClock();
    const slow = { now: () => { clock.increment(1); return clock.now(); } };
    expect(checkLinearizable(ops, registerModel(), { timeoutMs: 5, clock: slow }).valid).toBe('unknown');
  });
});

// ---------------------------------------------------------------------------------------------
// Generated histories: a real in-memory register executes the operations one at a time (that
// order is a linearization); each operation's interval is then stretched around its
// linearization point, which adds concurrency without invalidating that order.

type Outcome = 'ok' | 'info-applied' | 'info-lost' | 'fail';
interface RegisterCmd {
  f: 'read' | 'write' | 'delete' | 'cas';
  key: number;
  process: number;
  before: number;
  after: number;
  outcome: Outcome;
  casHit: boolean;
  giveUp: boolean;
}

function runRegister(cmds: readonly RegisterCmd[]): Operation[] {
  const store = new Map<string, JsonValue>();
  const ops: Operation[] = [];
  let counter = 0;
  cmds.forEach((c, i) => {
    const at = 10 * (i + 1);
    const key = `k${c.key}`;
    const current = store.get(key) ?? null;
    const invoke = at - c.before;
    const complete = at + c.after;
    const record = (type: OpType, value: JsonValue): void => {
      ops.push({ process: c.process, type, f: c.f, key, value, invoke, complete: type === 'info' && !c.giveUp ? Infinity : complete });
    };
    const apply = (value: JsonValue, effect: () => void): void => {
      if (c.outcome === 'fail') return record('fail', value);
      if (c.outcome !== 'info-lost') effect();
      record(c.outcome === 'ok' ? 'ok' : 'info', value);
    };
    switch (c.f) {
      case 'read':
        return record(c.outcome === 'info-lost' ? 'info' : 'ok', current);
      case 'write': {
        const value = ++counter;
        return apply(value, () => store.set(key, value));
      }
      case 'delete':
        return apply(null, () => store.delete(key));
      case 'cas': {
        const value = ++counter;
        if (!c.casHit) return record('fail', [-1, value]); // expected a value never written: no swap
        return apply([current, value], () => store.set(key, value));
      }
    }
  });
  return ops;
}

const registerCmd = (maxStretch: number): fc.Arbitrary<RegisterCmd> => fc.record({
  f: fc.constantFrom('read', 'read', 'write', 'write', 'delete', 'cas') as fc.Arbitrary<RegisterCmd['f']>,
  key: fc.integer({ min: 0, max: 2 }),
  process: fc.integer({ min: 0, max: 4 }),
  before: fc.integer({ min: 0, max: maxStretch }),
  after: fc.integer({ min: 0, max: maxStretch }),
  outcome: fc.constantFrom<Outcome>('ok', 'ok', 'ok', 'ok', 'info-applied', 'info-lost', 'fail'),
  casHit: fc.boolean(),
  giveUp: fc.boolean(),
});

function randomRegisterCmds(rng: Rng, n: number, keys: number, maxStretch: number): RegisterCmd[] {
  const fs = ['read', 'read', 'write', 'write', 'delete', 'cas'] as const;
  const outcomes = ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'info-applied', 'info-lost', 'fail'] as const;
  return Array.from({ length: n }, () => ({
    f: fs[rng.int(fs.length)]!,
    key: rng.int(keys),
    process: rng.int(8),
    before: rng.int(maxStretch + 1),
    after: rng.int(maxStretch + 1),
    outcome: outcomes[rng.int(outcomes.length)]!,
    casHit: rng.next() < 0.7,
    giveUp: rng.next() < 0.5,
  }));
}

describe('properties', () => {
  it('every history produced by a real register is linearizable', () => {
    fc.assert(fc.property(fc.array(registerCmd(35), { maxLength: 60 }), (cmds) => {
      const result = checkLinearizable(runRegister(cmds), registerModel());
      expect(result.valid).toBe(true);
    }), { numRuns: 200 });
  });

  it('changing one read to a value never written always makes it invalid, with that read as witness', () => {
    fc.assert(fc.property(fc.array(registerCmd(35), { minLength: 1, maxLength: 60 }), fc.nat(), (cmds, pick) => {
      const ops = runRegister(cmds);
      const reads = ops.flatMap((o, i) => (o.f === 'read' && o.type === 'ok' ? [i] : []));
      fc.pre(reads.length > 0);
      const target = reads[pick % reads.length]!;
      ops[target] = { ...ops[target]!, value: 'never written' };
      const result = expectInvalid(checkLinearizable(ops, registerModel()));
      expect(result.key).toBe(ops[target]!.key);
      expect(result.witness.op).toBe(ops[target]); // the caller's own object
    }), { numRuns: 200 });
  });

  it('every history produced by a real fencing lock is linearizable', () => {
    const step = fc.record({
      process: fc.integer({ min: 0, max: 3 }),
      gap: fc.integer({ min: 1, max: 3 }),
      before: fc.integer({ min: 0, max: 25 }),
      after: fc.integer({ min: 0, max: 25 }),
      kind: fc.constantFrom('ok', 'ok', 'ok', 'info-release', 'failed-acquire'),
    });
    fc.assert(fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      let holder: number | null = null;
      let token = 0;
      const ops: Operation[] = steps.map((s, i): Operation => {
        const at = 10 * (i + 1);
        const times = { invoke: at - s.before, complete: at + s.after };
        if (holder === null) {
          holder = s.process;
          token += s.gap;
          return { process: s.process, type: 'ok', f: 'acquire', key: 'l', value: token, ...times };
        }
        if (s.kind === 'failed-acquire' && s.process !== holder) {
          return { process: s.process, type: 'fail', f: 'acquire', key: 'l', value: null, ...times };
        }
        const releaser: number = holder;
        holder = null;
        return s.kind === 'info-release'
          ? { process: releaser, type: 'info', f: 'release', key: 'l', value: token, ...times, complete: Infinity }
          : { process: releaser, type: 'ok', f: 'release', key: 'l', value: token, ...times };
      });
      expect(checkLinearizable(ops, mutexModel()).valid).toBe(true);
    }), { numRuns: 200 });
  });
});

/**
 * The definition, by brute force: try every order that respects real time (an ok operation that
 * completed strictly before another was invoked goes first); info operations may be left out.
 */
function bruteForceLinearizable<S>(ops: readonly Operation[], model: Model<S>): boolean {
  const live = ops.filter((o) => o.type !== 'fail' && (model.include?.(o) ?? true));
  const placed = new Array<boolean>(live.length).fill(false);
  const search = (state: S, left: number): boolean => {
    if (live.every((o, i) => placed[i] || o.type === 'info')) return true;
    if (left === 0) return false;
    for (let i = 0; i < live.length; i++) {
      if (placed[i]) continue;
      const o = live[i]!;
      const mustWait = live.some((p, j) => !placed[j] && j !== i && p.type !== 'info' && p.complete < o.invoke);
      if (mustWait) continue;
      const r = model.step(state, o);
      if (!r.ok) continue;
      placed[i] = true;
      const found = search(r.state, left - 1);
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(model.init(), live.length);
}

const smallOp = (fs: readonly string[], values: fc.Arbitrary<JsonValue>): fc.Arbitrary<Operation> =>
  fc.record({
    process: fc.integer({ min: 0, max: 2 }),
    type: fc.constantFrom<OpType>('ok', 'ok', 'ok', 'info', 'fail'),
    f: fc.constantFrom(...fs),
    key: fc.constant('k'),
    value: values,
    invoke: fc.integer({ min: 0, max: 20 }),
    length: fc.integer({ min: 0, max: 8 }),
  }).map(({ length, ...o }) => ({ ...o, complete: o.invoke + length }));

describe('agreement with a brute-force checker on small random histories', () => {
  it('register', () => {
    const value = fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 3 }));
    const registerOp = smallOp(['read', 'read', 'write', 'delete', 'cas'], value).chain((o) =>
      o.f === 'cas' ? fc.tuple(value, value).map((v): Operation => ({ ...o, value: v })) : fc.constant(o));
    let invalid = 0;
    fc.assert(fc.property(fc.array(registerOp, { maxLength: 8 }), (ops) => {
      const expected = bruteForceLinearizable(ops, registerModel());
      if (!expected) invalid++;
      expect(checkLinearizable(ops, registerModel()).valid).toBe(expected);
    }), { numRuns: 1_000 });
    expect(invalid).toBeGreaterThan(100); // both verdicts were exercised
  });

  it('mutex', () => {
    const mutexOp = smallOp(['acquire', 'acquire', 'release'], fc.integer({ min: 1, max: 4 }))
      .map((o): Operation => (o.f === 'release' && o.invoke % 2 === 0 ? { ...o, value: null } : o));
    let invalid = 0;
    fc.assert(fc.property(fc.array(mutexOp, { maxLength: 8 }), (ops) => {
      const expected = bruteForceLinearizable(ops, mutexModel());
      if (!expected) invalid++;
      expect(checkLinearizable(ops, mutexModel()).valid).toBe(expected);
    }), { numRuns: 1_000 });
    expect(invalid).toBeGreaterThan(100);
  });
});

describe('performance', () => {
  it('checks 2000 concurrent operations on 10 keys quickly', () => {
    const ops = runRegister(randomRegisterCmds(createRng(7), 2_000, 10, 60));
    const started = performance.now();
    const result = checkLinearizable(ops, registerModel());
    const ms = performance.now() - started;
    console.log(`linearizability: ${ops.length} ops on 10 keys checked in ${ms.toFixed(0)} ms`);
    expect(result.valid).toBe(true);
    expect(ms).toBeLessThan(5_000);
  });

  it('checks 3000 concurrent operations on one key quickly', () => {
    const ops = runRegister(randomRegisterCmds(createRng(11), 3_000, 1, 40));
    const started = performance.now();
    const result = checkLinearizable(ops, registerModel());
    const ms = performance.now() - started;
    console.log(`linearizability: ${ops.length} ops on 1 key checked in ${ms.toFixed(0)} ms`);
    expect(result.valid).toBe(true);
    expect(ms).toBeLessThan(5_000);
  });
});
