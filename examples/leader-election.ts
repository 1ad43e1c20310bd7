/**
 * leader-election — three candidates (three actor systems on one in-process bus) campaign for the
 * group `jobs` over a lease in a KV store (the memory store here; a NATS KV bucket in production).
 * The leader works every 100 ms, writing its epoch to a fenced ledger. Then:
 *   1. the leader's process is PAUSED past its lease: another candidate is elected with a larger
 *      epoch; when the old leader wakes, isLeader() is already false before it does anything — and
 *      when it writes anyway with its old epoch, the ledger rejects it;
 *   2. the leader's process is KILLED (no goodbye): a new leader within TTL + renew interval + margin;
 *   3. the leader RESIGNS: a new leader at once.
 * Every election is printed with its epoch; each campaign's chart is hosted on its system.
 *
 * Run: npx tsx framework/cli.ts run leader-election
 */
import { leaseElection, type LeaseCampaign } from '../actors/leader-election/lease.ts';
import {
  createLogger, createMemoryBus, createMemoryKvStore, createSystem, realClock, type ActorSystem, type KvStore,
} from '../framework/index.ts';
import type { Clock, TimerId } from '../framework/clock.ts';

const TTL_MS = 600;
const RENEW_MS = 150;
const MARGIN_MS = 60;

/**
 * A process that can be frozen (as by SIGSTOP or a long GC pause) or killed: while paused its
 * timers and the answers to its store calls are held, and all arrive when it resumes; once killed
 * nothing of it runs again.
 */
function simulatedProcess(base: Clock) {
  let paused = false;
  let dead = false;
  const held: Array<() => void> = [];
  const run = (fn: () => void): void => {
    if (dead) return;
    if (paused) held.push(fn);
    else fn();
  };
  const clock: Clock = {
    now: () => base.now(),
    setTimeout: (fn, delayMs) => {
      const handle: { inner?: TimerId; cancelled: boolean } = { cancelled: false };
      handle.inner = base.setTimeout(() => run(() => { if (!handle.cancelled) fn(); }), delayMs);
      return handle;
    },
    clearTimeout: (id) => {
      const handle = id as { inner?: TimerId; cancelled: boolean } | undefined;
      if (!handle) return;
      handle.cancelled = true;
      base.clearTimeout(handle.inner);
    },
  };
  const gate = <T>(p: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => p.then((v) => run(() => resolve(v)), (e: unknown) => run(() => reject(e as Error))));
  const link = (store: KvStore): KvStore => ({
    kind: store.kind,
    get: (k) => gate(store.get(k)),
    create: (k, v, o) => gate(store.create(k, v, o)),
    update: (k, v, r) => gate(store.update(k, v, r)),
    put: (k, v) => gate(store.put(k, v)),
    delete: (k, o) => gate(store.delete(k, o)),
    keys: (p) => gate(store.keys(p)),
    watch: (p, on, o) => gate(store.watch(p, (e) => run(() => on(e)), o)),
    close: async () => undefined,
  });
  return {
    clock,
    link,
    get paused() { return paused; },
    get dead() { return dead; },
    pause: () => { paused = true; },
    resume: () => { paused = false; for (const fn of held.splice(0)) run(fn); },
    kill: () => { dead = true; held.length = 0; },
  };
}

/** A resource that refuses a write whose epoch is smaller than one it has accepted. */
function fencedLedger(say: (line: string) => void) {
  let highest = 0;
  let accepted = 0;
  const rejected: Array<{ by: string; epoch: number }> = [];
  return {
    write(by: string, epoch: number): boolean {
      if (epoch < highest) {
        rejected.push({ by, epoch });
        say(`  ✗ ledger rejects ${by}: epoch ${epoch} < ${highest}`);
        return false;
      }
      highest = epoch;
      accepted++;
      return true;
    },
    get accepted() { return accepted; },
    rejected,
  };
}

export interface LeaderElectionExampleResult {
  elections: Array<{ candidate: string; epoch: number }>;
  /** What the paused leader's first work tick after waking saw. */
  wokeUpAsLeader: boolean;
  rejected: Array<{ by: string; epoch: number }>;
  killTakeoverMs: number;
  resignTakeoverMs: number;
}

