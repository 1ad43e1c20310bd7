/**
 * Dead letters: messages that could not be delivered. Each is counted by reason, kept in a short
 * ring for inspection, offered to subscribers, and logged — at most `logMax` lines per window,
 * with a count of what was suppressed, so a flood cannot flood the log.
 */
import type { Clock } from './clock.ts';
import type { Logger } from './log.ts';

export const DeadLetterReason = {
  /** No actor at the target address. */
  NoActor: 'no-actor',
  /** The target's mailbox was full. */
  MailboxFull: 'mailbox-full',
  /** Bytes that are not a valid envelope or payload. */
  Decode: 'decode',
  /** A message type the codec or the target does not know. */
  UnknownType: 'unknown-type',
  /** Over the payload limit. */
  Oversize: 'oversize',
  /** The actor stopped with the message still in its mailbox. */
  ActorStopped: 'actor-stopped',
  /** The transport refused the message (closed, disconnected). */
  Transport: 'transport',
  /** The system is shut down. */
  Shutdown: 'shutdown',
  /** A reply to an ask nobody waits for any more (timed out), or to a message that was not an ask. */
  NoAsk: 'no-ask',
  /** The target address is not a valid `node/name…`. */
  InvalidAddress: 'invalid-address',
  /** A message that could not be encoded. */
  Encode: 'encode',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

export interface DeadLetter {
  readonly reason: DeadLetterReason;
  readonly target?: string;
  readonly sender?: string;
  readonly messageType?: string;
  readonly subject?: string;
  readonly error?: string;
  readonly atMs: number;
}

/** The dead-letter office of one system. */
export interface DeadLetters {
  /** Total dead letters so far. */
  readonly count: number;
  countsByReason(): Readonly<Partial<Record<DeadLetterReason, number>>>;
  /** The most recent ones (up to 100), oldest first. */
  recent(): readonly DeadLetter[];
  /** Called for every dead letter; returns an unsubscribe function. */
  subscribe(listener: (dl: DeadLetter) => void): () => void;
}

const RECENT = 100;

export function createDeadLetterOffice(opts: { clock: Clock; logger: Logger; logWindowMs: number; logMax: number }): DeadLetters & {
  record(dl: Omit<DeadLetter, 'atMs'>): void;
} {
  let count = 0;
  const byReason: Partial<Record<DeadLetterReason, number>> = {};
  const ring: DeadLetter[] = [];
  const listeners = new Set<(dl: DeadLetter) => void>();
  let windowStart = Number.NEGATIVE_INFINITY;
  let loggedInWindow = 0;
  let suppressed = 0;
  return {
    get count() { return count; },
    countsByReason: () => ({ ...byReason }),
    recent: () => [...ring],
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    record(partial) {
      const dl: DeadLetter = { ...partial, atMs: opts.clock.now() };
      count++;
      byReason[dl.reason] = (byReason[dl.reason] ?? 0) + 1;
      ring.push(dl);
      if (ring.length > RECENT) ring.shift();
      if (dl.atMs - windowStart >= opts.logWindowMs) {
        if (suppressed > 0) opts.logger.warn({ suppressed, windowMs: opts.logWindowMs }, `${suppressed} more dead letters were not logged`);
        windowStart = dl.atMs;
        loggedInWindow = 0;
        suppressed = 0;
      }
      if (loggedInWindow < opts.logMax) {
        loggedInWindow++;
        opts.logger.warn({ deadLetter: dl }, `dead letter (${dl.reason})${dl.target ? ` to ${dl.target}` : ''}${dl.messageType ? `: ${dl.messageType}` : ''}`);
      } else {
        suppressed++;
      }
      for (const l of listeners) {
        try { l(dl); } catch (err) { opts.logger.error({ err }, 'dead-letter listener threw'); }
      }
    },
  };
}
