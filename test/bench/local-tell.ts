/**
 * local-tell — tell throughput to an in-process actor.
 *
 * Measured: `ref.send({ type: 'Inc' })` to a counter actor spawned on an embedded-bus system, i.e.
 * the local fast path of `deliver()` → bounded mailbox → the cell's turn → `xstateActor.send()`.
 * Baseline: `createActor(counterMachine).send({ type: 'Inc' })` on the very same machine, no system.
 * Both variants are driven by the same loop: batches of BATCH sends (below the default mailbox
 * capacity, so troupe never has to drop), then yield to the event loop until the counter's context
 * shows every message processed. Completion is verified: a round ends only when `count === N`.
 * Rounds are short and twice as many as the run's default: the shared machine's speed drifts by tens
 * of percent within seconds, and more, shorter alternating rounds keep the medians comparable.
 */
import { createActor } from 'xstate';
import { createSystem, silentLogger } from '../../framework/index.ts';
import { alternate, median, row, tick, until, type Bench } from './harness.ts';
import { Counter, counterMachine, countOf } from './fixtures.ts';

const N = 100_000;
const BATCH = 5_000;
const INC = { type: 'Inc' } as const;

async function oursRound(): Promise<number> {
  const system = createSystem({ node: 'local', logger: silentLogger() });
  try {
    const ref = system.spawn(Counter, { name: 'counter' });
    await tick();
    const t0 = performance.now();
    for (let sent = 0; sent < N; ) {
      const end = Math.min(N, sent + BATCH);
      for (; sent < end; sent++) ref.send(INC);
      const target = sent;
      await until(() => countOf(system, ref.address) >= target, 'the counter actor');
    }
    const ms = performance.now() - t0;
    const count = countOf(system, ref.address);
    if (count !== N) throw new Error(`local-tell: counter reached ${count}, expected ${N}`);
    if (system.deadLetters.count !== 0) throw new Error(`local-tell: ${system.deadLetters.count} dead letters`);
    return (N / ms) * 1000;
  } finally {
    await system.shutdown();
  }
}

async function bareRound(): Promise<number> {
  const actor = createActor(counterMachine).start();
  const count = (): number => actor.getSnapshot().context.count;
  await tick();
  const t0 = performance.now();
  for (let sent = 0; sent < N; ) {
    const end = Math.min(N, sent + BATCH);
    for (; sent < end; sent++) actor.send(INC);
    const target = sent;
    await until(() => count() >= target, 'the bare actor');
  }
  const ms = performance.now() - t0;
  if (count() !== N) throw new Error(`local-tell: bare counter reached ${count()}, expected ${N}`);
  actor.stop();
  return (N / ms) * 1000;
}

export const bench: Bench = {
  name: 'local-tell',
  description: 'tell throughput to an in-process actor (ref.send) vs createActor(machine).send() on the same machine',
  needsNats: false,
  async run(ctx) {
    const [ours, bare] = await alternate([
      { name: 'troupe ref.send', round: oursRound },
      { name: 'xstate actor.send', round: bareRound },
    ], ctx.rounds * 2, ctx.log);
    return [row('local-tell', 'throughput (msg/s)', median(ours!), median(bare!), 'xstate createActor().send()', 0.8, 'higher')];
  },
};
