/**
 * Node B of the resilience-cluster example: a separate OS process with its own `payments` breaker,
 * shared through the NATS KV bucket named by TROUPE_BUCKET on TROUPE_NATS_URL. It never calls the
 * failing dependency itself; it prints its breaker's transitions, and answers "probe" lines on
 * stdin by calling the protected function once and printing the outcome.
 */
import { createInterface } from 'node:readline';
import { createCircuitBreaker } from '../../actors/circuit-breaker/breaker.ts';
import { shareBreaker } from '../../actors/circuit-breaker/shared.ts';
import { createNatsKvStore, realClock } from '../../framework/index.ts';

const url = process.env['TROUPE_NATS_URL'];
const bucket = process.env['TROUPE_BUCKET'];
if (!url || !bucket) {
  console.error('node-b: set TROUPE_NATS_URL and TROUPE_BUCKET (started by examples/resilience-cluster/main.ts)');
  process.exit(2);
}
const clock = realClock();
const store = await createNatsKvStore({ servers: url, bucket, name: 'node-b' });
const breaker = createCircuitBreaker({ name: 'payments', clock, consecutiveFailures: 3, openMs: 1_000 });
breaker.on('stateChange', (e) => console.log(`breaker ${e.from} → ${e.to}: ${e.reason}`));
const shared = shareBreaker(breaker, { store, node: 'node-b', clock });
await shared.ready;
console.log('ready');
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'probe') return;
  breaker.execute(async () => 'paid').then(
    (r) => console.log(`probe: ${r}`),
    (e: Error) => console.log(`probe: ${e.name} (${e.message})`),
  );
});
const stop = async (): Promise<void> => {
  await shared.stop();
  breaker.dispose();
  await store.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
