/**
 * lock — why a distributed lock needs fencing tokens (Kleppmann, "How to do distributed locking").
 *
 * Two clients, A and B, take turns on one lock to write a record. A takes the lock, then stalls
 * (think of a long GC pause: its timers, renewals included, stop) for longer than the lease TTL.
 * The lease expires, B is granted the lock and writes. Then A wakes up, still believing it holds
 * the lock, and writes too.
 *
 * - Round 1, a store that does not check tokens: A's stale write lands on top of B's.
 * - Round 2, a FencedResource actor that remembers the highest token it accepted: A's write
 *   carries its old token and is refused; B's write stands.
 *
 * Runs in one process: the memory KV store on the real clock, or a NATS KV bucket with --nats URL.
 * Run: npx tsx framework/cli.ts run lock        (or: … run lock --spawn-nats)
 */
import { createLock, type Lease } from '../actors/lock/lock.ts';
import { FencedResource, fencedWrite, readFenced } from '../actors/lock/fenced-resource.ts';
import { createRng, realClock, type Clock } from '../framework/clock.ts';
import { isFencingTokenRejectedError, isLockLostError } from '../framework/errors.ts';
import { silentLogger } from '../framework/log.ts';
import { createMemoryKvStore } from '../framework/store/memory.ts';
import { createNatsKvStore } from '../framework/store/nats-kv.ts';
import type { KvStore } from '../framework/store/store.ts';
import { createSystem } from '../framework/system.ts';

const TTL_MS = 600;

/** A's clock: while "paused", its timers (lease renewals) are held, as in a stopped process. */
function pausableClock(base: Clock): Clock & { pause(): void; resume(): void } {
  let paused = false;
  const held: Array<() => void> = [];
  return {
    now: () => base.now(),
    setTimeout: (fn, ms) => base.setTimeout(() => (paused ? held.push(fn) : fn()), ms),
    clearTimeout: (id) => base.clearTimeout(id),
    pause: () => { paused = true; },
    resume: () => {
      paused = false;
      for (const fn of held.splice(0)) fn();
    },
  };
}

export interface LockExampleResult {
  /** What the unfenced store holds at the end, in write order. */
  unfenced: string[];
  /** What the fenced resource accepted, and whether A's stale write was refused. */
  fenced: string[];
  staleWriteRefused: boolean;
}

export async function main(options: { say?: (line: string) => void; nats?: string } = {}): Promise<LockExampleResult> {
  const say = options.say ?? ((line: string) => console.log(line));
  const clock = realClock();
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimeout(resolve, ms));
  const store: KvStore = options.nats
    ? await createNatsKvStore({ servers: options.nats, bucket: `lock_example_${createRng(clock.now()).hex(6)}`, ttlMs: TTL_MS, storage: 'memory' })
    : createMemoryKvStore({ clock });
  const system = createSystem({ cluster: 'demo', node: 'local', clock, logger: silentLogger() });
  const aClock = pausableClock(clock);
  const a = createLock(store, { clock: aClock, owner: 'A', rng: createRng(1), ttlMs: TTL_MS });
  const b = createLock(store, { clock, owner: 'B', rng: createRng(2), ttlMs: TTL_MS });
  say(`lock TTL ${TTL_MS} ms, renewed every ${TTL_MS / 3} ms; store: ${store.kind}`);

  /** A takes the lock and stalls past the TTL; B is granted it meanwhile and writes; then A writes. */
  const round = async (name: string, write: (who: string, lease: Lease) => Promise<string>): Promise<void> => {
    const leaseA = await a.acquire(name);
    say(`  A holds '${name}' with token ${leaseA.token}, and stalls for ${2 * TTL_MS} ms (renewals stop)`);
    aClock.pause();
    const pausedAtMs = clock.now();
    const granted = b.acquire(name, { waitMs: 5 * TTL_MS });
    const leaseB = await granted;
    say(`  A's lease expired; B holds '${name}' with token ${leaseB.token}`);
    say(`  B writes: ${await write('B', leaseB)}`);
    await leaseB.release();
    await sleep(Math.max(0, pausedAtMs + 2 * TTL_MS - clock.now()));
    aClock.resume();
    say(`  A wakes up, still believing it holds the lock, and writes: ${await write('A', leaseA)}`);
    await leaseA.release().catch((err: unknown) => {
      if (isLockLostError(err)) say(`  A's release: ${err.message}`);
      else throw err;
    });
  };

  try {
    say('round 1 — a store that does not check fencing tokens:');
    const unfenced: string[] = [];
    await round('report', async (who) => {
      unfenced.push(`written by ${who}`);
      return 'accepted';
    });
    say(`  the store ends with "${unfenced.at(-1)}": the paused holder overwrote B's newer write`);

    say('round 2 — a FencedResource, every write carrying the lease token:');
    const resource = system.spawn(FencedResource, { name: 'report' });
    let staleWriteRefused = false;
    await round('fenced-report', async (who, lease) => {
      try {
        await fencedWrite(system, resource, lease.token, `written by ${who}`);
        return `accepted (token ${lease.token})`;
      } catch (err) {
        if (!isFencingTokenRejectedError(err)) throw err;
        staleWriteRefused = true;
        return `REFUSED — token ${err.token} is below ${err.highest}, which the resource already accepted`;
      }
    });
    const state = await readFenced(system, resource);
    say(`  the resource ends with "${state.values.at(-1)}" (tokens accepted: ${state.tokens.join(', ')})`);
    return { unfenced, fenced: state.values, staleWriteRefused };
  } finally {
    await Promise.allSettled([a.close(), b.close()]);
    await system.shutdown();
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
