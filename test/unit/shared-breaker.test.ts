/**
 * Cluster-wide breakers over a shared KV store (the in-memory store, simulated clock): one node's
 * trip opens the others, a single node probes half-open, quorum, and local-only degradation.
 */
import { describe, expect, it } from 'vitest';
import { createCircuitBreaker, type CircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { shareBreaker, type SharedBreaker } from '../../actors/circuit-breaker/shared.ts';
import { simulatedClock, type ManualClock } from '../../framework/clock.ts';
import { BrokenCircuitError } from '../../framework/errors.ts';
import { createMemoryKvStore } from '../../framework/store/memory.ts';

const boom = (): Promise<never> => Promise.reject(new Error('dependency down'));
const flush = async (): Promise<void> => { for (let i = 0; i < 20; i++) await Promise.resolve(); };

interface Node { breaker: CircuitBreaker; shared: SharedBreaker }

async function cluster(n: number, opts: { quorum?: { nodes: number; windowMs: number } } = {}): Promise<{ clock: ManualClock; store: ReturnType<typeof createMemoryKvStore>; nodes: Node[] }> {
  const clock = simulatedClock(10_000);
  const store = createMemoryKvStore({ clock });
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    const breaker = createCircuitBreaker({ name: 'payments', clock, consecutiveFailures: 2, openMs: 1_000 });
    const shared = shareBreaker(breaker, { store, node: `n${i + 1}`, clock, trialLeaseMs: 5_000, reconnectMs: 500, ...opts });
    await shared.ready;
    nodes.push({ breaker, shared });
  }
  return { clock, store, nodes };
}

async function trip(b: CircuitBreaker): Promise<void> {
  for (let i = 0; i < 2; i++) await b.execute(boom).catch(() => undefined);
}

describe('cluster-wide circuit breaker', () => {
  it('when one node trips, the others open too (same retry time), and calls there fail fast', async () => {
    const { nodes: [a, b, c] } = await cluster(3);
    await trip(a!.breaker);
    expect(a!.breaker.state).toBe('open');
    await flush();
    expect(b!.breaker.state).toBe('open');
    expect(c!.breaker.state).toBe('open');
    expect(b!.breaker.snapshot().context.retryAtMs).toBe(a!.breaker.snapshot().context.retryAtMs);
    expect(b!.breaker.snapshot().context.lastReason).toMatch(/^n1: 2 consecutive failures/);
    let called = false;
    await expect(b!.breaker.execute(async () => { called = true; })).rejects.toBeInstanceOf(BrokenCircuitError);
    expect(called).toBe(false);
  });

  it('only one node probes in half-open; its success closes the circuit everywhere', async () => {
    const { clock, nodes } = await cluster(3);
    await trip(nodes[0]!.breaker);
    await flush();
    clock.increment(1_000);
    let probes = 0;
    // until the KV has said who owns the trial, nobody probes
    const early = await Promise.all(nodes.map((n) => n.breaker.execute(async () => { probes++; return 'ok'; }).catch((e: unknown) => e)));
    expect(probes).toBe(0);
    expect(early.every((r) => r instanceof BrokenCircuitError)).toBe(true);
    await flush();
    const results = await Promise.all(nodes.map((n) => n.breaker.execute(async () => { probes++; return 'ok'; }).catch((e: unknown) => e)));
    expect(probes).toBe(1);
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r instanceof BrokenCircuitError)).toHaveLength(2);
    await flush();
    expect(nodes.map((n) => n.breaker.state)).toEqual(['closed', 'closed', 'closed']);
  });

  it('quorum: opens cluster-wide only when k nodes report failing within the window', async () => {
    const { nodes: [a, b, c] } = await cluster(3, { quorum: { nodes: 2, windowMs: 60_000 } });
    await trip(a!.breaker);
    await flush();
    expect(a!.breaker.state).toBe('open'); // its own evidence
    expect(c!.breaker.state).toBe('closed'); // one report is not a quorum
    await trip(b!.breaker);
    await flush();
    expect(c!.breaker.state).toBe('open');
  });

  it('when the store is unreachable it degrades to local-only (never blocking calls), then rejoins', async () => {
    const { clock, store, nodes: [a, b] } = await cluster(2);
    const modes: string[] = [];
    a!.shared.on('mode', (e) => modes.push(e.mode));
    store.setAvailable(false);
    await trip(a!.breaker);
    await flush();
    expect(a!.breaker.state).toBe('open'); // works locally
    expect(a!.shared.mode).toBe('local-only');
    expect(b!.breaker.state).toBe('closed'); // could not be told
    store.setAvailable(true);
    clock.increment(500);
    await flush();
    expect(a!.shared.mode).toBe('shared');
    expect(modes).toEqual(['local-only', 'shared']);
    // what a learnt while cut off reaches the others once it rejoins
    expect(b!.breaker.state).toBe('open');
  });
});
