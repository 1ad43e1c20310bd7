/**
 * The embedded examples run end to end (real clock, in-process bus) and say what they should.
 * (two-nodes needs nats-server and runs in system-nats.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { main as pingPong } from '../../examples/ping-pong.ts';
import { main as supervisedWorkers } from '../../examples/supervised-workers.ts';
import { createLogger } from '../../framework/log.ts';
import { main as resilience } from '../../examples/resilience.ts';
import { main as replicatedCart } from '../../examples/replicated-cart.ts';

describe('examples on the embedded bus', () => {
  it('ping-pong: a full rally, an ask, the pinger stops when done', async () => {
    const lines: string[] = [];
    const r = await pingPong({ say: (l) => lines.push(l), rally: 300 });
    expect(r).toEqual({ rally: 300, asked: 42 });
    expect(lines.join('\n')).toMatch(/rally over after 300 pongs/);
    expect(lines.join('\n')).toMatch(/it stopped \(done\)/);
    expect(lines.join('\n')).toMatch(/served 301 pings in all; dead letters: 0/);
  });

  it('supervised-workers: restarts within the window, then escalation stops the subtree', async () => {
    const lines: string[] = [];
    const { results } = await supervisedWorkers({ say: (l) => lines.push(l), logger: createLogger({ level: 'silent' }) });
    expect(results.slice(0, 8)).toEqual([
      'job 1 done (jobs done since this worker started: 1)',
      'job 2 done (jobs done since this worker started: 2)',
      'job 3 failed: ActorFailedError',
      'job 4 done (jobs done since this worker started: 1)',
      'job 5 failed: ActorFailedError',
      'job 6 failed: ActorFailedError',
      'job 7 done (jobs done since this worker started: 1)',
      'job 8 failed: ActorFailedError',
    ]);
    // job 9 races the escalation: it is either caught in the stopping worker's mailbox or finds it gone
    expect(results[8]).toMatch(/^job 9 failed: (ActorStoppedError|NoRespondersError)$/);
    const text = lines.join('\n');
    expect(text).toMatch(/restart worker after 50 ms — restart 1 of 3/);
    expect(text).toMatch(/restart worker after 100 ms — restart 2 of 3/);
    expect(text).toMatch(/restart worker after 200 ms — restart 3 of 3/);
    expect(text).toMatch(/escalate worker — restart intensity exceeded/);
    expect(text).toMatch(/local\/workers stopped \(failed\)/);
  });

  it('resilience: the breaker trips, fails fast, probes and closes; the bulkhead sheds a burst', async () => {
    const lines: string[] = [];
    const { outcomes, transitions } = await resilience({ say: (l) => lines.push(l), logger: createLogger({ level: 'silent' }) });
    expect(transitions).toEqual(['closed→open', 'open→halfOpen', 'halfOpen→closed']);
    expect(outcomes).toEqual({ ok: 10, retried: 2, Error: 2, BrokenCircuitError: 4, BulkheadRejectedError: 3 });
    expect(lines.join('\n')).toMatch(/rejected at once — circuit open, next trial in \d+ ms/);
  });

  it('replicated-cart: every replica ends in the same state with the same context, across a leader failure and a snapshot install', async () => {
    const lines: string[] = [];
    const { states } = await replicatedCart({ say: (l) => lines.push(l) });
    const contexts = Object.values(states);
    expect(contexts).toHaveLength(3);
    expect(lines.join('\n')).toMatch(/restored a snapshot of the cart at log index \d+/); // the returning node caught up from a snapshot
    for (const c of contexts) expect(c).toEqual({ items: { tea: 2, honey: 1 }, paidCents: 1_850 });
    expect(lines.filter((l) => l.includes('★')).length).toBeGreaterThanOrEqual(2); // a second leader took over
  });
});
