/**
 * inspect-off / inspect-on — what inspection costs the remote-tell path (remote-tell.ts's producer →
 * counter over one nats-server, 64-byte payloads, the same windowed flow control).
 *
 * Baseline: a build of the runtime with NO inspection hooks — this run copies framework/ to
 * .bench/no-inspect/ and rewrites every inspection check in system.ts and actor.ts to a constant
 * (`if (this.inspect)` → `if (false)`, …), so the JIT drops the hooks entirely; the copy is checked to
 * have no inspection read left. (Same process, same transport code: only the hooks differ.)
 * inspect-off: the real runtime with inspection disabled (no `inspect` sink). Target ≥ 0.98.
 * inspect-on: the real runtime with a publisher on each system (its own connection) and an
 * inspector server attached (subscribed to the stream, one WebSocket client reading it). Goal ≥ 0.7.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { connectNats, createInspectionPublisher, silentLogger, startInspectorServer, type ActorSystem, type InspectionSink } from '../../framework/index.ts';
import type { SystemOptions } from '../../framework/options.ts';
import { createSystem } from '../../framework/system.ts';
import { messages } from './bench.pb.ts';
import { bytes, Counter, countOf, Producer } from './fixtures.ts';
import { alternate, median, row, tick, until, type Bench, type BenchContext, type BenchRow, type Variant } from './harness.ts';

const N = 100_000;
const WINDOW = 5_000;
const BURST = 1_000;
const PAYLOAD_BYTES = 64;

type CreateSystem = (o: SystemOptions) => ActorSystem;

/** The runtime with its inspection hooks compiled out (see the file comment). */
async function noHooksRuntime(): Promise<CreateSystem> {
  const root = resolve(import.meta.dirname, '..', '..');
  const dir = join(root, '.bench', 'no-inspect');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(root, 'framework'), join(dir, 'framework'), { recursive: true });
  const strip = (file: string, rules: [RegExp, string][]): void => {
    const path = join(dir, 'framework', file);
    let src = readFileSync(path, 'utf8');
    for (const [re, to] of rules) src = src.replace(re, to);
    const left = src.split('\n').filter((l) => /\binspect\b/.test(l) && !/^\s*(\*|\/\/|import|readonly inspect|this\.inspect = )/.test(l.trim()) && !/^\s*\*/.test(l));
    if (left.length > 0) throw new Error(`inspect bench: inspection reads left in the no-hooks ${file}:\n${left.join('\n')}`);
    writeFileSync(path, src);
  };
  strip('system.ts', [
    [/\(this\.inspect(\)| &&)/g, '(false$1'],
    [/if \(o\.inspect\)/g, 'if (false)'],
    [/this\.inspect === undefined/g, 'true'],
    [/const sink = this\.inspect;/g, 'const sink = undefined as InspectionSinkNone;'],
  ]);
  const sys = join(dir, 'framework', 'system.ts');
  writeFileSync(sys, `${readFileSync(sys, 'utf8')}\ntype InspectionSinkNone = ((e: unknown) => void) | undefined;\n`);
  strip('actor.ts', [[/if \(this\.host\.inspect\)/g, 'if (false)'], [/this\.host\.inspect!\(ev\);/g, 'void ev;']]);
  const mod = (await import(pathToFileURL(join(dir, 'framework', 'system.ts')).href)) as { createSystem: CreateSystem };
  return mod.createSystem;
}

async function pair(create: CreateSystem, url: string, cluster: string, inspect?: (transport: Awaited<ReturnType<typeof connectNats>>) => InspectionSink) {
  const make = async (node: string): Promise<ActorSystem> => {
    const transport = await connectNats({ servers: url, name: `${cluster}-${node}` });
    return create({ cluster, node, logger: silentLogger(), messages: [messages], transport, ...(inspect ? { inspect: inspect(transport) } : {}) });
  };
  const a = await make('a');
  const b = await make('b');
  await a.ready();
  await b.ready();
  return { a, b, close: () => Promise.all([a.shutdown(), b.shutdown()]) };
}

