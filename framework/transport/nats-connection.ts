/**
 * What the NATS transport and the NATS KV store share about a connection: mapping troupe's
 * connection settings (credentials passed straight through) to nats.js options, and keeping the
 * credentials out of every message, log line and error.
 */
import { nkeyAuthenticator } from '@nats-io/transport-node';
import type { Authenticator, NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import type { Clock, TimerId } from '../clock.ts';

/** Connection settings after validation. */
export interface NatsConnectionSettings {
  readonly servers: readonly string[];
  readonly name?: string | undefined;
  readonly user?: string | undefined;
  readonly pass?: string | undefined;
  readonly token?: string | undefined;
  readonly nkeySeed?: string | undefined;
  readonly authenticators: readonly Authenticator[];
  readonly tls?: NodeConnectionOptions['tls'] | undefined;
  readonly reconnect: boolean;
  readonly maxReconnectAttempts: number;
  readonly reconnectTimeWaitMs: number;
  /** Connect timeout. */
  readonly timeoutMs: number;
}

export function toNatsConnectionOptions(o: NatsConnectionSettings): NodeConnectionOptions {
  const authenticators = [...o.authenticators];
  if (o.nkeySeed !== undefined) authenticators.push(nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed)));
  const nats: NodeConnectionOptions = {
    servers: [...o.servers],
    reconnect: o.reconnect,
    maxReconnectAttempts: o.maxReconnectAttempts,
    reconnectTimeWait: o.reconnectTimeWaitMs,
    timeout: o.timeoutMs,
    // nats.js would build an Error (a stack capture) per request just in case it fails; troupe maps
    // failures to its own typed errors, so that cost on every request buys nothing.
    noAsyncTraces: true,
  };
  if (o.name !== undefined) nats.name = o.name;
  if (o.user !== undefined) nats.user = o.user;
  if (o.pass !== undefined) nats.pass = o.pass;
  if (o.token !== undefined) nats.token = o.token;
  if (authenticators.length > 0) nats.authenticator = authenticators.length === 1 ? authenticators[0]! : authenticators;
  if (o.tls !== undefined) nats.tls = o.tls;
  return nats;
}

/**
 * Keeps secrets out of text: the configured password, token and nkey seed, and any
 * `user:password@` embedded in a server URL, are replaced with `***`.
 */
export class Redactor {
  private readonly secrets: string[];
  readonly serversLabel: string;

  constructor(o: Pick<NatsConnectionSettings, 'servers' | 'pass' | 'token' | 'nkeySeed'>) {
    const secrets = [o.pass, o.token, o.nkeySeed].filter((s): s is string => typeof s === 'string' && s.length > 0);
    const labels: string[] = [];
    for (const server of o.servers) {
      const m = /^([a-z][a-z0-9+.-]*:\/\/)?([^@/]*)@(.*)$/i.exec(server);
      if (m) {
        const userinfo = m[2]!;
        secrets.push(userinfo);
        const colon = userinfo.indexOf(':');
        if (colon >= 0 && colon < userinfo.length - 1) secrets.push(userinfo.slice(colon + 1));
        labels.push(`${m[1] ?? ''}***@${m[3]!}`);
      } else {
        labels.push(server);
      }
    }
    // Longest first, so a secret that contains another is removed whole.
    this.secrets = secrets.sort((a, b) => b.length - a.length);
    this.serversLabel = labels.join(',');
  }

  text(s: string): string {
    let out = s;
    for (const secret of this.secrets) out = out.split(secret).join('***');
    return out;
  }

  /** A copy of `err` safe to log: same name, redacted message, no cause chain. */
  error(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    const safe = new Error(this.text(e.message));
    safe.name = e.name;
    return safe;
  }
}

/**
 * Drain `nc` (deliver what is in flight, then close), but never wait longer than `timeoutMs` on
 * the injected clock: past it, or while reconnecting (a drain needs the server), close at once.
 * Resolves when the connection is closed.
 */
export async function drainWithin(nc: NatsConnection, opts: { clock: Clock; timeoutMs: number; reconnecting: boolean }): Promise<void> {
  let timer: TimerId | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = opts.clock.setTimeout(() => resolve('timeout'), opts.timeoutMs);
  });
  try {
    const drained = opts.reconnecting ? Promise.resolve<'skip'>('skip') : nc.drain().then(() => 'drained' as const);
    const outcome = await Promise.race([drained, deadline]);
    if (outcome !== 'drained' && !nc.isClosed()) await nc.close();
  } catch {
    // Already closed or draining (e.g. closed by the server): wait for nats.js to finish below.
    if (!nc.isClosed() && !nc.isDraining()) await nc.close().catch(() => undefined);
  } finally {
    opts.clock.clearTimeout(timer);
  }
  await nc.closed();
}
