/**
 * The inspector server: collects a cluster's inspection stream from the transport, keeps a bounded
 * history, and serves the web UI over HTTP and the live stream over WebSocket.
 *
 * Security contract: binds 127.0.0.1 unless told otherwise; any other host needs a `token`; when a
 * token is set every request (page, API, WebSocket) must carry it (`?token=` or
 * `Authorization: Bearer`), else 401. Read-only unless `allowSend`: only then do `send` requests
 * from a browser reach publishers (which deliver only to systems that accept sends).
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { realClock, type Clock } from '../clock.ts';
import { InspectorConfigError } from '../errors.ts';
import { inspectionControlSubject, inspectionWildcard } from '../transport/subjects.ts';
import type { Subscription, Transport } from '../transport/transport.ts';
import { CHART_CSS, renderSvg } from './diagram.ts';
import { decodeBatch, encodeControl, INSPECTION_VERSION, type WireEvent } from './events.ts';
import type { ChartGraph } from './graph.ts';

export const DEFAULT_INSPECTOR_HOST = '127.0.0.1';
export const DEFAULT_INSPECTOR_HISTORY = 100_000;
export const DEFAULT_INSPECTOR_HISTORY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_INSPECTOR_NODE_TIMEOUT_MS = 3_500;
const BROADCAST_INTERVAL_MS = 50;
const LIVENESS_INTERVAL_MS = 500;

/** Options of `startInspectorServer`. */
export interface InspectorServerOptions {
  /** Where the inspection stream arrives (a NATS connection, or a MemoryBus connection for an embedded run). */
  transport: Transport;
  /** Cluster whose stream to collect. */
  cluster: string;
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 0 */
  port?: number;
  /** Required for any host other than loopback; when set, every request must carry it. */
  token?: string;
  /** Let the browser send events to actors. @default false */
  allowSend?: boolean;
  /** Events kept for the time slider (oldest dropped first). @default 100_000 */
  historySize?: number;
  /** …and at most about this many bytes of them (as they arrived on the wire). @default 64 MiB */
  historyBytes?: number;
  /** A node with no batch for this long shows as down. @default 3_500 */
  nodeTimeoutMs?: number;
  /** @default realClock() */
  clock?: Clock;
}

/** A running inspector server. */
export interface InspectorServer {
  /** `http://host:port/` (with `?token=` when a token is set). */
  readonly url: string;
  readonly port: number;
  stats(): InspectorServerStats;
  /** Resolves once a browser is connected (at once if one is). */
  waitForClient(): Promise<void>;
  close(): Promise<void>;
}

export interface InspectorServerStats {
  readonly received: number;
  /** Malformed events (and undecodable batches) counted and ignored. */
  readonly malformed: number;
  readonly clients: number;
  readonly history: number;
  readonly actors: number;
}

/** What the server keeps for an actor (also what the UI's `/api/state` returns). */
interface ActorView {
  actor: string;
  node: string;
  actorType: string;
  parent?: string;
  machineKey?: string;
  value?: unknown;
  status?: string;
  stopped?: string;
}

