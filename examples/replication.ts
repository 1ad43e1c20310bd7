/**
 * replication — a list replicated on three nodes (three actor systems on one in-process bus),
 * synchronous mode with W=1 of 2 backups; the primary is elected through a lease in a KV store
 * (the memory store here; a NATS KV bucket across processes — see examples/replication-node.ts).
 * A client writes continuously through `replicationClient`, which finds the primary. Then:
 *   1. the primary's process is KILLED (no goodbye): its lease lapses, a backup is elected with a
 *      larger epoch, recovers (adopts the most advanced log it can reach), and serves;
 *   2. the killed node comes back EMPTY (logs live in memory) and catches up from the new primary;
 *   3. at the end, every acknowledged write is in every replica.
 * Role changes print as they happen; a status line (primary, entries, backup lag, staleness) every
 * 300 ms. Each replica's role chart is hosted on its system (`troupe inspect` shows it).
 *
 * Run: npx tsx framework/cli.ts run replication
 */
import { leaseElection } from '../actors/leader-election/lease.ts';
import { replicationClient } from '../actors/replication/client.ts';
import { replicated, type Replicated } from '../actors/replication/replicated.ts';
import { listMachine } from '../actors/replication/sim-scenario.ts';
import type { Clock, TimerId } from '../framework/clock.ts';
import { createLogger, createMemoryBus, createMemoryKvStore, createSystem, realClock, type ActorSystem } from '../framework/index.ts';

const NODES = ['n1', 'n2', 'n3'];
const TTL_MS = 600;

/** A clock that stops for good when its process is killed: no timer of the process fires again. */
function killableClock(base: Clock) {
  let dead = false;
  const clock: Clock = {
    now: () => base.now(),
    setTimeout: (fn, delayMs) => base.setTimeout(() => { if (!dead) fn(); }, delayMs),
    clearTimeout: (id: TimerId) => base.clearTimeout(id),
  };
  return { clock, kill: () => { dead = true; } };
}

export interface ReplicationExampleResult {
  killed: string;
  newPrimary: string;
  acknowledged: number;
  lost: number;
  failoverMs: number;
  /** Every replica's list equals the primary's at the end. */
  converged: boolean;
}

