/**
 * ask-pipelined — request/reply throughput over one nats-server with CONCURRENCY asks in flight.
 *
 * Measured (troupe): CONCURRENCY loops on system `a`, each awaiting `a.ask(b/echo, Echo { data: 64
 * bytes })` and asking again, until TOTAL asks have been answered by the echo actor on system `b`
 * (its own NATS connection). Baseline (nats.js): the same loops over `nc1.request(subject, 64 bytes)`
 * to a raw `nc2.subscribe` responder (`msg.respond(msg.data)`). Every reply is checked.
 */
import { connect } from '@nats-io/transport-node';
import { alternate, median, row, type Bench, type Variant } from './harness.ts';
import { bytes, Echo, natsPair } from './fixtures.ts';
import type { EchoReply } from './bench.pb.ts';

const CONCURRENCY = 256;
const TOTAL = 15_000;
const PAYLOAD_BYTES = 64;
const TIMEOUT_MS = 10_000;

/** Asks per second with CONCURRENCY calls in flight until TOTAL have completed. */
async function pipelined(call: () => Promise<number>): Promise<number> {
  let started = 0;
  let bad = 0;
  const worker = async (): Promise<void> => {
    while (started < TOTAL) {
      started++;
      if ((await call()) !== PAYLOAD_BYTES) bad++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const ms = performance.now() - t0;
  if (bad > 0) throw new Error(`ask-pipelined: ${bad} replies did not carry the ${PAYLOAD_BYTES} bytes sent`);
  return (TOTAL / ms) * 1000;
}

export const bench: Bench = {
  name: 'ask-pipelined',
  description: `${CONCURRENCY} asks in flight over NATS between two systems vs raw nc.request at the same concurrency`,
  needsNats: true,
  async run(ctx) {
    const data = bytes(PAYLOAD_BYTES);
    const pair = await natsPair(ctx.natsUrl, 'benchpipe');
    const nc1 = await connect({ servers: ctx.natsUrl, name: 'bench-raw-requester' });
    const nc2 = await connect({ servers: ctx.natsUrl, name: 'bench-raw-responder' });
    try {
      const echo = pair.b.spawn(Echo, { name: 'echo' });
      const remoteEcho = pair.a.ref(echo.address);
      nc2.subscribe('bench.raw.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
      await nc2.flush();
      const variants: Variant<number>[] = [
        {
          name: 'troupe ask',
          round: () => pipelined(async () => (await pair.a.ask<EchoReply>(remoteEcho, { type: 'Echo', data }, { timeoutMs: TIMEOUT_MS })).data.length),
        },
        {
          name: 'nats.js request',
          round: () => pipelined(async () => (await nc1.request('bench.raw.echo', data, { timeout: TIMEOUT_MS })).data.length),
        },
      ];
      const [ours, raw] = await alternate(variants, ctx.rounds, ctx.log);
      return [row('ask-pipelined', `throughput, ${CONCURRENCY} in flight (asks/s)`, median(ours!), median(raw!), 'nats.js request', 0.5, 'higher')];
    } finally {
      await Promise.all([pair.close(), nc1.drain(), nc2.drain()]);
    }
  },
};
