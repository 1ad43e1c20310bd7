/**
 * lock-uncontended, lock-contended — the distributed lock on a NATS JetStream KV bucket.
 *
 * lock-uncontended: one client, `acquire` + `release` of one lock, one at a time (round trips/s),
 *   vs raw nats.js `kv.create` + `kv.delete` of one key on the same bucket. Target ≥ 0.83.
 * lock-contended: 8 clients (8 connections), one lock, each looping acquire → release for a fixed
 *   window; grants/s vs 8 raw nats.js loops of `kv.create` (retried at once on a conflict) +
 *   `kv.delete`. Target ≥ 0.8. A second row reports fairness: max/min grants per client (target:
 *   ≤ 2, i.e. ratio min/max ≥ 0.5). Mutual exclusion is verified in both variants.
 */
import { Kvm, type KV } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLock, type LockClient } from '../../actors/lock/lock.ts';
import { createRng, realClock } from '../../framework/clock.ts';
import { isKvConflictError } from '../../framework/errors.ts';
import { createNatsKvStore } from '../../framework/store/nats-kv.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { startNatsServer } from '../helpers/nats-server.ts';
import { alternate, median, row, type Bench } from './harness.ts';

const TTL_MS = 10_000;
const UNCONTENDED_N = 1_500;
const CLIENTS = 8;
const WINDOW_MS = 2_000;

interface Setup {
  stores: KvStore[];
  raw: Array<{ nc: NatsConnection; kv: KV }>;
  close(): Promise<void>;
}

/** Its own JetStream-enabled nats-server (run.ts's shared one has no JetStream), `n` store + raw connections. */
async function setup(bucket: string, n: number): Promise<Setup> {
  const server = await startNatsServer({ jetstream: true });
  const stores: KvStore[] = [];
  const raw: Array<{ nc: NatsConnection; kv: KV }> = [];
  for (let i = 0; i < n; i++) {
    stores.push(await createNatsKvStore({ servers: server.url, bucket, ttlMs: TTL_MS, storage: 'memory' }));
    const nc = await connect({ servers: server.url });
    raw.push({ nc, kv: await new Kvm(jetstream(nc)).open(bucket) });
  }
  return {
    stores,
    raw,
    close: async () => {
      await Promise.all(stores.map((s) => s.close()));
      await Promise.all(raw.map((r) => r.nc.close()));
      await server.stop();
    },
  };
}

const enc = new TextEncoder().encode('bench-owner');

export const uncontended: Bench = {
  name: 'lock-uncontended',
  description: 'acquire + release of a free lock, one at a time, vs raw nats.js kv.create + kv.delete on the same bucket',
  needsNats: false, // starts its own JetStream server
  async run(ctx) {
    const s = await setup('bench_lock_u', 1);
    const lock: LockClient = createLock(s.stores[0]!, { clock: realClock(), owner: 'bench', rng: createRng(1), ttlMs: TTL_MS });
    const { kv } = s.raw[0]!;
    try {
      let round = 0;
      const [ours, theirs] = await alternate([
        {
          name: 'troupe lock acquire+release',
          round: async () => {
            const name = `u${++round}`;
            let last = 0;
            const t0 = performance.now();
            for (let i = 0; i < UNCONTENDED_N; i++) {
              const lease = await lock.acquire(name);
              if (lease.token <= last) throw new Error(`lock-uncontended: token ${lease.token} after ${last}`);
              last = lease.token;
              await lease.release();
            }
            return (UNCONTENDED_N / (performance.now() - t0)) * 1000;
          },
        },
        {
          name: 'nats.js kv.create + kv.delete',
          round: async () => {
            const key = `locks.raw${++round}.holder`;
            const t0 = performance.now();
            for (let i = 0; i < UNCONTENDED_N; i++) {
              await kv.create(key, enc);
              await kv.delete(key);
            }
            return (UNCONTENDED_N / (performance.now() - t0)) * 1000;
          },
        },
      ], ctx.rounds, ctx.log);
      return [row('lock-uncontended', 'acquire+release round trips/s', median(ours!), median(theirs!), 'nats.js kv.create+delete', 0.83, 'higher')];
    } finally {
      await lock.close();
      await s.close();
    }
  },
};

