/**
 * Starts real `nats-server` processes — for integration tests, benchmarks and `troupe run
 * --spawn-nats` — the way nats.js's
 * `nst/src/launcher.ts` does: write a config with `port: -1` and `ports_file_dir` into a fresh temp
 * dir, spawn `nats-server -c`, poll the ports file while racing early exit, and clean everything up
 * (process and temp dir) on `stop()` / `Symbol.asyncDispose`. Servers bind 127.0.0.1 only.
 *
 * @example
 * await using srv = await startNatsServer({ jetstream: true });
 * const t = await connectNats({ servers: srv.url });
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** Where Debian puts the binary; often not on a non-root user's PATH. */
const DEBIAN_NATS_SERVER = '/usr/sbin/nats-server';
const START_DEADLINE_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 20;
const STDERR_KEEP_CHARS = 16_384;

/** What to say when the binary is missing. */
export const NATS_SERVER_MISSING =
  'nats-server was not found on PATH or at /usr/sbin/nats-server: install it with `apt-get install -y nats-server` (Debian)';

/** The nats-server executable, or undefined when it is not installed. */
export function findNatsServer(): string | undefined {
  const candidates = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((d) => d.length > 0)
    .map((d) => join(d, 'nats-server'));
  candidates.push(DEBIAN_NATS_SERVER, '/usr/local/bin/nats-server', '/usr/bin/nats-server');
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True when a nats-server binary can be started. */
export function natsServerAvailable(): boolean {
  return findNatsServer() !== undefined;
}

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream, storing inside the server's temp dir. */
  jetstream?: boolean;
  /** Extra config text appended to the generated config. */
  config?: string;
  /** Require this user (with `pass`) from clients. */
  user?: string;
  /** The password that goes with `user`. */
  pass?: string;
  /** Require this token. */
  token?: string;
}

