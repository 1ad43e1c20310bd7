/**
 * resilience-cluster — a circuit breaker shared by two OS processes through a NATS JetStream KV
 * bucket. Node A (this process) sees the payment dependency fail and trips its breaker; node B (a
 * child process that never called the dependency) opens too, within the KV watch delay, and its
 * calls fail fast. After the open period one node probes (trial ownership is a KV compare-and-set),
 * and its success closes the circuit on both.
 *
 * Run: npx tsx framework/cli.ts run resilience-cluster [--nats nats://127.0.0.1:4222]
 *      (without --nats, a local nats-server with JetStream is started when one is installed)
 */
import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { shareBreaker } from '../../actors/circuit-breaker/shared.ts';
import { createNatsKvStore, realClock } from '../../framework/index.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { NATS_SERVER_MISSING, natsServerAvailable, startNatsServer, type NatsServerHandle } from '../../framework/nats-server.ts';

const here = dirname(fileURLToPath(import.meta.url));

export async function main(options: { nats?: string; say?: (line: string) => void } = {}): Promise<{ nodeB: string[] }> {
  const say = options.say ?? ((line: string) => console.log(line));
  let server: NatsServerHandle | undefined;
  let url = options.nats;
  if (!url) {
    if (!natsServerAvailable()) throw new Error(`resilience-cluster needs a NATS server with JetStream: pass --nats URL, or ${NATS_SERVER_MISSING}`);
    server = await startNatsServer({ jetstream: true });
    url = server.url;
    say(`started a local nats-server with JetStream at ${url}`);
  }
  const bucket = `breakers-${process.pid}`;
  const clock = realClock();
  const store = await createNatsKvStore({ servers: url, bucket, name: 'node-a' });
  const breaker = createCircuitBreaker({ name: 'payments', clock, consecutiveFailures: 3, openMs: 1_000 });
  breaker.on('stateChange', (e) => say(`[node-a] breaker ${e.from} → ${e.to}: ${e.reason}`));
  const shared = shareBreaker(breaker, { store, node: 'node-a', clock });
  await shared.ready;

  const nodeBLines: string[] = [];
  let child: ChildProcess | undefined;
  const waitForB = (pred: (line: string) => boolean): Promise<string> => new Promise((resolve) => {
    const hit = nodeBLines.find(pred);
    if (hit) resolve(hit);
    else waiters.push({ pred, resolve });
  });
  const waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void }> = [];
  try {
    child = await startNodeProcess({
      entry: join(here, 'node-b.ts'), env: { TROUPE_NATS_URL: url, TROUPE_BUCKET: bucket }, stdin: 'pipe',
      onLine: (line) => {
        nodeBLines.push(line);
        say(`[node-b] ${line}`);
        for (const w of waiters.splice(0)) {
          if (w.pred(line)) w.resolve(line);
          else waiters.push(w);
        }
      },
    });
    say(`node-b is up (pid ${child.pid}); both share breaker 'payments' through KV bucket ${bucket}`);

    say('[node-a] the payment dependency fails three times in a row…');
    for (let i = 0; i < 3; i++) await breaker.execute(() => Promise.reject(new Error('card processor unavailable'))).catch(() => undefined);
    await waitForB((l) => l.includes('→ open'));
    child.stdin!.write('probe\n');
    await waitForB((l) => l.startsWith('probe:'));

    say('[node-a] after the open period, one node probes; its success closes the circuit everywhere');
    await new Promise<void>((r) => clock.setTimeout(r, 1_050));
    const outcome = await breaker.execute(async () => 'paid').catch((e: Error) => e.name);
    say(`[node-a] probe: ${outcome}`);
    if (outcome === 'paid') await waitForB((l) => l.includes('→ closed'));
    else await waitForB((l) => l.includes('→ closed') || l.includes('probe'));
    return { nodeB: nodeBLines };
  } finally {
    child?.stdin?.end();
    child?.kill('SIGTERM');
    await shared.stop();
    breaker.dispose();
    await store.close();
    await server?.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
