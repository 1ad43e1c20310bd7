/**
 * two-nodes — two OS processes talking over a real NATS server.
 * This process is node A (a pinger); it starts node B (a ponger) as a child process. A plays a
 * rally of remote tells against B, asks B across the wire, watches B's ponger, then kills B with
 * SIGKILL and reports how the death watch noticed (B's node stops answering heartbeats).
 *
 * Run: npx tsx framework/cli.ts run two-nodes [--nats nats://127.0.0.1:4222 | --spawn-nats]
 *      (with neither flag, a local nats-server is started when one is installed)
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectNats, createLogger, createSystem, type TerminatedEvent } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { NATS_SERVER_MISSING, natsServerAvailable, startNatsServer, type NatsServerHandle } from '../../framework/nats-server.ts';
import { Pinger } from '../ping-pong.ts';
import type { Pong } from '../pingpong.pb.ts';

const here = dirname(fileURLToPath(import.meta.url));

function startNodeB(url: string, say: (line: string) => void): Promise<ChildProcess> {
  return startNodeProcess({ entry: join(here, 'node-b.ts'), env: { TROUPE_NATS_URL: url }, onLine: (line) => say(`  [node-b] ${line}`) });
}

export async function main(options: { nats?: string; spawnNats?: boolean; say?: (line: string) => void; rally?: number } = {}): Promise<{
  rally: number; askedN: number; terminated: TerminatedEvent; detectMs: number;
}> {
  const say = options.say ?? ((line: string) => console.log(line));
  const rally = options.rally ?? 200;
  let server: NatsServerHandle | undefined;
  let url = options.nats;
  if (!url) {
    if (!natsServerAvailable()) throw new Error(`two-nodes needs a NATS server: pass --nats URL, or ${NATS_SERVER_MISSING}`);
    server = await startNatsServer();
    url = server.url;
    say(`started a local nats-server at ${url}`);
  }
  let nodeB: ChildProcess | undefined;
  const system = createSystem({
    cluster: 'two-nodes', node: 'node-a', transport: await connectNats({ servers: url, name: 'node-a' }),
    logger: createLogger({ level: (process.env['LOG_LEVEL'] as 'debug') ?? 'error' }), heartbeatIntervalMs: 250, heartbeatTimeoutMs: 500,
  });
  try {
    await system.ready();
    nodeB = await startNodeB(url, say);
    say(`node-b is up (pid ${nodeB.pid}) hosting node-b/ponger; this process is node-a`);

    const pinger = system.spawn(Pinger, { name: 'pinger' });
    const done = system.watch(pinger);
    const t0 = system.clock.now();
    pinger.send({ type: 'Start', ponger: 'node-b/ponger', count: rally });
    await done;
    say(`node-a/pinger played ${rally} pings against node-b/ponger by remote tell in ${system.clock.now() - t0} ms`);

    const pong = await system.ask<Pong>('node-b/ponger', { type: 'Ping', n: 7 }, { timeoutMs: 2_000 });
    say(`asked node-b/ponger Ping(7) over NATS → Pong(${pong.n})`);

    const watched = system.watch('node-b/ponger');
    say(`node-a watches node-b/ponger; killing node-b with SIGKILL…`);
    const killedAt = system.clock.now();
    nodeB.kill('SIGKILL');
    const terminated = await watched;
    const detectMs = system.clock.now() - killedAt;
    say(`death watch: ${terminated.actor} terminated (${terminated.reason}) ${detectMs} ms after the kill`);

    try {
      await system.ask('node-b/ponger', { type: 'Ping', n: 8 }, { timeoutMs: 1_000 });
    } catch (err) {
      say(`asking the dead node now fails fast with ${(err as Error).name}: ${(err as Error).message}`);
    }
    return { rally, askedN: pong.n as number, terminated, detectMs };
  } finally {
    nodeB?.kill('SIGKILL');
    await system.shutdown();
    await server?.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