export async function main(options: { say?: (line: string) => void } = {}): Promise<ReplicationExampleResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const base = realClock();
  const bus = createMemoryBus({ clock: base });
  const store = createMemoryKvStore({ clock: base });
  const t0 = base.now();
  const at = (): string => `${String(Math.round(base.now() - t0)).padStart(5)} ms`;
  const pause = (ms: number): Promise<void> => new Promise((r) => base.setTimeout(r, ms));
  const systems = new Map<string, ActorSystem>();
  const replicas = new Map<string, Replicated<typeof listMachine>>();
  const kills = new Map<string, () => void>();
  let closing = false;

  const start = (node: string, joining: boolean): void => {
    const { clock, kill } = killableClock(base);
    const system = createSystem({ cluster: 'demo', node, transport: bus.connect({ name: node }), clock, logger: createLogger({ level: 'error' }) });
    const election = leaseElection({ store, candidate: node, clock, ttlMs: TTL_MS, renewIntervalMs: 150, safetyMarginMs: 60 });
    systems.set(node, system);
    kills.set(node, kill);
    replicas.set(node, replicated(system, {
      name: 'list', machine: listMachine, replicas: NODES, election, mode: 'sync', w: 1, joining, maxStalenessMs: 500,
      onEvent: (e) => {
        if (closing) return;
        if (e.kind === 'role') say(`${at()}  ${e.node} → ${e.role}${e.epoch ? ` (epoch ${e.epoch})` : ''}: ${e.reason}`);
        else if (e.kind === 'truncated') say(`${at()}  ${e.node} drops entries ${e.toSeq + 1}..${e.fromSeq} (a deposed primary's suffix)`);
        else if (e.kind === 'fenced') say(`${at()}  ${e.node} fenced: epoch ${e.epoch} < ${e.by}`);
      },
    }));
  };
  for (const n of NODES) start(n, false);

  const clientSystem = createSystem({ cluster: 'demo', node: 'client', transport: bus.connect({ name: 'client' }), clock: base, logger: createLogger({ level: 'error' }) });
  const client = replicationClient(clientSystem, { name: 'list', replicas: NODES, attemptTimeoutMs: 500 });
  const acked: number[] = [];
  const ackedBy: string[] = [];
  let next = 0;
  let writing = true;
  const writer = async (): Promise<void> => {
    while (writing) {
      const n = ++next;
      try {
        await client.send({ type: 'ADD', n });
        acked.push(n);
        ackedBy.push(client.primary!);
      } catch {
        await pause(20); // not acknowledged (outcome unknown), or no primary yet
      }
      await pause(5);
    }
  };
  const alive = new Set(NODES);
  const statusLine = (): void => {
    const parts = [...alive].map((n) => {
      const s = replicas.get(n)!.status();
      if (s.lag) return `${n} primary e${s.epoch} #${s.lastSeq} lag ${Object.entries(s.lag.byBackup).map(([b, l]) => `${b}:${l}`).join(' ')}`;
      return `${n} ${s.role} #${s.lastSeq} stale ${Number.isFinite(s.stalenessMs) ? `${s.stalenessMs} ms` : '∞'}`;
    });
    say(`${at()}  ${parts.join(' | ')}   acknowledged ${acked.length}`);
  };
  const ticker = base.setTimeout(function tick() {
    statusLine();
    ticker2 = base.setTimeout(tick, 300);
  }, 300);
  let ticker2: TimerId | undefined;
  const writers = [writer(), writer()];
  try {
    const primary = (): string | undefined => [...alive].find((n) => replicas.get(n)!.status().lag !== undefined);
    while (primary() === undefined || acked.length < 50) await pause(20);
    await pause(800);
    const killed = primary()!;
    const before = acked.length;
    say(`${at()}  KILL ${killed} (the primary): ${before} writes acknowledged so far`);
    kills.get(killed)!();
    alive.delete(killed);
    await systems.get(killed)!.shutdown();
    const killedAt = base.now();
    while (!ackedBy.slice(before).some((p) => p !== killed)) await pause(10);
    const failoverMs = Math.round(base.now() - killedAt);
    const newPrimary = primary()!;
    say(`${at()}  ${newPrimary} acknowledged its first write ${failoverMs} ms after the kill`);
    await pause(800);
    say(`${at()}  RESTART ${killed} with an empty log: it catches up from ${newPrimary}`);
    start(killed, true);
    alive.add(killed);
    await pause(800);
    writing = false;
    await Promise.all(writers);
    await pause(300);
    statusLine();
    const want = JSON.stringify(replicas.get(newPrimary)!.read().snapshot.context.items);
    const converged = NODES.every((n) => JSON.stringify(replicas.get(n)!.read({ maxStalenessMs: Number.POSITIVE_INFINITY }).snapshot.context.items) === want);
    const held = new Set(replicas.get(newPrimary)!.read().snapshot.context.items);
    const lost = acked.filter((n) => !held.has(n)).length;
    say(`${at()}  ${acked.length} writes acknowledged, ${lost} lost; replicas ${converged ? 'identical' : 'DIVERGE'}`);
    return { killed, newPrimary, acknowledged: acked.length, lost, failoverMs, converged };
  } finally {
    closing = true;
    writing = false;
    base.clearTimeout(ticker);
    if (ticker2 !== undefined) base.clearTimeout(ticker2);
    for (const [n, r] of replicas) if (alive.has(n)) await r.close();
    for (const k of kills.values()) k();
    for (const s of [...systems.values(), clientSystem]) await s.shutdown().catch(() => undefined);
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
