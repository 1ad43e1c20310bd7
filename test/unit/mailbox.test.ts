/**
 * The bounded two-queue mailbox: system first, capacity on user messages only, FIFO per queue.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createMailbox } from '../../framework/mailbox.ts';

describe('mailbox', () => {
  it('takes system messages before user messages', () => {
    const m = createMailbox<string, string>(10);
    m.pushUser('u1');
    m.pushSystem('s1');
    m.pushUser('u2');
    m.pushSystem('s2');
    expect(m.shiftSystem()).toBe('s1');
    expect(m.shiftSystem()).toBe('s2');
    expect(m.shiftSystem()).toBeUndefined();
    expect(m.shiftUser()).toBe('u1');
    expect(m.shiftUser()).toBe('u2');
    expect(m.shiftUser()).toBeUndefined();
  });

  it('refuses user messages at capacity but always accepts system messages', () => {
    const m = createMailbox<string, string>(2);
    expect(m.pushUser('a')).toBe(true);
    expect(m.pushUser('b')).toBe(true);
    expect(m.pushUser('c')).toBe(false);
    for (let i = 0; i < 100; i++) m.pushSystem(`s${i}`);
    expect(m.userSize).toBe(2);
    expect(m.size).toBe(102);
    expect(m.capacity).toBe(2);
    m.shiftUser();
    expect(m.pushUser('d')).toBe(true);
    expect(m.pushUser('e')).toBe(false);
  });

  it('drain returns everything left, in order, and empties the mailbox', () => {
    const m = createMailbox<string, string>(5);
    m.pushUser('u1');
    m.pushUser('u2');
    m.pushSystem('s1');
    m.shiftUser();
    m.pushUser('u3');
    expect(m.drain()).toEqual({ system: ['s1'], user: ['u2', 'u3'] });
    expect(m.size).toBe(0);
    expect(m.shiftUser()).toBeUndefined();
    expect(m.pushUser('again')).toBe(true);
    expect(m.shiftUser()).toBe('again');
  });

  it('stays FIFO across internal compaction (many pushes and shifts)', () => {
    const m = createMailbox<number, number>(100_000);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) expect(m.pushUser(next++)).toBe(true);
      for (let i = 0; i < 250; i++) expect(m.shiftUser()).toBe(expected++);
    }
    while (m.userSize > 0) expect(m.shiftUser()).toBe(expected++);
    expect(expected).toBe(next);
  });

  it('behaves like a model: system first, FIFO per queue, capacity respected (property)', () => {
    type Op = { op: 'sys'; v: number } | { op: 'user'; v: number } | { op: 'take' } | { op: 'drain' };
    const ops = fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('sys' as const), v: fc.integer() }),
        fc.record({ op: fc.constant('user' as const), v: fc.integer() }),
        fc.record({ op: fc.constant('take' as const) }),
        fc.constant({ op: 'drain' as const }),
      ) as fc.Arbitrary<Op>,
      { maxLength: 200 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), ops, (capacity, script) => {
        const m = createMailbox<number, number>(capacity);
        const sys: number[] = [];
        const user: number[] = [];
        for (const o of script) {
          switch (o.op) {
            case 'sys':
              m.pushSystem(o.v);
              sys.push(o.v);
              break;
            case 'user': {
              const accepted = m.pushUser(o.v);
              expect(accepted).toBe(user.length < capacity);
              if (accepted) user.push(o.v);
              break;
            }
            case 'take': {
              // the way a cell takes its next message: a system one if there is any
              const s = m.shiftSystem();
              if (s !== undefined) expect(s).toBe(sys.shift());
              else expect(m.shiftUser()).toBe(user.shift());
              break;
            }
            case 'drain':
              expect(m.drain()).toEqual({ system: sys.splice(0), user: user.splice(0) });
              break;
          }
          expect(m.userSize).toBe(user.length);
          expect(m.userSize).toBeLessThanOrEqual(capacity);
          expect(m.size).toBe(sys.length + user.length);
        }
      }),
      { numRuns: 500 },
    );
  });
});
