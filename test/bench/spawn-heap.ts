/**
 * Child process of the spawn bench: `node --expose-gc --import tsx test/bench/spawn-heap.ts
 * <troupe|xstate> <count>` creates `count` idle actors of the counter machine and prints, as one JSON
 * line, the retained heap per actor: heapUsed after creating them minus heapUsed before, both after
 * full garbage collections. A fresh process per measurement keeps the heaps independent.
 * `troupe`: a system on the embedded bus spawns them (the system exists before the first reading, so
 * its own fixed cost is not counted; the refs `spawn` returns are dropped — the system keeps its
 * actors). `xstate`: `createActor(counterMachine).start()`, the actors kept in an array.
 */
import { createActor } from 'xstate';
import { createSystem, silentLogger } from '../../framework/index.ts';
import { Counter, counterMachine } from './fixtures.ts';
import { tick } from './harness.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

/**
 * A few macrotask turns with full GCs between them. This deliberately does not wait for the event
 * loop to go idle (harness `quiesce()`): with troupe's root supervisor bookkeeping costing O(actors)
 * per spawn, working off 100k ChildStarted events would take far longer than the bench may run, so
 * the reading includes whatever of that backlog is still queued — memory that is really held then.
 */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await tick();
    gc!();
  }
}

const heapUsed = (): number => process.memoryUsage().heapUsed;

async function main(variant: string, count: number): Promise<void> {
  if (variant === 'troupe') {
    const system = createSystem({ node: 'heap', logger: silentLogger() });
    // warm the code paths and the machine cache, then start from a settled heap
    system.spawn(Counter, { name: 'warm' });
    await settle();
    const before = heapUsed();
    for (let i = 0; i < count; i++) system.spawn(Counter, { name: `c${i}` });
    await settle();
    const after = heapUsed();
    if (system.actors().length < count) throw new Error(`only ${system.actors().length} actors alive`);
    process.stdout.write(`${JSON.stringify({ variant, count, bytesPerActor: (after - before) / count })}\n`);
    await system.shutdown();
  } else if (variant === 'xstate') {
    const keep: unknown[] = [];
    keep.push(createActor(counterMachine).start());
    await settle();
    const before = heapUsed();
    for (let i = 0; i < count; i++) keep.push(createActor(counterMachine).start());
    await settle();
    const after = heapUsed();
    if (keep.length !== count + 1) throw new Error('lost actors');
    process.stdout.write(`${JSON.stringify({ variant, count, bytesPerActor: (after - before) / count })}\n`);
  } else {
    throw new Error(`unknown variant ${variant}`);
  }
}

await main(process.argv[2] ?? '', Number(process.argv[3] ?? 100_000));
process.exit(0);