export async function main(options: { say?: (line: string) => void } = {}): Promise<LeaderElectionExampleResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const clock = realClock();
  const bus = createMemoryBus({ clock });
  const store = createMemoryKvStore({ clock });
  const ledger = fencedLedger(say);
  const names = ['n1', 'n2', 'n3'];
  const systems = new Map<string, ActorSystem>();
  const procs = new Map<string, ReturnType<typeof simulatedProcess>>();
  const campaigns = new Map<string, LeaseCampaign>();
  const elections: Array<{ candidate: string; epoch: number }> = [];
  let wokeUpAsLeader: boolean | undefined;
  let watchWake: string | undefined;
  const t0 = clock.now();
  const at = (): string => `${String(Math.round(clock.now() - t0)).padStart(5)} ms`;

  for (const name of names) {
    const system = createSystem({ cluster: 'demo', node: name, transport: bus.connect({ name }), clock, logger: createLogger({ level: 'error' }) });
    systems.set(name, system);
    const proc = simulatedProcess(clock);
    procs.set(name, proc);
    const election = leaseElection({ store: proc.link(store), candidate: name, clock: proc.clock, ttlMs: TTL_MS, renewIntervalMs: RENEW_MS, safetyMarginMs: MARGIN_MS });
    const campaign = election.campaign('jobs', {
      onElected: ({ epoch }) => { elections.push({ candidate: name, epoch }); say(`${at()}  ★ ${name} elected for 'jobs', epoch ${epoch}`); },
      onDeposed: ({ epoch, reason }) => say(`${at()}  ☆ ${name} deposed from epoch ${epoch}: ${reason}`),
    });
    campaigns.set(name, campaign);
    system.host('election-jobs', campaign.actor, { type: 'leader-election' });
    // The application's work: only when isLeader() says so, and always with the epoch.
    const work = (): void => {
      if (watchWake === name) {
        watchWake = undefined;
        wokeUpAsLeader = campaign.isLeader();
        say(`${at()}  … ${name} wakes up: isLeader() = ${wokeUpAsLeader} (its chart: ${campaign.state})`);
      }
      const l = campaign.leadership();
      if (l) ledger.write(name, l.epoch);
      proc.clock.setTimeout(work, 100);
    };
    proc.clock.setTimeout(work, 100);
  }

  const alive = (): string[] => names.filter((n) => !procs.get(n)!.dead);
  const leader = (): string | undefined => alive().find((n) => !procs.get(n)!.paused && campaigns.get(n)!.isLeader());
  const waitFor = async (pred: () => boolean, what: string): Promise<number> => {
    const start = clock.now();
    for (let i = 0; i < 1_000 && !pred(); i++) await new Promise<void>((r) => clock.setTimeout(r, 5));
    if (!pred()) throw new Error(`leader-election example: ${what} did not happen`);
    return clock.now() - start;
  };
  const pause = (ms: number): Promise<void> => new Promise<void>((r) => clock.setTimeout(r, ms));

  try {
    say(`three candidates campaign for 'jobs' (lease ${TTL_MS} ms, renewed every ${RENEW_MS} ms, safety margin ${MARGIN_MS} ms)`);
    await waitFor(() => leader() !== undefined, 'a first election');
    await pause(500);

    const paused = leader()!;
    const pausedEpoch = campaigns.get(paused)!.leadership()!.epoch;
    say(`${at()}  ⏸ pausing ${paused}'s process for ${3 * TTL_MS} ms`);
    procs.get(paused)!.pause();
    await waitFor(() => { const l = leader(); return l !== undefined && l !== paused; }, 'an election while the leader is paused');
    await pause(3 * TTL_MS - 400);
    watchWake = paused;
    say(`${at()}  ▶ resuming ${paused}`);
    procs.get(paused)!.resume();
    await waitFor(() => wokeUpAsLeader !== undefined, 'the paused leader to wake');
    say(`${at()}  ${paused} writes anyway with its old epoch ${pausedEpoch}:`);
    ledger.write(paused, pausedEpoch);

    const killed = leader()!;
    say(`${at()}  ✝ killing ${killed}'s process (no goodbye: its lease must lapse)`);
    procs.get(killed)!.kill();
    await systems.get(killed)!.shutdown();
    const killTakeoverMs = await waitFor(() => { const l = leader(); return l !== undefined && l !== killed; }, 'an election after the kill');
    say(`${at()}  new leader ${killTakeoverMs} ms after the kill (bound: TTL + renew + margin = ${TTL_MS + RENEW_MS + MARGIN_MS} ms)`);
    await pause(300);

    const resigning = leader()!;
    say(`${at()}  ${resigning} resigns`);
    await campaigns.get(resigning)!.resign();
    const resignTakeoverMs = await waitFor(() => { const l = leader(); return l !== undefined && l !== resigning; }, 'an election after the resignation');
    say(`${at()}  new leader ${resignTakeoverMs} ms after the resignation (the watch saw the release)`);
    await pause(200);

    say(`elections: ${elections.map((e) => `${e.candidate}@${e.epoch}`).join(' → ')}; ledger accepted ${ledger.accepted} writes, rejected ${ledger.rejected.length}`);
    return { elections, wokeUpAsLeader: wokeUpAsLeader!, rejected: ledger.rejected, killTakeoverMs, resignTakeoverMs };
  } finally {
    for (const [n, c] of campaigns) if (!procs.get(n)!.dead) await c.resign();
    for (const p of procs.values()) p.kill();
    for (const s of systems.values()) await s.shutdown().catch(() => undefined);
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
