/**
 * Address ↔ subject mapping, and name validation. The only place subjects are built.
 *
 * An actor's address is `node/path` where path is one or more `/`-separated names
 * (`n1/orders/worker-3`). Its subject is `troupe.<cluster>.<node>.<path tokens>`. A node holds one
 * wildcard subscription `troupe.<cluster>.<node>.>` for all its actors; `_sys` is the node's own
 * endpoint (heartbeats, death watch).
 */
import { InvalidNameError } from '../errors.ts';

/** First token of every troupe subject. */
export const SUBJECT_ROOT = 'troupe';
/** Path of a node's own system endpoint; user names cannot start with `_`. */
export const SYSTEM_PATH = '_sys';

const TOKEN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const SYSTEM_TOKEN = /^_[A-Za-z0-9_-]+$/;
/** Longest allowed name (cluster, node or path segment). */
export const MAX_NAME_LENGTH = 64;

/** Throws `InvalidNameError` unless `value` can be a subject token. `what` names it in the message. */
export function validateName(value: string, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidNameError(String(value), `${what} must be a non-empty string`);
  if (value.length > MAX_NAME_LENGTH) throw new InvalidNameError(value, `${what} is longer than ${MAX_NAME_LENGTH} characters`);
  if (!TOKEN.test(value)) {
    throw new InvalidNameError(
      value,
      `${what} may use only letters, digits, '-' and '_' and must start with a letter or digit (no '.', '*', '>', '/', spaces)`,
    );
  }
  return value;
}

/** A parsed actor address. */
export interface ParsedAddress {
  readonly node: string;
  /** Path segments below the node, at least one. */
  readonly path: readonly string[];
}

/** Parse and validate `node/seg/…`. System endpoints (`node/_sys`, `node/_w12`) are accepted only when `allowSystem`. */
export function parseAddress(address: string, allowSystem = false): ParsedAddress {
  if (typeof address !== 'string') throw new InvalidNameError(String(address), 'an address must be a string "node/name"');
  const parts = address.split('/');
  if (parts.length < 2) throw new InvalidNameError(address, 'an address is "node/name" (node, then one or more actor names)');
  const [node, ...path] = parts as [string, ...string[]];
  validateName(node, 'node name');
  path.forEach((seg, i) => {
    // system endpoints (`_sys`, watch handles `_w…`) are one `_`-prefixed segment
    if (allowSystem && i === 0 && path.length === 1 && SYSTEM_TOKEN.test(seg)) return;
    validateName(seg, 'actor name');
  });
  return { node, path };
}

export function formatAddress(node: string, path: readonly string[]): string {
  return `${node}/${path.join('/')}`;
}

/** Subject of the actor at `address` (validated). */
export function actorSubject(cluster: string, address: string): string {
  const { node, path } = parseAddress(address, true);
  return `${SUBJECT_ROOT}.${cluster}.${node}.${path.join('.')}`;
}

/** The one wildcard subject a node subscribes to. */
export function nodeSubject(cluster: string, node: string): string {
  return `${SUBJECT_ROOT}.${cluster}.${node}.>`;
}

/** Subject of a node's system endpoint. */
export function systemSubject(cluster: string, node: string): string {
  return `${SUBJECT_ROOT}.${cluster}.${node}.${SYSTEM_PATH}`;
}

/**
 * Subject of a cluster-wide framework service (membership heartbeats, the receptionist):
 * `troupe.<cluster>._<service>.<tokens…>`. Never an actor subject, since node names cannot start
 * with `_`. Tokens are validated like names.
 */
export function serviceSubject(cluster: string, service: string, ...tokens: string[]): string {
  validateName(service, 'service name');
  for (const t of tokens) validateName(t, 'service subject token');
  return [SUBJECT_ROOT, cluster, `_${service}`, ...tokens].join('.');
}

/**
 * Subject a node publishes its inspection events on: `troupe.<cluster>._inspect.<node>`. The
 * `_inspect` token cannot be a node name, so no node's wildcard subscription receives them.
 */
export function inspectionSubject(cluster: string, node: string): string {
  return `${SUBJECT_ROOT}.${cluster}._inspect.${node}`;
}

/** What an inspector subscribes to for every node's inspection events. */
export function inspectionWildcard(cluster: string): string {
  return `${SUBJECT_ROOT}.${cluster}._inspect.*`;
}

/** Where an inspector sends control messages (sync requests, events for actors) to every publisher. */
export function inspectionControlSubject(cluster: string): string {
  return `${SUBJECT_ROOT}.${cluster}._inspect_ctl`;
}

/** The address a subject on `cluster` names, or undefined when it is not a troupe actor subject. */
export function addressOfSubject(cluster: string, subject: string): string | undefined {
  const tokens = subject.split('.');
  if (tokens.length < 4 || tokens[0] !== SUBJECT_ROOT || tokens[1] !== cluster) return undefined;
  return `${tokens[2]}/${tokens.slice(3).join('/')}`;
}

// Subject syntax, shared by every transport so all reject the same subjects the same way.


/** Where a subject is used: wildcards are only meaningful when subscribing. */
export type SubjectUse = 'publish' | 'subscribe';

/**
 * Why `subject` is not a valid NATS subject for `use`, or `undefined` when it is.
 * Rules (nats-server's, strict form): non-empty; no whitespace or control characters; no empty
 * tokens (`a..b`, `.a`, `a.`); `*` and `>` are wildcards only as whole tokens, only when
 * subscribing, and `>` only as the last token.
 */
export function subjectProblem(subject: string, use: SubjectUse): string | undefined {
  if (typeof subject !== 'string' || subject.length === 0) return 'subject is empty';
  let tokenStart = 0;
  const n = subject.length;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? subject.charCodeAt(i) : 46; /* '.' closes the last token */
    if (c === 46) {
      const len = i - tokenStart;
      if (len === 0) return 'subject has an empty token';
      if (len === 1) {
        const t = subject.charCodeAt(tokenStart);
        if (t === 42 /* * */ || t === 62 /* > */) {
          if (use === 'publish') return 'wildcards are not allowed when publishing';
          if (t === 62 && i !== n) return "'>' must be the last token";
        }
      }
      tokenStart = i + 1;
    } else if (c <= 32 || c === 127) {
      return 'subject contains whitespace or a control character';
    }
  }
  return undefined;
}

/** Throws `InvalidNameError` when `subject` is not valid for `use` (see {@link subjectProblem}). */
export function assertValidSubject(subject: string, use: SubjectUse): void {
  const problem = subjectProblem(subject, use);
  if (problem !== undefined) throw new InvalidNameError(String(subject), problem);
}

/** Throws `InvalidNameError` when `queue` is not a valid queue group name. */
export function assertValidQueue(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0) throw new InvalidNameError(String(queue), 'queue group name is empty');
  for (let i = 0; i < queue.length; i++) {
    const c = queue.charCodeAt(i);
    if (c <= 32 || c === 127) throw new InvalidNameError(queue, 'queue group name contains whitespace or a control character');
  }
}
