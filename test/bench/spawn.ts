/**
 * spawn — actor creation.
 *
 * Throughput: a round spawns N actors of the counter machine on a fresh embedded-bus system
 * (`system.spawn(Counter, { name })`: name check, registry, cell + mailbox, `createActor(…).start()`),
 * then yields until the event loop is idle (`quiesce()`), so any work a spawn queued is counted too.
 * Baseline: `createActor(counterMachine).start()` N times, kept in an array, same final quiesce.
 *
 * Memory: in a fresh `node --expose-gc` child process per measurement (spawn-heap.ts), retained heap
 * per idle actor with HEAP_ACTORS alive, after full GCs: troupe-spawned vs bare XState actors.
 * Reported as bytes per actor; ratio = bare / troupe (higher is better).
 */
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createActor, type AnyActor } from 'xstate';
import { createSystem, silentLogger } from '../../framework/index.ts';
import { alternate, median, quiesce, row, tick, type Bench } from './harness.ts';
import { Counter, counterMachine } from './fixtures.ts';

const N = 20_000;
const HEAP_ACTORS = 100_000;
const HEAP_ROUNDS = 1;
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');

/** Spawns per second; `syncOnly` counts only the time until the last `spawn()` returned (diagnostic). */
interface SpawnRate { rate: number; syncOnly: number }

async function oursRound(): Promise<SpawnRate> {
  const system = createSystem({ node: 'spawn', logger: silentLogger() });
  try {
    await tick();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) system.spawn(Counter, { name: `c${i}` });
    const t1 = performance.now();
    await quiesce();
    const ms = performance.now() - t0;
    const alive = system.actors().length;
    if (alive < N) throw new Error(`spawn: ${alive} actors alive, expected ${N}`);
    return { rate: (N / ms) * 1000, syncOnly: (N / (t1 - t0)) * 1000 };
  } finally {
    await system.shutdown();
  }
}

async function bareRound(): Promise<SpawnRate> {
  const actors: AnyActor[] = [];
  await tick();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) actors.push(createActor(counterMachine).start());
  const t1 = performance.now();
  await quiesce();
  const ms = performance.now() - t0;
  for (const a of actors) a.stop();
  return { rate: (N / ms) * 1000, syncOnly: (N / (t1 - t0)) * 1000 };
}

/** Bytes per idle actor, measured in a fresh `--expose-gc` process. */
async function heapPerActor(variant: 'troupe' | 'xstate'): Promise<number> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(here, 'spawn-heap.ts'), variant, String(HEAP_ACTORS)],
    { cwd: repoRoot, maxBuffer: 1 << 20, timeout: 120_000 },
  );
  const line = stdout.trim().split('\n').pop() ?? '';
  const { bytesPerActor } = JSON.parse(line) as { bytesPerActor: number };
  return bytesPerActor;
}

export const bench: Bench = {
  name: 'spawn',
  description: 'spawn+start throughput vs createActor(machine).start(); retained heap per idle actor with 100k alive',
  needsNats: false,
  async run(ctx) {
    const [ours, bare] = await alternate<SpawnRate>([
      { name: 'troupe system.spawn', round: oursRound },
      { name: 'xstate createActor().start()', round: bareRound },
    ], ctx.rounds, ctx.log);
    ctx.log(`  synchronous part only (until the last spawn() returned): troupe ${median(ours!.map((r) => r.syncOnly)).toFixed(0)}/s, xstate ${median(bare!.map((r) => r.syncOnly)).toFixed(0)}/s`);
    const heap: Record<'troupe' | 'xstate', number[]> = { troupe: [], xstate: [] };
    for (let r = 0; r < HEAP_ROUNDS; r++) {
      for (const v of r % 2 === 0 ? (['troupe', 'xstate'] as const) : (['xstate', 'troupe'] as const)) {
        const b = await heapPerActor(v);
        heap[v].push(b);
        ctx.log(`  heap ${r + 1}/${HEAP_ROUNDS} ${v}: ${b.toFixed(0)} B/actor`);
      }
    }
    return [
      row('spawn', 'spawn+start throughput (actors/s)', median(ours!.map((r) => r.rate)), median(bare!.map((r) => r.rate)), 'xstate createActor().start()', 0.7, 'higher'),
      row('spawn', `retained heap per idle actor, ${HEAP_ACTORS / 1000}k alive (bytes)`, median(heap.troupe), median(heap.xstate), 'xstate createActor().start()', 0.67, 'lower'),
    ];
  },
};
