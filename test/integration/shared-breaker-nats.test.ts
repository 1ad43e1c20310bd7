/**
 * Cluster-wide circuit breakers over a real NATS JetStream KV bucket: a trip on one node opens the
 * others within a bounded delay; killing the NATS server degrades every node to local-only (calls
 * never wait on the store); a 3-server cluster losing a server keeps sharing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createCircuitBreaker, type CircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { shareBreaker, type SharedBreaker } from '../../actors/circuit-breaker/shared.ts';
import { realClock } from '../../framework/clock.ts';
import { BrokenCircuitError, isStoreUnavailableError } from '../../framework/errors.ts';
import { createNatsKvStore } from '../../framework/store/nats-kv.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { main as resilienceCluster } from '../../examples/resilience-cluster/main.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { eventually, waitFor } from '../helpers/wait-for.ts';

const boom = (): Promise<never> => Promise.reject(new Error('dependency down'));

describe.skipIf(!requireNatsServer())('cluster-wide circuit breaker over NATS KV', () => {
  const servers = natsServerScope();
  const cleanup: Array<() => Promise<unknown> | unknown> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await servers.stopAll();
  });

  async function node(urls: string[], name: string, bucket: string, replicas = 1): Promise<{ breaker: CircuitBreaker; shared: SharedBreaker; store: KvStore }> {
    const clock = realClock();
    const store = await createNatsKvStore({ servers: urls, bucket, replicas, timeoutMs: 1_000, reconnectTimeWaitMs: 100, watchProbeIntervalMs: 500, name });
    const breaker = createCircuitBreaker({ name: 'payments', clock, consecutiveFailures: 2, openMs: 60_000 });
    const shared = shareBreaker(breaker, { store, node: name, clock, reconnectMs: 200 });
    await shared.ready;
    cleanup.push(() => shared.stop(), () => breaker.dispose(), () => store.close());
    return { breaker, shared, store };
  }

  it('a trip on one node opens the others within a bounded delay', async () => {
    const srv = await servers.start({ jetstream: true });
    const a = await node([srv.url], 'a', 'breakers1');
    const b = await node([srv.url], 'b', 'breakers1');
    for (let i = 0; i < 2; i++) await a.breaker.execute(boom).catch(() => undefined);
    expect(a.breaker.state).toBe('open');
    const t0 = performance.now();
    await waitFor(() => b.breaker.state === 'open', { timeoutMs: 2_000 });
    const delayMs = performance.now() - t0;
    expect(delayMs).toBeLessThan(2_000);
    await expect(b.breaker.execute(async () => 'x')).rejects.toBeInstanceOf(BrokenCircuitError);
  });

  it('when the NATS server dies, breakers go local-only and calls never wait on the store', async () => {
    const srv = await servers.start({ jetstream: true });
    const a = await node([srv.url], 'a2', 'breakers2');
    const modes: string[] = [];
    a.shared.on('mode', (e) => modes.push(e.mode));
    await srv.kill('SIGKILL');
    const t0 = performance.now();
    for (let i = 0; i < 2; i++) await a.breaker.execute(boom).catch(() => undefined);
    await expect(a.breaker.execute(async () => 'x')).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(performance.now() - t0).toBeLessThan(100); // nothing on the call path waits for the store
    await waitFor(() => a.shared.mode === 'local-only', { timeoutMs: 5_000 });
    await srv.restart();
    await waitFor(() => a.shared.mode === 'shared', { timeoutMs: 15_000, intervalMs: 50 });
    expect(modes).toEqual(['local-only', 'shared']);
  });

  it('a 3-server cluster losing one server keeps sharing the breaker', { timeout: 150_000 }, async () => {
    const cluster = await servers.startCluster(3);
    const urls = [...cluster.urls];
    // JetStream elects its meta leader a moment after the routes are up
    const open = (name: string): ReturnType<typeof node> =>
      eventually(`node ${name} to open the replicated bucket`, () => node(urls, name, 'breakers3', 3), { transient: isStoreUnavailableError });
    const a = await open('ca');
    const b = await open('cb');
    const bOpened: string[] = [];
    b.breaker.on('stateChange', (e) => { if (e.to === 'open') bOpened.push(e.reason); });
    await cluster.kill(0);
    for (let i = 0; i < 2; i++) await a.breaker.execute(boom).catch(() => undefined);
    expect(a.breaker.state).toBe('open');
    // JetStream re-elects the bucket's stream leader (seconds; longer on a loaded machine), then the
    // trip that a could not write meanwhile is republished and b's watch sees it
    await waitFor(() => bOpened.length > 0, {
      timeoutMs: 90_000, intervalMs: 50, message: () => `b to open (a: ${a.shared.mode}/${a.breaker.state}, b: ${b.shared.mode}/${b.breaker.state})`,
    });
  });

  it('example: two OS processes share a breaker — node B opens when node A trips, and closes after the probe', { timeout: 60_000 }, async () => {
    const srv = await servers.start({ jetstream: true });
    const lines: string[] = [];
    const { nodeB } = await resilienceCluster({ nats: srv.url, say: (l) => lines.push(l) });
    expect(nodeB.some((l) => /breaker closed → open: remote: node-a: 3 consecutive failures/.test(l))).toBe(true);
    expect(nodeB.some((l) => /^probe: BrokenCircuitError/.test(l))).toBe(true);
    expect(nodeB.some((l) => / → closed/.test(l))).toBe(true);
  });
});
