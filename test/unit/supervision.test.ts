/**
 * The pure supervision logic: decide(), affectedChildren(), resolvePolicy(). Table-driven, in the
 * style of Proto.Actor's strategy tests.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  affectedChildren, decide, Directive, NO_RESTARTS, resolvePolicy, Strategy, type RestartStats, type SupervisionOptions,
} from '../../framework/supervision.ts';

const boom = new Error('boom');
const stats = (...restartTimesMs: number[]): RestartStats => ({ restartTimesMs });

describe('decide: restart intensity', () => {
  const policy = resolvePolicy({ maxRestarts: 3, withinMs: 1_000 });
  const cases: Array<{ name: string; stats: RestartStats; now: number; directive: Directive; kept: number[] }> = [
    { name: 'first failure restarts', stats: NO_RESTARTS, now: 0, directive: 'restart', kept: [0] },
    { name: 'second failure in the window restarts', stats: stats(0), now: 10, directive: 'restart', kept: [0, 10] },
    { name: 'third failure in the window restarts', stats: stats(0, 10), now: 20, directive: 'restart', kept: [0, 10, 20] },
    { name: 'fourth failure in the window escalates', stats: stats(0, 10, 20), now: 30, directive: 'escalate', kept: [0, 10, 20] },
    { name: 'a failure at the last ms of the window escalates', stats: stats(0, 10, 20), now: 999, directive: 'escalate', kept: [0, 10, 20] },
    { name: 'the oldest restart leaves the window at exactly withinMs', stats: stats(0, 10, 20), now: 1_000, directive: 'restart', kept: [10, 20, 1_000] },
    { name: 'restarts older than the window no longer count', stats: stats(0, 10, 20), now: 5_000, directive: 'restart', kept: [5_000] },
    { name: 'a partly slid window keeps the recent restarts', stats: stats(0, 600, 700), now: 1_500, directive: 'restart', kept: [600, 700, 1_500] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(boom, c.stats, c.now, policy);
      expect(d.directive).toBe(c.directive);
      expect(d.stats.restartTimesMs).toEqual(c.kept);
      expect(d.reason.length).toBeGreaterThan(0);
      if (c.directive === 'escalate') expect(d.reason).toMatch(/intensity/);
    });
  }

  it('maxRestarts 0 escalates the first failure', () => {
    const d = decide(boom, NO_RESTARTS, 0, resolvePolicy({ maxRestarts: 0 }));
    expect(d.directive).toBe('escalate');
  });

  it('is pure: the same inputs give the same decision, and the input stats are not mutated', () => {
    const s = stats(1, 2);
    const frozen = JSON.stringify(s);
    const a = decide(boom, s, 3, policy);
    const b = decide(boom, s, 3, policy);
    expect(a).toEqual(b);
    expect(JSON.stringify(s)).toBe(frozen);
  });

  it('never allows more than maxRestarts restarts within any window (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 2_000 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 40 }),
        (maxRestarts, withinMs, gaps) => {
          const p = resolvePolicy({ maxRestarts, withinMs });
          let s: RestartStats = NO_RESTARTS;
          let now = 0;
          const restarts: number[] = [];
          for (const gap of gaps) {
            now += gap;
            const d = decide(boom, s, now, p);
            if (d.directive === 'restart') restarts.push(now);
            else expect(d.directive).toBe('escalate');
            s = d.stats;
            // every restart kept is inside the window, and there are never more than maxRestarts
            expect(s.restartTimesMs.length).toBeLessThanOrEqual(maxRestarts);
          }
          for (const t of restarts) {
            expect(restarts.filter((u) => u <= t && t - u < withinMs).length).toBeLessThanOrEqual(maxRestarts);
          }
        },
      ),
    );
  });
});

describe('decide: exponential backoff', () => {
  const policy = resolvePolicy({ maxRestarts: 10, withinMs: 60_000, backoff: { minMs: 100, factor: 2, maxMs: 1_000 } });
  // the n-th restart within the window waits minMs · factor^(n-1), capped at maxMs
  const expected = [100, 200, 400, 800, 1_000, 1_000, 1_000];
  expected.forEach((delayMs, i) => {
    it(`restart ${i + 1} waits ${delayMs} ms`, () => {
      const previous = stats(...Array.from({ length: i }, (_, k) => k));
      const d = decide(boom, previous, i, policy);
      expect(d.directive).toBe('restart');
      expect(d.delayMs).toBe(delayMs);
    });
  });

  it('uses the factor', () => {
    const p = resolvePolicy({ backoff: { minMs: 10, factor: 3, maxMs: 10_000 } });
    expect(decide(boom, stats(0, 1), 2, p).delayMs).toBe(90);
  });

  it('starts again from minMs once the window has slid past the old restarts', () => {
    const p = resolvePolicy({ maxRestarts: 5, withinMs: 1_000, backoff: { minMs: 100, factor: 2, maxMs: 10_000 } });
    expect(decide(boom, stats(0, 1, 2), 3, p).delayMs).toBe(800);
    expect(decide(boom, stats(0, 1, 2), 5_000, p).delayMs).toBe(100);
  });

  it('restarts at once without backoff (the default)', () => {
    expect(decide(boom, stats(0, 1), 2, resolvePolicy()).delayMs).toBe(0);
  });

  it('an escalation carries no delay', () => {
    const p = resolvePolicy({ maxRestarts: 1, backoff: { minMs: 100 } });
    const d = decide(boom, stats(0), 1, p);
    expect(d.directive).toBe('escalate');
    expect(d.delayMs).toBe(0);
  });
});

describe('decide: the decider', () => {
  const cases: Array<{ name: string; decider: SupervisionOptions['decider']; directive: Directive }> = [
    { name: 'stop', decider: () => Directive.Stop, directive: 'stop' },
    { name: 'resume', decider: () => Directive.Resume, directive: 'resume' },
    { name: 'escalate', decider: () => Directive.Escalate, directive: 'escalate' },
    {
      name: 'that throws escalates',
      decider: () => {
        throw new Error('decider bug');
      },
      directive: 'escalate',
    },
  ];
  for (const c of cases) {
    it(`a decider returning ${c.name}`, () => {
      const before = stats(5);
      const d = decide(boom, before, 10, resolvePolicy({ decider: c.decider }));
      expect(d.directive).toBe(c.directive);
      // only restarts are counted against the intensity
      expect(d.stats).toEqual(before);
      expect(d.delayMs).toBe(0);
    });
  }

  it('sees the error and can pick per error', () => {
    class Fatal extends Error {}
    const p = resolvePolicy({ decider: (e) => (e instanceof Fatal ? Directive.Stop : Directive.Restart) });
    expect(decide(new Fatal('x'), NO_RESTARTS, 0, p).directive).toBe('stop');
    expect(decide(new Error('y'), NO_RESTARTS, 0, p).directive).toBe('restart');
  });

  it('resume is not limited by the restart intensity', () => {
    const p = resolvePolicy({ maxRestarts: 1, decider: () => Directive.Resume });
    expect(decide(boom, stats(0, 1, 2), 3, p).directive).toBe('resume');
  });

  it('a decider that says restart is still subject to the intensity', () => {
    const p = resolvePolicy({ maxRestarts: 1, withinMs: 100, decider: () => Directive.Restart });
    expect(decide(boom, stats(0), 50, p).directive).toBe('escalate');
  });
});

describe('affectedChildren', () => {
  const children = ['a', 'b', 'c', 'd'];
  const cases: Array<{ strategy: Strategy; failed: string; expected: string[] }> = [
    { strategy: 'one-for-one', failed: 'a', expected: ['a'] },
    { strategy: 'one-for-one', failed: 'c', expected: ['c'] },
    { strategy: 'one-for-all', failed: 'a', expected: ['a', 'b', 'c', 'd'] },
    { strategy: 'one-for-all', failed: 'd', expected: ['a', 'b', 'c', 'd'] },
    { strategy: 'rest-for-one', failed: 'a', expected: ['a', 'b', 'c', 'd'] },
    { strategy: 'rest-for-one', failed: 'b', expected: ['b', 'c', 'd'] },
    { strategy: 'rest-for-one', failed: 'd', expected: ['d'] },
    { strategy: 'rest-for-one', failed: 'unknown', expected: ['unknown'] },
  ];
  for (const c of cases) {
    it(`${c.strategy}, ${c.failed} failed → ${c.expected.join(',')}`, () => {
      expect(affectedChildren(c.strategy, c.failed, children)).toEqual(c.expected);
    });
  }

  it('returns a fresh array (callers may keep it)', () => {
    const out = affectedChildren('one-for-all', 'a', children);
    out.push('z');
    expect(children).toEqual(['a', 'b', 'c', 'd']);
  });

  it('always includes the failed child and keeps start order (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 10 }),
        fc.nat(),
        fc.constantFrom<Strategy>('one-for-one', 'one-for-all', 'rest-for-one'),
        (kids, pick, strategy) => {
          const failed = kids[pick % kids.length]!;
          const out = affectedChildren(strategy, failed, kids);
          expect(out).toContain(failed);
          const positions = out.map((k) => kids.indexOf(k));
          expect([...positions].sort((x, y) => x - y)).toEqual(positions);
        },
      ),
    );
  });
});

describe('resolvePolicy', () => {
  it('fills the documented defaults', () => {
    const p = resolvePolicy();
    expect(p.maxRestarts).toBe(3);
    expect(p.withinMs).toBe(5_000);
    expect(p.backoff).toEqual({ minMs: 0, maxMs: 10_000, factor: 2, jitter: 0 });
    expect(p.decider(new Error('x'))).toBe('restart');
  });

  it('merges a partial backoff with the defaults', () => {
    expect(resolvePolicy({ backoff: { minMs: 50 } }).backoff).toEqual({ minMs: 50, maxMs: 10_000, factor: 2, jitter: 0 });
  });

  const bad: Array<[string, SupervisionOptions]> = [
    ['maxRestarts', { maxRestarts: -1 }],
    ['maxRestarts', { maxRestarts: Number.NaN }],
    ['withinMs', { withinMs: -5 }],
    ['backoff.minMs', { backoff: { minMs: -1 } }],
    ['backoff.maxMs', { backoff: { minMs: 500, maxMs: 100 } }],
    ['backoff.factor', { backoff: { factor: 0.5 } }],
    ['backoff.jitter', { backoff: { jitter: 1.5 } }],
    ['backoff.jitter', { backoff: { jitter: -0.1 } }],
  ];
  for (const [option, options] of bad) {
    it(`rejects a bad ${option} with a RangeError naming it (${JSON.stringify(options)})`, () => {
      let caught: unknown;
      try {
        resolvePolicy(options);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(RangeError);
      expect((caught as Error).message).toContain(option);
    });
  }

  it('accepts the boundary values', () => {
    expect(() => resolvePolicy({ maxRestarts: 0, withinMs: 0, backoff: { minMs: 0, maxMs: 0, factor: 1, jitter: 1 } })).not.toThrow();
  });
});
