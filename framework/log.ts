/**
 * Logging: pino. One logger per system, a child per actor carrying `{ node, actor }`. The level
 * comes from the `LOG_LEVEL` environment variable (default `info`); output is pretty only when
 * stdout is a terminal, JSON lines otherwise.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** @default process.env.LOG_LEVEL ?? 'info' */
  level?: LogLevel;
  /** Pretty, human-readable output. @default process.stdout.isTTY */
  pretty?: boolean;
  /** Fixed fields on every line. */
  base?: Record<string, unknown>;
}

function levelFromEnv(): LogLevel {
  const v = process.env['LOG_LEVEL']?.toLowerCase();
  if (v === undefined || v === '') return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new RangeError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${v}'`);
}

/**
 * A pino logger. Credentials never reach it: options objects are logged only through the
 * redaction paths below, which cover every credential field troupe knows.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? levelFromEnv();
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  return pino({
    level,
    base: options.base ?? null,
    redact: { paths: ['pass', 'password', 'token', 'nkeySeed', 'seed', 'tls.key', '*.pass', '*.password', '*.token', '*.nkeySeed'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}

/** A logger that discards everything (unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
