/**
 * The distributed lock over a real NATS JetStream KV bucket (one nats-server for the file): every
 * scenario of test/helpers/lock-scenarios.ts on real time. The five-client run does 5 × 100
 * critical sections here (5 × 1000 on the memory store, test/unit/lock.test.ts). The bucket's max
 * age is the lease TTL (nats-server 2.9/2.10 have no per-key TTL). Also runs examples/lock.ts, on the
 * memory store and on NATS.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { main as lockExample } from '../../examples/lock.ts';
import { createNatsKvStore } from '../../framework/store/nats-kv.ts';
import { lockScenarios, realTimeBackend } from '../helpers/lock-scenarios.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';

const TTL_MS = 1_500;

describe.skipIf(!requireNatsServer())('lock over NATS KV', () => {
  const servers = natsServerScope();
  let server: ReturnType<typeof servers.start> | undefined;
  const url = async (): Promise<string> => (await (server ??= servers.start({ jetstream: true }))).url;
  afterAll(() => servers.stopAll());

  it('examples/lock.ts: without fencing the paused holder overwrites; with it, its write is refused (memory store, then NATS KV)', async () => {
    const embedded = await lockExample({ say: () => undefined });
    expect(embedded).toEqual({ unfenced: ['written by B', 'written by A'], fenced: ['written by B'], staleWriteRefused: true });
    const overNats = await lockExample({ say: () => undefined, nats: await url() });
    expect(overNats).toEqual(embedded);
  });

  lockScenarios(realTimeBackend('NATS JetStream KV (real nats-server)', async () =>
    createNatsKvStore({ servers: await url(), bucket: 'locks', ttlMs: TTL_MS, storage: 'memory', timeoutMs: 1_000, watchProbeIntervalMs: 60_000 }),
  { ttlMs: TTL_MS, sectionsPerClient: 100 }));
});