/** A running (or stopped) nats-server. */
export interface NatsServerHandle {
  /** `nats://127.0.0.1:<port>` — stable across restarts. */
  readonly url: string;
  readonly port: number;
  /** Process id of the current incarnation. */
  readonly pid: number;
  /** The temp dir holding config, ports file and JetStream store. */
  readonly dir: string;
  /** Server log so far (stderr), for failure messages. */
  log(): string;
  /** SIGTERM, SIGKILL after a grace period, then remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Send a signal (default SIGKILL) and wait for the process to exit; the temp dir is kept. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start again on the same port(s) with the same store; stops the current process first if needed. */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Start one nats-server on a free loopback port. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const exe = requireExecutable();
  const dir = mkdtempSync(join(tmpdir(), 'troupe-nats-'));
  const server = new ServerProcess(exe, dir, 'n1', (port) => singleServerConfig(dir, port, opts));
  try {
    await server.start();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions extends NatsServerOptions {
  /** @default true */
  jetstream?: boolean;
}

/** A running cluster of nats-servers with full-mesh routes on loopback. */
export interface NatsClusterHandle {
  readonly servers: readonly NatsServerHandle[];
  /** One client URL per server. */
  readonly urls: readonly string[];
  /** Stop every server and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Kill server `i` (default SIGKILL). */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Restart server `i` on its ports and wait until its routes are back. */
  restart(i: number): Promise<void>;
  /** Resolves when every running server has a route to every other running server. */
  waitForRoutes(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Start `size` clustered nats-servers (JetStream on by default) and wait until routes are up. */
export async function startNatsCluster(size = 3, opts: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  const exe = requireExecutable();
  const root = mkdtempSync(join(tmpdir(), 'troupe-nats-cluster-'));
  const ports = await freePorts(size * 3);
  const nodes = Array.from({ length: size }, (_, i) => ({
    name: `s${i + 1}`,
    client: ports[i * 3]!,
    cluster: ports[i * 3 + 1]!,
    http: ports[i * 3 + 2]!,
  }));
  const servers = nodes.map((node, i) => {
    const dir = join(root, node.name);
    const routes = nodes.filter((_, j) => j !== i).map((n) => `nats-route://127.0.0.1:${n.cluster}`);
    return new ServerProcess(exe, dir, node.name, () =>
      clusterServerConfig(dir, node, routes, { ...opts, jetstream: opts.jetstream ?? true }),
      node.http,
    );
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled(servers.map((s) => s.stop()));
    await rm(root, { recursive: true, force: true });
  };
  const waitForRoutes = async (): Promise<void> => {
    const running = servers.filter((s) => s.running);
    const deadline = performance.now() + START_DEADLINE_MS;
    for (;;) {
      const counts = await Promise.all(running.map((s) => s.routeCount()));
      if (counts.every((c) => c >= running.length - 1)) return;
      if (performance.now() > deadline) {
        throw new Error(`cluster routes not up after ${START_DEADLINE_MS} ms (routes per server: ${counts.join(', ')})`);
      }
      await pause(50);
    }
  };
  try {
    await Promise.all(servers.map((s) => mkdir(s.dir, { recursive: true })));
    await Promise.all(servers.map((s) => s.start()));
    await waitForRoutes();
  } catch (err) {
    await stop();
    throw err;
  }
  const at = (i: number): ServerProcess => {
    const s = servers[i];
    if (!s) throw new RangeError(`no server ${i} in a cluster of ${size}`);
    return s;
  };
  return {
    servers,
    urls: servers.map((s) => s.url),
    stop,
    kill: (i, signal) => at(i).kill(signal),
    restart: async (i) => {
      await at(i).restart();
      await waitForRoutes();
    },
    waitForRoutes,
    [Symbol.asyncDispose]: stop,
  };
}

/** A port that was free a moment ago on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

// ---------------------------------------------------------------------------------------------

export function requireExecutable(): string {
  const exe = findNatsServer();
  if (!exe) throw new Error(NATS_SERVER_MISSING);
  return exe;
}

const q = (s: string): string => JSON.stringify(s);

function authConfig(opts: NatsServerOptions): string {
  if (opts.user !== undefined || opts.pass !== undefined) {
    return `authorization {\n  user: ${q(opts.user ?? '')}\n  password: ${q(opts.pass ?? '')}\n}`;
  }
  if (opts.token !== undefined) return `authorization {\n  token: ${q(opts.token)}\n}`;
  return '';
}

function jetstreamConfig(dir: string, on: boolean | undefined): string {
  return on ? `jetstream {\n  store_dir: ${q(join(dir, 'js'))}\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}` : '';
}

function singleServerConfig(dir: string, port: number | undefined, opts: NatsServerOptions): string {
  return [
    `listen: ${q(`127.0.0.1:${port ?? -1}`)}`,
    `ports_file_dir: ${q(dir)}`,
    `server_name: "n1"`,
    jetstreamConfig(dir, opts.jetstream),
    authConfig(opts),
    opts.config ?? '',
  ].join('\n');
}

function clusterServerConfig(
  dir: string,
  node: { name: string; client: number; cluster: number; http: number },
  routes: string[],
  opts: NatsClusterOptions,
): string {
  return [
    `listen: ${q(`127.0.0.1:${node.client}`)}`,
    `http: ${q(`127.0.0.1:${node.http}`)}`,
    `ports_file_dir: ${q(dir)}`,
    `server_name: ${q(node.name)}`,
    jetstreamConfig(dir, opts.jetstream),
    authConfig(opts),
    `cluster {\n  name: "troupe-test"\n  listen: ${q(`127.0.0.1:${node.cluster}`)}\n  routes: [\n${routes.map((r) => `    ${q(r)}`).join('\n')}\n  ]\n}`,
    opts.config ?? '',
  ].join('\n');
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms)); // real clock: process management, not actor time
}

/** One nats-server config and its successive processes. */
class ServerProcess implements NatsServerHandle {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  private stderr = '';
  private knownPort: number | undefined;
  private removed = false;
  private readonly killOnExit = (): void => {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      // already gone
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort at process exit
    }
  };

  constructor(
    private readonly exe: string,
    readonly dir: string,
    private readonly label: string,
    private readonly config: (port: number | undefined) => string,
    private readonly httpPort?: number,
  ) {}

  get port(): number {
    if (this.knownPort === undefined) throw new Error(`nats-server ${this.label} has not started`);
    return this.knownPort;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    return this.stderr;
  }

  async start(): Promise<void> {
    if (this.running) return;
    if (this.removed) throw new Error(`nats-server ${this.label} was stopped; its dir is gone`);
    await mkdir(this.dir, { recursive: true });
    const confPath = join(this.dir, 'server.conf');
    await writeFile(confPath, this.config(this.knownPort));
    const child = spawn(this.exe, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stderr = '';
    const keep = (chunk: Buffer): void => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_KEEP_CHARS);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exited = false;
    this.exitPromise = new Promise<void>((resolve) => {
      child.once('exit', () => {
        exited = true;
        process.removeListener('exit', this.killOnExit);
        resolve();
      });
      child.once('error', (err) => {
        keep(Buffer.from(`spawn error: ${err.message}\n`));
        exited = true;
        resolve();
      });
    });
    process.on('exit', this.killOnExit);

    const deadline = performance.now() + START_DEADLINE_MS;
    for (;;) {
      if (exited) {
        throw new Error(`nats-server ${this.label} exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${this.stderr}`);
      }
      const port = child.pid === undefined ? undefined : await this.readPortsFile(child.pid);
      if (port !== undefined) {
        this.knownPort = port;
        return;
      }
      if (performance.now() > deadline) {
        child.kill('SIGKILL');
        await this.exitPromise;
        throw new Error(`nats-server ${this.label} did not write its ports file within ${START_DEADLINE_MS} ms:\n${this.stderr}`);
      }
      await Promise.race([pause(POLL_MS), this.exitPromise]);
    }
  }

  private async readPortsFile(pid: number): Promise<number | undefined> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return undefined;
    }
    const file = names.find((n) => n.endsWith(`_${pid}.ports`));
    if (!file) return undefined;
    try {
      const ports = JSON.parse(await readFile(join(this.dir, file), 'utf8')) as { nats?: string[] };
      const url = ports.nats?.[0];
      const port = url ? Number(new URL(url).port) : NaN;
      return Number.isInteger(port) && port > 0 ? port : undefined;
    } catch {
      return undefined; // written but not complete yet
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child?.kill(signal);
    await this.exitPromise;
  }

  private async stopProcess(): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGTERM');
    const graceful = await Promise.race([this.exitPromise.then(() => true), pause(STOP_GRACE_MS).then(() => false)]);
    if (!graceful) {
      this.child?.kill('SIGKILL');
      await this.exitPromise;
    }
  }

  async restart(): Promise<void> {
    await this.stopProcess();
    await this.start();
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    process.removeListener('exit', this.killOnExit);
    if (!this.removed) {
      this.removed = true;
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  /** Routes this server reports on its monitoring port (0 when unreachable). */
  async routeCount(): Promise<number> {
    if (this.httpPort === undefined) return 0;
    try {
      const res = await fetch(`http://127.0.0.1:${this.httpPort}/routez`);
      const body = (await res.json()) as { num_routes?: number };
      return body.num_routes ?? 0;
    } catch {
      return 0;
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
