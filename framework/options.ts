/**
 * System options: `DEFAULT_*` constants, one validating resolver that names the bad property.
 * Durations are in milliseconds, with the unit in the name.
 */
import { createRng, entropySeed, realClock, type Clock, type Rng } from './clock.ts';
import type { MessageSet } from './codec/messages.ts';
import type { Address } from './ref.ts';
import type { AskPolicy } from './system.ts';
import type { InspectionSink } from './inspector/events.ts';
import { createLogger, type Logger } from './log.ts';
import { resolvePolicy, type SupervisionOptions, type SupervisionPolicy } from './supervision.ts';
import { validateName } from './transport/subjects.ts';
import type { Transport } from './transport/transport.ts';

export const DEFAULT_CLUSTER = 'troupe';
export const DEFAULT_MAILBOX_CAPACITY = 10_000;
export const DEFAULT_THROUGHPUT = 256;
export const DEFAULT_ASK_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 1_000;
export const DEFAULT_MISSED_HEARTBEATS = 3;
export const DEFAULT_DEAD_LETTER_LOG_WINDOW_MS = 10_000;
export const DEFAULT_DEAD_LETTER_LOG_MAX = 10;

/** Options of `createSystem`. */
export interface SystemOptions {
  /** Cluster name: the subject namespace shared by every node of the cluster. @default 'troupe' */
  cluster?: string;
  /** This node's name, unique in the cluster. @default `node-` + 8 hex digits from `rng` */
  node?: string;
  /**
   * The bus. The system owns it and closes it on shutdown.
   * @default a connection to a private in-process MemoryBus (single-node)
   */
  transport?: Transport;
  /** Time source for every timer of the system and its actors. @default realClock() */
  clock?: Clock;
  /** Randomness (ids, jitter). @default createRng(entropySeed()) */
  rng?: Rng;
  /** @default createLogger() (LOG_LEVEL, pretty on a terminal) */
  logger?: Logger;
  /** User messages an actor may have queued before further ones are dead letters. @default 10_000 */
  mailboxCapacity?: number;
  /** Messages an actor processes per turn before yielding to I/O. @default 256 */
  throughput?: number;
  /** Default timeout of `ask`. @default 5_000 */
  askTimeoutMs?: number;
  /** Largest encoded envelope accepted or sent. @default min(1 MiB, transport's limit) */
  maxPayloadBytes?: number;
  /** How often a node probes nodes it watches actors on. @default 1_000 */
  heartbeatIntervalMs?: number;
  /** How long one probe may take. @default 1_000 */
  heartbeatTimeoutMs?: number;
  /** Consecutive failed probes before watched actors on that node count as terminated. @default 3 */
  missedHeartbeats?: number;
  /** Dead letters are logged at most `deadLetterLogMax` times per window. @default 10_000 */
  deadLetterLogWindowMs?: number;
  /** @default 10 */
  deadLetterLogMax?: number;
  /** Supervision of top-level actors that do not say otherwise. */
  supervision?: SupervisionOptions;
  /** Inspection sink; when absent, the runtime builds no inspection events. */
  inspect?: InspectionSink;
  /**
   * Message sets this node sends without hosting an actor that accepts them (a client-only node).
   * Sets of spawned actors are learnt automatically.
   */
  messages?: readonly MessageSet[];
  /** A default resilience policy per ask target (one breaker per dependency, say); `ask({ policy })` overrides it. */
  policyFor?: (target: Address) => AskPolicy | undefined;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  cluster: string;
  node: string;
  transport: Transport | undefined;
  clock: Clock;
  rng: Rng;
  logger: Logger;
  mailboxCapacity: number;
  throughput: number;
  askTimeoutMs: number;
  maxPayloadBytes: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  missedHeartbeats: number;
  deadLetterLogWindowMs: number;
  deadLetterLogMax: number;
  supervision: SupervisionPolicy;
  inspect: InspectionSink | undefined;
  messages: readonly MessageSet[];
  policyFor: ((target: Address) => AskPolicy | undefined) | undefined;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new RangeError(`option ${name} must be an integer ≥ ${min}, got ${String(v)}`);
  }
  return v;
}

/** Fill defaults and validate. Throws `RangeError` (or `InvalidNameError` for names) naming the option. */
export function resolveOptions(options: SystemOptions = {}): ResolvedOptions {
  const rng = options.rng ?? createRng(entropySeed());
  const cluster = validateName(options.cluster ?? DEFAULT_CLUSTER, 'option cluster');
  const node = validateName(options.node ?? `node-${rng.hex(8)}`, 'option node');
  const transportLimit = options.transport?.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const maxPayloadBytes = positiveInt('maxPayloadBytes', options.maxPayloadBytes, Math.min(DEFAULT_MAX_PAYLOAD_BYTES, transportLimit), 64);
  if (maxPayloadBytes > transportLimit) {
    throw new RangeError(`option maxPayloadBytes (${maxPayloadBytes}) exceeds the transport's limit (${transportLimit})`);
  }
  return {
    cluster,
    node,
    transport: options.transport,
    clock: options.clock ?? realClock(),
    rng,
    logger: options.logger ?? createLogger(),
    mailboxCapacity: positiveInt('mailboxCapacity', options.mailboxCapacity, DEFAULT_MAILBOX_CAPACITY),
    throughput: positiveInt('throughput', options.throughput, DEFAULT_THROUGHPUT),
    askTimeoutMs: positiveInt('askTimeoutMs', options.askTimeoutMs, DEFAULT_ASK_TIMEOUT_MS),
    maxPayloadBytes,
    heartbeatIntervalMs: positiveInt('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS),
    heartbeatTimeoutMs: positiveInt('heartbeatTimeoutMs', options.heartbeatTimeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS),
    missedHeartbeats: positiveInt('missedHeartbeats', options.missedHeartbeats, DEFAULT_MISSED_HEARTBEATS),
    deadLetterLogWindowMs: positiveInt('deadLetterLogWindowMs', options.deadLetterLogWindowMs, DEFAULT_DEAD_LETTER_LOG_WINDOW_MS),
    deadLetterLogMax: positiveInt('deadLetterLogMax', options.deadLetterLogMax, DEFAULT_DEAD_LETTER_LOG_MAX, 0),
    supervision: resolvePolicy(options.supervision),
    inspect: options.inspect,
    messages: options.messages ?? [],
    policyFor: options.policyFor,
  };
}