interface NodeView {
  node: string;
  lastSeen: number;
  up: boolean;
  actors: number;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const here = dirname(fileURLToPath(import.meta.url));

/**
 * Start the server.
 * @example
 * const server = await startInspectorServer({ transport: await connectNats({ servers: url }), cluster: 'shop' });
 * console.log(`inspector at ${server.url}`);
 */
export async function startInspectorServer(options: InspectorServerOptions): Promise<InspectorServer> {
  const host = options.host ?? DEFAULT_INSPECTOR_HOST;
  const token = options.token;
  if (!LOOPBACK.has(host) && !token) throw new InspectorConfigError('host', `binding ${host} (not loopback) requires a token`);
  if (token !== undefined && token.length < 8) throw new InspectorConfigError('token', 'must be at least 8 characters');
  const historySize = options.historySize ?? DEFAULT_INSPECTOR_HISTORY;
  const historyBytes = options.historyBytes ?? DEFAULT_INSPECTOR_HISTORY_BYTES;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? DEFAULT_INSPECTOR_NODE_TIMEOUT_MS;
  const clock = options.clock ?? realClock();
  const { transport, cluster } = options;
  const allowSend = options.allowSend ?? false;

  const counters = { received: 0, malformed: 0 };
  const graphs = new Map<string, ChartGraph>();
  const svgs = new Map<string, Promise<string>>();
  const actors = new Map<string, ActorView>();
  const nodes = new Map<string, NodeView>();
  let history: WireEvent[] = [];
  /** Approximate wire size of each kept event (its batch's bytes / its batch's events), and their sum. */
  let historySizes: number[] = [];
  let keptBytes = 0;
  let outbox: WireEvent[] = [];
  /** Node liveness is the server's own knowledge: it travels as the `nodes` list, not as events. */
  let nodesChanged = false;
  const clients = new Set<WebSocket>();
  const clientWaiters: (() => void)[] = [];
  let broadcastTimer: unknown;
  let closed = false;

  const apply = (ev: WireEvent): void => {
    switch (ev.kind) {
      case 'actor.spawned': {
        if (ev.machine && ev.machineKey && !graphs.has(ev.machineKey)) {
          graphs.set(ev.machineKey, ev.machine);
          void chart(ev.machineKey)?.catch(() => undefined); // lay it out now, before a browser asks
        }
        const prev = actors.get(ev.actor);
        actors.set(ev.actor, {
          actor: ev.actor, node: ev.node, actorType: ev.actorType,
          ...(ev.parent !== undefined ? { parent: ev.parent } : {}),
          ...(ev.machineKey !== undefined ? { machineKey: ev.machineKey } : {}),
          ...(prev && !prev.stopped ? { value: prev.value, status: prev.status } : {}),
        });
        break;
      }
      case 'actor.snapshot': {
        const a = actors.get(ev.actor);
        if (a) {
          a.value = ev.value;
          a.status = ev.status;
        }
        break;
      }
      case 'actor.stopped': {
        const a = actors.get(ev.actor);
        if (a) a.stopped = ev.reason;
        break;
      }
      default:
        break;
    }
  };

  const scheduleBroadcast = (): void => {
    if (broadcastTimer !== undefined || closed) return;
    broadcastTimer = clock.setTimeout(() => {
      broadcastTimer = undefined;
      if (outbox.length === 0 && !nodesChanged) return;
      const text = JSON.stringify({ type: 'events', events: outbox, ...(nodesChanged ? { nodes: [...nodes.values()] } : {}) });
      outbox = [];
      nodesChanged = false;
      for (const ws of clients) if (ws.readyState === ws.OPEN) ws.send(text);
    }, BROADCAST_INTERVAL_MS);
  };

  const onBatch = (data: Uint8Array): void => {
    const { events, malformed } = decodeBatch(data);
    counters.malformed += malformed;
    if (events.length === 0) return;
    const now = clock.now();
    const each = Math.ceil(data.length / events.length);
    for (const ev of events) {
      counters.received++;
      apply(ev);
      let n = nodes.get(ev.node);
      if (!n) {
        nodes.set(ev.node, (n = { node: ev.node, lastSeen: now, up: true, actors: 0 }));
        nodesChanged = true;
      }
      n.lastSeen = now;
      if (!n.up) {
        n.up = true;
        nodesChanged = true;
      }
      if (ev.kind === 'node.heartbeat') n.actors = ev.actors;
      history.push(ev);
      historySizes.push(each);
      keptBytes += each;
      outbox.push(ev);
    }
    if (history.length > historySize * 1.25 || keptBytes > historyBytes) {
      // drop the oldest in one go (amortised), down to the count and below the byte budget
      let drop = Math.max(0, history.length - historySize);
      let bytes = keptBytes;
      for (let i = 0; i < drop; i++) bytes -= historySizes[i]!;
      while (bytes > historyBytes * 0.8 && drop < history.length) bytes -= historySizes[drop++]!;
      history = history.slice(drop);
      historySizes = historySizes.slice(drop);
      keptBytes = bytes;
    }
    scheduleBroadcast();
  };

  let livenessTimer: unknown;
  const liveness = (): void => {
    livenessTimer = undefined;
    if (closed) return;
    const now = clock.now();
    for (const n of nodes.values()) {
      if (n.up && now - n.lastSeen > nodeTimeoutMs) {
        n.up = false;
        nodesChanged = true;
        scheduleBroadcast();
      }
    }
    livenessTimer = clock.setTimeout(liveness, LIVENESS_INTERVAL_MS);
  };
  livenessTimer = clock.setTimeout(liveness, LIVENESS_INTERVAL_MS);

  const subscription: Subscription = transport.subscribe(inspectionWildcard(cluster), (msg) => onBatch(msg.data));
  const requestSync = (): void => {
    try {
      transport.publish(inspectionControlSubject(cluster), encodeControl({ v: INSPECTION_VERSION, type: 'sync' }));
    } catch {
      // transport closing
    }
  };
  requestSync();

  // one self-contained page (the token-protected page cannot load further files without the token)
  const page = readFileSync(join(here, 'ui', 'index.html'), 'utf8')
    .replace('/*CHART_CSS*/', () => CHART_CSS)
    .replace('/*APP_JS*/', () => readFileSync(join(here, 'ui', 'app.js'), 'utf8'));

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (token === undefined) return true;
    const given = url.searchParams.get('token') ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const send = (res: ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(body);
  };

  function chart(key: string): Promise<string> | undefined {
    const graph = graphs.get(key);
    if (!graph) return undefined;
    let svg = svgs.get(key);
    if (!svg) {
      svg = renderSvg(graph, { style: false });
      svgs.set(key, svg);
    }
    return svg;
  }

  const http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!authorized(req, url)) {
      send(res, 401, 'text/plain; charset=utf-8', 'unauthorized: this inspector needs its token (?token=…)\n');
      return;
    }
    if (req.method !== 'GET') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/index.html':
        send(res, 200, 'text/html; charset=utf-8', page);
        return;
      case '/api/state':
        send(res, 200, 'application/json', JSON.stringify({
          cluster, allowSend, ...stats(), actors: [...actors.values()], nodes: [...nodes.values()],
        }));
        return;
      default:
        break;
    }
    const m = /^\/api\/chart\/(.+)$/.exec(url.pathname);
    if (m) {
      const key = decodeURIComponent(m[1]!);
      const svg = chart(key);
      if (!svg) {
        send(res, 404, 'text/plain; charset=utf-8', `no chart ${key}\n`);
        return;
      }
      svg.then(
        (s) => send(res, 200, 'application/json', JSON.stringify({ key, graph: graphs.get(key), svg: s })),
        (err: unknown) => send(res, 500, 'text/plain; charset=utf-8', `layout failed: ${String(err)}\n`),
      );
      return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws' || !authorized(req, url)) {
      socket.write('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      clients.add(ws);
      for (const wake of clientWaiters.splice(0)) wake();
      ws.on('close', () => clients.delete(ws));
      ws.on('error', () => clients.delete(ws));
      ws.send(JSON.stringify({
        type: 'hello', cluster, allowSend, graphs: Object.fromEntries(graphs), nodes: [...nodes.values()], events: history,
      }));
      ws.on('message', (data) => {
        let m: { type?: unknown; actor?: unknown; event?: unknown };
        try {
          m = JSON.parse(String(data)) as typeof m;
        } catch {
          return;
        }
        if (m.type !== 'send') return;
        if (!allowSend) {
          ws.send(JSON.stringify({ type: 'error', message: 'read-only inspector: start it with --allow-send to send events' }));
          return;
        }
        const ev = m.event as { type?: unknown } | null;
        if (typeof m.actor !== 'string' || typeof ev !== 'object' || ev === null || typeof ev.type !== 'string') return;
        try {
          transport.publish(inspectionControlSubject(cluster), encodeControl({
            v: INSPECTION_VERSION, type: 'send', actor: m.actor, event: ev as { type: string },
          }));
        } catch {
          // transport closed
        }
      });
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, host, () => resolveListen());
  });
  const port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;

  function stats(): InspectorServerStats {
    return { received: counters.received, malformed: counters.malformed, clients: clients.size, history: history.length, actors: actors.size };
  }

  return {
    url: `http://${shownHost}:${port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`,
    port,
    stats,
    waitForClient: () => (clients.size > 0 ? Promise.resolve() : new Promise<void>((r) => clientWaiters.push(r))),
    async close() {
      if (closed) return;
      closed = true;
      subscription.unsubscribe();
      if (broadcastTimer !== undefined) clock.clearTimeout(broadcastTimer);
      if (livenessTimer !== undefined) clock.clearTimeout(livenessTimer);
      for (const ws of clients) ws.terminate();
      wss.close();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
