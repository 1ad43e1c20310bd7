/**
 * resilience — a caller protected by retry + circuit breaker + bulkhead + timeout, asking a flaky
 * payment service actor. The output narrates the breaker tripping, rejections while it is open,
 * the bulkhead shedding a burst, the half-open probe and the recovery — every breaker transition is
 * a transition of its state chart.
 *
 * Run: npx tsx framework/cli.ts run resilience
 */
import { assign, setup } from 'xstate';
import { createBulkhead } from '../actors/bulkhead/bulkhead.ts';
import { createCircuitBreaker } from '../actors/circuit-breaker/breaker.ts';
import { wrap } from '../actors/policy/policy.ts';
import { timeout } from '../actors/policy/timeout.ts';
import { createRetry } from '../actors/retry/retry.ts';
import {
  BrokenCircuitError, BulkheadRejectedError, createLogger, createSystem, defineActor, reply, type ActorSystem, type InspectionSink, type Logger,
} from '../framework/index.ts';
import { messages, type Message, type Receipt } from './payments.pb.ts';

/** A payment service whose health is switched by SetHealth; unhealthy charges are declined. */
export const paymentsMachine = setup({
  types: { events: {} as Message, context: {} as { healthy: boolean; served: number } },
}).createMachine({
  id: 'payments',
  context: { healthy: true, served: 0 },
  on: {
    SetHealth: { actions: assign({ healthy: ({ event }) => event.healthy }) },
    Charge: {
      actions: [
        assign({ served: ({ context }) => context.served + 1 }),
        reply(({ context, event }) => ({
          type: 'Receipt', order: event.order, ok: context.healthy, error: context.healthy ? '' : 'card processor unavailable',
        })),
      ],
    },
  },
});

export const Payments = defineActor({ type: 'payments', machine: paymentsMachine, messages });

/**
 * `inspect`: an inspection sink (`troupe run resilience --inspect` passes the inspector's);
 * `paceMs`: a pause before the steps whose timing does not matter (1, 2 and 5: the circuit is closed),
 * so a person (or a browser test) can watch the charts move.
 */
export async function main(options: { say?: (line: string) => void; logger?: Logger; inspect?: InspectionSink; paceMs?: number } = {}): Promise<{ outcomes: Record<string, number>; transitions: string[] }> {
  const say = options.say ?? ((line: string) => console.log(line));
  const system: ActorSystem = createSystem({
    cluster: 'demo', node: 'shop', logger: options.logger ?? createLogger({ level: 'warn' }), ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  const clock = system.clock;
  const pace = (): Promise<void> => new Promise<void>((r) => clock.setTimeout(r, options.paceMs ?? 0));
  const transitions: string[] = [];
  const outcomes: Record<string, number> = {};
  const count = (k: string): void => { outcomes[k] = (outcomes[k] ?? 0) + 1; };

  const breaker = createCircuitBreaker({ name: 'payments', clock, consecutiveFailures: 4, openMs: 300, halfOpenTrials: 1 });
  const bulkhead = createBulkhead({ name: 'payments', limit: 3, queue: 2, clock });
  const retry = createRetry({
    name: 'payments', maxAttempts: 2, clock, backoff: { kind: 'constant', delayMs: 20 },
    // a broken circuit or a full bulkhead will not be better 20 ms later
    retryable: (e) => !(e instanceof BrokenCircuitError || e instanceof BulkheadRejectedError),
  });
  const policy = wrap(retry, breaker, bulkhead, timeout({ timeoutMs: 200, clock }));
  breaker.on('stateChange', (e) => { transitions.push(`${e.from}→${e.to}`); say(`  ⚡ breaker ${e.from} → ${e.to}: ${e.reason}`); });
  retry.on('retry', () => count('retried'));

  // the policies' charts appear with the system's actors (and in the inspector)
  system.host('breaker-payments', breaker.actor, { type: 'circuit-breaker' });
  system.host('bulkhead-payments', bulkhead.actor, { type: 'bulkhead' });
  try {
    const payments = system.spawn(Payments, { name: 'payments' });
    let order = 0;
    const charge = async (): Promise<string> => {
      const id = ++order;
      try {
        await policy.execute(async ({ signal }) => {
          const receipt = await system.ask<Receipt>(payments, { type: 'Charge', order: id, amountCents: 1_999 }, { signal });
          if (!receipt.ok) throw new Error(receipt.error);
          return receipt;
        });
        count('ok');
        return `order ${id}: paid`;
      } catch (err) {
        const name = (err as Error).name;
        count(name);
        if (err instanceof BrokenCircuitError) return `order ${id}: rejected at once — circuit ${err.state}, next trial in ${(err.retryAtMs ?? 0) - clock.now()} ms`;
        return `order ${id}: ${name}: ${(err as Error).message}`;
      }
    };

    await pace();
    say('1. the payment service is healthy');
    for (let i = 0; i < 3; i++) say(`  ${await charge()}`);

    await pace();
    say('2. the card processor goes down: charges are declined, retried once, then the breaker trips');
    payments.send({ type: 'SetHealth', healthy: false });
    for (let i = 0; i < 4; i++) say(`  ${await charge()}`);

    say('3. while the circuit is open, calls fail fast without reaching the service');
    for (let i = 0; i < 2; i++) say(`  ${await charge()}`);

    say('4. the processor is back; after the open period one trial call is let through and closes the circuit');
    payments.send({ type: 'SetHealth', healthy: true });
    await new Promise<void>((r) => clock.setTimeout(r, 320));
    say(`  ${await charge()}`);
    say(`  ${await charge()}`);

    await pace();
    say('5. a burst of 8 concurrent charges against a bulkhead of 3 slots + 2 queue places');
    const burst = await Promise.all(Array.from({ length: 8 }, () => charge()));
    for (const line of burst) say(`  ${line}`);
    say(`outcomes: ${JSON.stringify(outcomes)}`);
    return { outcomes, transitions };
  } finally {
    breaker.dispose();
    await system.shutdown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
