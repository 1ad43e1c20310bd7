/**
 * Test-side helpers around the nats-server launcher in framework/nats-server.ts: the CI gate and a
 * per-file scope that stops every server a test file started.
 *
 * @example
 * const servers = natsServerScope();
 * afterAll(() => servers.stopAll());
 * describe.skipIf(!requireNatsServer())('over NATS', () => { … await servers.start({ jetstream: true }) … });
 */
import {
  NATS_SERVER_MISSING, natsServerAvailable, startNatsCluster, startNatsServer,
  type NatsClusterHandle, type NatsClusterOptions, type NatsServerHandle, type NatsServerOptions,
} from '../../framework/nats-server.ts';

export * from '../../framework/nats-server.ts';

/**
 * Gate for integration suites: `describe.skipIf(!requireNatsServer())(…)`.
 * Returns true when nats-server is installed. When it is missing: under CI (`CI=true`) it throws,
 * so the test file FAILS; elsewhere it warns loudly and returns false, so the suite is skipped.
 */
export function requireNatsServer(): boolean {
  if (natsServerAvailable()) return true;
  if (process.env.CI === 'true') throw new Error(`${NATS_SERVER_MISSING} (required because CI=true)`);
  console.warn(`\n!!! SKIPPING NATS INTEGRATION TESTS — ${NATS_SERVER_MISSING}\n`);
  return false;
}

/**
 * Tracks every server and cluster a test file starts so one `afterAll(() => scope.stopAll())`
 * cleans them up even when a test fails half-way.
 */
export interface NatsServerScope {
  start(opts?: NatsServerOptions): Promise<NatsServerHandle>;
  startCluster(size?: number, opts?: NatsClusterOptions): Promise<NatsClusterHandle>;
  stopAll(): Promise<void>;
}

/** A fresh {@link NatsServerScope}; create one per test file. */
export function natsServerScope(): NatsServerScope {
  const owned: Array<{ stop(): Promise<void> }> = [];
  return {
    start: async (opts) => {
      const s = await startNatsServer(opts);
      owned.push(s);
      return s;
    },
    startCluster: async (size, opts) => {
      const c = await startNatsCluster(size, opts);
      owned.push(c);
      return c;
    },
    stopAll: async () => {
      await Promise.allSettled(owned.splice(0).map((s) => s.stop()));
    },
  };
}

