/**
 * Address ↔ subject mapping and name validation (pure).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidNameError } from '../../framework/errors.ts';
import {
  actorSubject, addressOfSubject, formatAddress, MAX_NAME_LENGTH, nodeSubject, parseAddress, subjectProblem, SUBJECT_ROOT, SYSTEM_PATH,
  systemSubject, validateName,
} from '../../framework/transport/subjects.ts';

const FIRST = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const REST = `${FIRST}_-`;
/** Valid names: a letter or digit, then letters, digits, '_' or '-', at most 64 characters. */
const validName = fc
  .tuple(fc.constantFrom(...FIRST), fc.string({ unit: fc.constantFrom(...REST), maxLength: MAX_NAME_LENGTH - 1 }))
  .map(([a, b]) => a + b);

describe('validateName', () => {
  it.each(['a', 'A', '0', 'node-1', 'worker_3', 'x'.repeat(MAX_NAME_LENGTH), '9lives', 'a-_-b'])('accepts %j', (name) => {
    expect(validateName(name, 'actor name')).toBe(name);
  });

  it.each([
    ['', /non-empty/],
    ['x'.repeat(MAX_NAME_LENGTH + 1), /longer/],
    ['a.b', /letters/],
    ['a b', /letters/],
    ['a*', /letters/],
    ['*', /letters/],
    ['>', /letters/],
    ['a/b', /letters/],
    ['_sys', /letters/],
    ['-a', /letters/],
    ['a\tb', /letters/],
    ['é', /letters/],
    ['a\nb', /letters/],
  ])('rejects %j with InvalidNameError', (name, why) => {
    let err: unknown;
    try {
      validateName(name, 'actor name');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidNameError);
    expect((err as InvalidNameError).value).toBe(name);
    expect((err as Error).message).toContain('actor name');
    expect((err as Error).message).toMatch(why);
  });

  it('rejects non-strings', () => {
    expect(() => validateName(undefined as unknown as string, 'x')).toThrow(InvalidNameError);
    expect(() => validateName(42 as unknown as string, 'x')).toThrow(InvalidNameError);
  });

  it('accepts exactly the names that are safe subject tokens (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), (s) => {
        let ok = true;
        try {
          validateName(s, 'n');
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidNameError);
          ok = false;
        }
        expect(ok).toBe(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(s));
        // an accepted name is always one valid, wildcard-free subject token
        if (ok) expect(subjectProblem(`x.${s}.y`, 'publish')).toBeUndefined();
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('parseAddress', () => {
  it('splits node and path', () => {
    expect(parseAddress('n1/a')).toEqual({ node: 'n1', path: ['a'] });
    expect(parseAddress('n1/sup/child/leaf')).toEqual({ node: 'n1', path: ['sup', 'child', 'leaf'] });
  });

  it.each(['n1', '', '/a', 'n1/', 'n1//a', 'n 1/a', 'n1/a b', 'n1/a.b', 'n1/*', 'n1/_sys'])('rejects %j', (address) => {
    expect(() => parseAddress(address)).toThrow(InvalidNameError);
  });

  it('accepts the system path only when asked, and only as the whole path', () => {
    expect(parseAddress(`n1/${SYSTEM_PATH}`, true)).toEqual({ node: 'n1', path: [SYSTEM_PATH] });
    expect(() => parseAddress(`n1/${SYSTEM_PATH}`)).toThrow(InvalidNameError);
    expect(() => parseAddress(`n1/a/${SYSTEM_PATH}`, true)).toThrow(InvalidNameError);
    expect(() => parseAddress(`n1/${SYSTEM_PATH}/x`, true)).toThrow(InvalidNameError);
  });

  it('rejects non-strings with InvalidNameError', () => {
    expect(() => parseAddress(7 as unknown as string)).toThrow(InvalidNameError);
  });
});

describe('subjects', () => {
  it('maps addresses to troupe.<cluster>.<node>.<path…>', () => {
    expect(actorSubject('prod', 'n1/a')).toBe('troupe.prod.n1.a');
    expect(actorSubject('prod', 'n1/sup/w-3')).toBe('troupe.prod.n1.sup.w-3');
    expect(actorSubject('prod', 'n1/_sys')).toBe('troupe.prod.n1._sys');
    expect(nodeSubject('prod', 'n1')).toBe('troupe.prod.n1.>');
    expect(systemSubject('prod', 'n1')).toBe('troupe.prod.n1._sys');
    expect(SUBJECT_ROOT).toBe('troupe');
  });

  it('actorSubject validates the address', () => {
    expect(() => actorSubject('prod', 'n1/a.b')).toThrow(InvalidNameError);
    expect(() => actorSubject('prod', 'n1')).toThrow(InvalidNameError);
  });

  it('addressOfSubject inverts actorSubject, and ignores foreign subjects', () => {
    expect(addressOfSubject('prod', 'troupe.prod.n1.sup.w')).toBe('n1/sup/w');
    expect(addressOfSubject('prod', 'troupe.other.n1.a')).toBeUndefined();
    expect(addressOfSubject('prod', 'nats.prod.n1.a')).toBeUndefined();
    expect(addressOfSubject('prod', 'troupe.prod.n1')).toBeUndefined();
  });

  it('formatAddress joins node and path', () => {
    expect(formatAddress('n1', ['a', 'b'])).toBe('n1/a/b');
  });

  it('round-trips any valid address, and every actor subject is a publishable subject matched by its node subject (property)', () => {
    fc.assert(
      fc.property(validName, validName, fc.array(validName, { minLength: 1, maxLength: 5 }), (cluster, node, path) => {
        const address = formatAddress(node, path);
        expect(parseAddress(address)).toEqual({ node, path });
        const subject = actorSubject(cluster, address);
        expect(subjectProblem(subject, 'publish')).toBeUndefined();
        expect(addressOfSubject(cluster, subject)).toBe(address);
        // the node's one wildcard subscription covers it: same prefix, at least one more token
        const prefix = nodeSubject(cluster, node).slice(0, -1);
        expect(subject.startsWith(prefix)).toBe(true);
        expect(subject.length).toBeGreaterThan(prefix.length);
        expect(subjectProblem(nodeSubject(cluster, node), 'subscribe')).toBeUndefined();
      }),
    );
  });

  it('two different addresses never share a subject (property)', () => {
    fc.assert(
      fc.property(
        fc.tuple(validName, fc.array(validName, { minLength: 1, maxLength: 3 })),
        fc.tuple(validName, fc.array(validName, { minLength: 1, maxLength: 3 })),
        ([n1, p1], [n2, p2]) => {
          const a = formatAddress(n1, p1);
          const b = formatAddress(n2, p2);
          fc.pre(a !== b);
          expect(actorSubject('c', a)).not.toBe(actorSubject('c', b));
        },
      ),
    );
  });
});

describe('subjectProblem (NATS subject syntax)', () => {
  it.each([
    ['a', 'publish', undefined],
    ['a.b.c', 'publish', undefined],
    ['a.*.c', 'subscribe', undefined],
    ['a.>', 'subscribe', undefined],
    ['', 'publish', /empty/],
    ['a..b', 'publish', /empty token/],
    ['.a', 'publish', /empty token/],
    ['a.', 'publish', /empty token/],
    ['a.*', 'publish', /wildcard/],
    ['a.>', 'publish', /wildcard/],
    ['a.>.b', 'subscribe', /last/],
    ['a b', 'publish', /whitespace/],
    ['a\u0000b', 'publish', /control/],
    ['a*b.c', 'publish', undefined],
  ] as const)('%j for %s', (subject, use, problem) => {
    const got = subjectProblem(subject, use);
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(problem);
  });
});