async function variant(name: string, systems: Awaited<ReturnType<typeof pair>>, extraClose: () => Promise<void> = async () => undefined): Promise<Variant<number> & { close(): Promise<void> }> {
  const data = bytes(PAYLOAD_BYTES);
  let round = 0;
  return {
    name,
    round: async () => {
      round++;
      const sink = systems.b.spawn(Counter, { name: `sink-${round}` });
      const producer = systems.a.spawn(Producer, { name: `producer-${round}`, input: { to: sink.address } });
      await tick();
      const t0 = performance.now();
      let sent = 0;
      const received = (): number => countOf(systems.b, sink.address);
      while (sent < N) {
        const limit = Math.min(N, received() + WINDOW);
        while (sent < limit) {
          const count = Math.min(BURST, limit - sent);
          producer.send({ type: 'Burst', count, first: sent, data });
          sent += count;
        }
        await tick();
      }
      await until(() => received() >= N, name);
      const rate = (N / (performance.now() - t0)) * 1000;
      const dead = systems.a.deadLetters.count + systems.b.deadLetters.count;
      if (dead !== 0) throw new Error(`${name}: ${dead} dead letters`);
      systems.a.stop(producer);
      systems.b.stop(sink);
      return rate;
    },
    close: async () => {
      await systems.close();
      await extraClose();
    },
  };
}

async function measure(ctx: BenchContext, which: 'off' | 'on'): Promise<BenchRow[]> {
  const bare = await variant('no inspection hooks (stripped build)', await pair(await noHooksRuntime(), ctx.natsUrl, 'benchinsp0'));
  if (which === 'off') {
    const off = await variant('inspection off', await pair(createSystem, ctx.natsUrl, 'benchinsp1'));
    try {
      const results = await alternate([bare, off], ctx.rounds, ctx.log);
      return [row('inspect-off', 'throughput (msg/s)', median(results[1]!), median(results[0]!), 'runtime without inspection hooks', 0.98, 'higher')];
    } finally {
      await Promise.all([bare.close(), off.close()]);
    }
  }
  // inspection on: each system publishes through its own connection; an inspector reads the stream
  // and streams it on to one WebSocket client
  const serverTransport = await connectNats({ servers: ctx.natsUrl, name: 'bench-inspector' });
  const server = await startInspectorServer({ transport: serverTransport, cluster: 'benchinsp2', historySize: 20_000 });
  const client = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
  let wsBytes = 0;
  client.on('message', (d: Buffer) => { wsBytes += d.length; });
  await new Promise<void>((r, j) => { client.once('open', () => r()); client.once('error', j); });
  const publishers: ReturnType<typeof createInspectionPublisher>[] = [];
  const on = await variant('inspection on + inspector', await pair(createSystem, ctx.natsUrl, 'benchinsp2', (transport) => {
    const p = createInspectionPublisher({ transport, cluster: 'benchinsp2' });
    publishers.push(p);
    return p.sink;
  }), async () => {
    for (const p of publishers) p.close();
    client.close();
    await server.close();
    await serverTransport.close();
  });
  try {
    const results = await alternate([bare, on], ctx.rounds, ctx.log);
    const st = server.stats();
    const drops = publishers.map((p) => p.stats());
    ctx.log(`  inspector received ${st.received} events (${st.malformed} malformed), ${wsBytes} bytes went to the browser; publishers dropped `
      + `${drops.reduce((n, s) => n + s.droppedRate, 0)} by rate limit, ${drops.reduce((n, s) => n + s.droppedOverflow, 0)} by overflow`);
    if (st.received === 0) throw new Error('inspect-on: the inspector received nothing');
    return [row('inspect-on', 'throughput (msg/s)', median(results[1]!), median(results[0]!), 'runtime without inspection hooks', 0.7, 'higher')];
  } finally {
    await Promise.all([bare.close(), on.close()]);
  }
}

export const off: Bench = {
  name: 'inspect-off',
  description: 'remote tell with inspection disabled vs a runtime built without inspection hooks',
  needsNats: true,
  run: (ctx) => measure(ctx, 'off'),
};

export const on: Bench = {
  name: 'inspect-on',
  description: 'remote tell with inspection on (a publisher per system, an inspector + browser client attached) vs a runtime built without inspection hooks',
  needsNats: true,
  run: (ctx) => measure(ctx, 'on'),
};
