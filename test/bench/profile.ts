/**
 * `npx tsx test/bench/profile.ts <scenario> [--out FILE] [--top N]` — CPU profile of troupe's side
 * of one bench workload, to find out why a bench misses its target.
 *
 * Runs the workload under the V8 sampling profiler (only the measured part: set-up, warm-up and
 * shutdown are outside the profile), writes the `.cpuprofile` (open it in Chrome DevTools or
 * speedscope) and prints the hottest functions by self and by inclusive time.
 * Scenarios: local-tell, remote-tell (producer → counter over NATS), remote-relay (one event in →
 * one tell out, over NATS), ask-serial, spawn. NATS scenarios start their own nats-server.
 * Functions in TypeScript files show the file only: tsx's transform hides their line numbers from V8.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createSystem, silentLogger, type ActorSystem } from '../../framework/index.ts';
import { startNatsServer, type NatsServerHandle } from '../helpers/nats-server.ts';
import { bytes, Counter, countOf, Echo, Forwarder, natsPair, Producer } from './fixtures.ts';
import { quiesce, tick, until } from './harness.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile { nodes: CpuProfileNode[]; samples: number[]; timeDeltas: number[] }

type Scenario = (ctx: { url: string; profiled: (fn: () => Promise<void>) => Promise<void> }) => Promise<string>;

async function remoteStream(url: string, profiled: (fn: () => Promise<void>) => Promise<void>, relay: boolean): Promise<string> {
  const pair = await natsPair(url, 'profile');
  try {
    const data = bytes(64);
    const run = async (n: number, name: string): Promise<number> => {
      const sink = pair.b.spawn(Counter, { name: `sink-${name}` });
      const src = relay
        ? pair.a.spawn(Forwarder, { name: `src-${name}`, input: { to: sink.address } })
        : pair.a.spawn(Producer, { name: `src-${name}`, input: { to: sink.address } });
      await tick();
      const t0 = performance.now();
      let sent = 0;
      while (sent < n) {
        const limit = Math.min(n, countOf(pair.b, sink.address) + 5_000);
        while (sent < limit) {
          if (relay) src.send({ type: 'Payload', data, seq: sent++ });
          else {
            const count = Math.min(1_000, limit - sent);
            src.send({ type: 'Burst', count, first: sent, data });
            sent += count;
          }
        }
        await tick();
      }
      await until(() => countOf(pair.b, sink.address) >= n, 'the counter');
      return (n / (performance.now() - t0)) * 1000;
    };
    await run(20_000, 'warm');
    let rate = 0;
    await profiled(async () => {
      rate = await run(200_000, 'measured');
    });
    return `${Math.round(rate)} msg/s`;
  } finally {
    await pair.close();
  }
}

const SCENARIOS: Record<string, Scenario> = {
  'local-tell': async ({ profiled }) => {
    const system = createSystem({ node: 'local', logger: silentLogger() });
    try {
      const ref = system.spawn(Counter, { name: 'counter' });
      const run = async (n: number): Promise<number> => {
        const base = countOf(system, ref.address);
        const t0 = performance.now();
        for (let sent = 0; sent < n; ) {
          const end = Math.min(n, sent + 5_000);
          for (; sent < end; sent++) ref.send({ type: 'Inc' });
          const target = base + sent;
          await until(() => countOf(system, ref.address) >= target, 'the counter');
        }
        return (n / (performance.now() - t0)) * 1000;
      };
      await run(100_000);
      let rate = 0;
      await profiled(async () => {
        rate = await run(1_000_000);
      });
      return `${Math.round(rate)} msg/s`;
    } finally {
      await system.shutdown();
    }
  },
  'remote-tell': ({ url, profiled }) => remoteStream(url, profiled, false),
  'remote-relay': ({ url, profiled }) => remoteStream(url, profiled, true),
  'ask-serial': async ({ url, profiled }) => {
    const pair = await natsPair(url, 'profile');
    try {
      const echo = pair.b.spawn(Echo, { name: 'echo' });
      const data = bytes(64);
      const run = async (n: number): Promise<number> => {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) await pair.a.ask(echo.address, { type: 'Echo', data }, { timeoutMs: 5_000 });
        return ((performance.now() - t0) * 1000) / n;
      };
      await run(1_000);
      let us = 0;
      await profiled(async () => {
        us = await run(10_000);
      });
      return `${us.toFixed(0)} µs per ask (mean)`;
    } finally {
      await pair.close();
    }
  },
  spawn: async ({ profiled }) => {
    const n = Number(process.env.SPAWN_N ?? 5_000);
    const warm = createSystem({ node: 'warm', logger: silentLogger() });
    for (let i = 0; i < 500; i++) warm.spawn(Counter, { name: `c${i}` });
    await quiesce();
    await warm.shutdown();
    let system: ActorSystem | undefined;
    let line = '';
    await profiled(async () => {
      system = createSystem({ node: 'spawn', logger: silentLogger() });
      const t0 = performance.now();
      for (let i = 0; i < n; i++) system.spawn(Counter, { name: `c${i}` });
      const t1 = performance.now();
      await quiesce();
      const t2 = performance.now();
      line = `${n} spawns: ${(t1 - t0).toFixed(0)} ms until the last spawn() returned, ${(t2 - t0).toFixed(0)} ms until idle`;
    });
    await system?.shutdown();
    return line;
  },
};

function summarize(profile: CpuProfile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const timeOf = new Map<number, number>();
  profile.samples.forEach((id, i) => timeOf.set(id, (timeOf.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const label = (n: CpuProfileNode): string => {
    const { functionName, url, lineNumber } = n.callFrame;
    const file = url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '').replace(/^.*node_modules\//, '');
    const line = file.endsWith('.ts') ? '' : `:${lineNumber + 1}`;
    return `${functionName || '(anonymous)'} ${file}${line}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (const [id, t] of timeOf) {
    total += t;
    const node = byId.get(id)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + t);
    }
  }
  const list = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([l, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${l}`).join('\n');
  return `profiled ${(total / 1000).toFixed(0)} ms\n\nself time:\n${list(self)}\n\ninclusive time:\n${list(inclusive)}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const name = argv[0] ?? '';
  const scenario = SCENARIOS[name];
  if (!scenario) {
    console.error(`usage: npx tsx test/bench/profile.ts <${Object.keys(SCENARIOS).join('|')}> [--out FILE] [--top N]`);
    process.exit(2);
  }
  const opt = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = opt('--out') ?? `/tmp/troupe-${name}.cpuprofile`;
  const top = Number(opt('--top') ?? 30);
  let server: NatsServerHandle | undefined;
  const session = new Session();
  session.connect();
  let profile: CpuProfile | undefined;
  const profiled = async (fn: () => Promise<void>): Promise<void> => {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    try {
      await fn();
    } finally {
      profile = (await session.post('Profiler.stop')).profile as unknown as CpuProfile;
    }
  };
  try {
    if (name !== 'local-tell' && name !== 'spawn') server = await startNatsServer();
    const result = await scenario({ url: server?.url ?? '', profiled });
    writeFileSync(out, JSON.stringify(profile));
    console.log(`${name}: ${result} (under the profiler)\nwrote ${out}\n`);
    console.log(summarize(profile!, top));
  } finally {
    session.disconnect();
    await server?.stop();
  }
}

await main();
