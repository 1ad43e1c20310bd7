/**
 * Peer frameworks compared with troupe live in their own folder, test/bench/peers/, with their own
 * package.json and lock file: moleculer 0.14 declares an optional peer dependency on pino ≤ 9, which
 * the root's pino 10 contradicts, so as a root devDependency it would make every `npm install` of the
 * project fail with ERESOLVE. They are installed (`npm ci --prefix test/bench/peers`) on first use.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEERS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'peers');

/** The part of moleculer's ServiceBroker the benches use. */
export interface MoleculerBroker {
  start(): Promise<void>;
  stop(): Promise<void>;
  createService(schema: object): unknown;
  emit(event: string, payload?: unknown, opts?: object): Promise<void>;
  waitForServices(names: string | string[], timeoutMs?: number): Promise<unknown>;
}

export interface Moleculer {
  ServiceBroker: new (options: object) => MoleculerBroker;
  /** The installed version, for the report. */
  version: string;
}

function ensureInstalled(pkg: string, log: (line: string) => void): void {
  if (existsSync(join(PEERS_DIR, 'node_modules', pkg, 'package.json'))) return;
  log(`  installing bench peers (npm ci --prefix ${PEERS_DIR}) …`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--prefix', PEERS_DIR, '--no-audit', '--no-fund', '--loglevel=error'], { stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`could not install the bench peers in ${PEERS_DIR} (npm ci exited ${r.status ?? r.signal})`);
}

/** moleculer (0.14, with the `nats` 2.x client its NATS transporter needs), installed if missing. */
export function loadMoleculer(log: (line: string) => void): Moleculer {
  ensureInstalled('moleculer', log);
  ensureInstalled('nats', log);
  const req = createRequire(join(PEERS_DIR, 'package.json'));
  const mod = req('moleculer') as { ServiceBroker: Moleculer['ServiceBroker'] };
  const version = (JSON.parse(readFileSync(join(PEERS_DIR, 'node_modules', 'moleculer', 'package.json'), 'utf8')) as { version: string }).version;
  return { ServiceBroker: mod.ServiceBroker, version };
}