interface ContendedResult { rate: number; perClient: number[] }

export const contended: Bench = {
  name: 'lock-contended',
  description: `${CLIENTS} clients, one lock: grants/s vs ${CLIENTS} raw nats.js kv.create/delete CAS loops; fairness max/min grants per client`,
  needsNats: false, // starts its own JetStream server
  async run(ctx) {
    const s = await setup('bench_lock_c', CLIENTS);
    const clock = realClock();
    const locks = s.stores.map((store, i) => createLock(store, { clock, owner: `c${i}`, rng: createRng(100 + i), ttlMs: TTL_MS }));
    try {
      let round = 0;
      const window = async (loop: (i: number, live: () => boolean, enter: () => void, leave: () => void) => Promise<number>): Promise<ContendedResult> => {
        let inside = 0;
        let violations = 0;
        const enter = (): void => {
          if (++inside > 1) violations++;
        };
        const leave = (): void => {
          inside--;
        };
        const t0 = performance.now();
        const deadline = t0 + WINDOW_MS;
        const live = (): boolean => performance.now() < deadline;
        const perClient = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => loop(i, live, enter, leave)));
        if (violations > 0) throw new Error(`lock-contended: ${violations} mutual-exclusion violations`);
        const total = perClient.reduce((a, b) => a + b, 0);
        return { rate: (total / WINDOW_MS) * 1000, perClient };
      };
      const [ours, theirs] = await alternate<ContendedResult>([
        {
          name: 'troupe lock, 8 clients',
          round: () => {
            const name = `c${++round}`;
            return window(async (i, live, enter, leave) => {
              let grants = 0;
              while (live()) {
                const lease = await locks[i]!.acquire(name, { waitMs: 30_000 });
                enter();
                if (live()) grants++;
                leave();
                await lease.release();
              }
              return grants;
            });
          },
        },
        {
          name: 'nats.js CAS loop, 8 clients',
          round: () => {
            const key = `locks.raw${++round}.holder`;
            return window(async (i, live, enter, leave) => {
              const { kv } = s.raw[i]!;
              let grants = 0;
              while (live()) {
                try {
                  await kv.create(key, enc);
                } catch (err) {
                  if (isKvConflictError(err) || (err instanceof Error && /wrong last sequence/.test(err.message))) continue;
                  throw err;
                }
                enter();
                if (live()) grants++;
                leave();
                await kv.delete(key);
              }
              return grants;
            });
          },
        },
      ], ctx.rounds, ctx.log);
      const rates = (rs: ContendedResult[]): number => median(rs.map((r) => r.rate));
      const fairness = (rs: ContendedResult[]): number => median(rs.map((r) => Math.max(...r.perClient) / Math.max(1, Math.min(...r.perClient))));
      ctx.log(`  per-client grants (ours, last round): ${ours!.at(-1)!.perClient.join(' ')}; (raw) ${theirs!.at(-1)!.perClient.join(' ')}`);
      return [
        row('lock-contended', `grants/s, ${CLIENTS} clients`, rates(ours!), rates(theirs!), 'nats.js kv.create/delete CAS loop', 0.8, 'higher'),
        // ratio = 2 / (max/min): ≥ 1 when the busiest client got at most twice the grants of the idlest
        row('lock-contended', 'fairness: max/min grants per client (vs the ≤ 2 target)', fairness(ours!), 2, 'target max/min = 2', 1.0, 'lower'),
        row('lock-contended', 'fairness of the raw CAS loop: max/min grants per client (reported)', fairness(theirs!), 2, 'target max/min = 2', 0, 'lower'),
      ];
    } finally {
      await Promise.all(locks.map((l) => l.close()));
      await s.close();
    }
  },
};
