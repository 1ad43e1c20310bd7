/**
 * ask-serial — request/reply latency over one nats-server, one ask in flight at a time.
 *
 * Measured (troupe): `a.ask(b/echo, Echo { data: 64 bytes })` from outside any actor on system `a`,
 * answered by an echo actor on system `b` (its own NATS connection) with `EchoReply { data }`:
 * envelope encode → `nc.request` → b's wildcard subscription → decode → mailbox → echo transition →
 * `reply` effect → encode → publish to the reply inbox → decode on `a`, resolve.
 * Baseline (nats.js): `nc1.request(subject, 64 bytes)` to a raw `nc2.subscribe` responder that
 * answers `msg.respond(msg.data)`. Latency is noisy on a shared 2-core machine, so the variants
 * alternate in many short blocks of BLOCK sequential calls (3 × the run's rounds, after a warm-up
 * block each) and p50/p99 are taken over all samples of a variant pooled: both see the same
 * background load. Every reply is checked.
 */
import { connect } from '@nats-io/transport-node';
import { alternate, percentile, row, type Bench, type Variant } from './harness.ts';
import { bytes, Echo, natsPair } from './fixtures.ts';
import type { EchoReply } from './bench.pb.ts';

const BLOCK = 1_000;
const PAYLOAD_BYTES = 64;
const TIMEOUT_MS = 5_000;

/** Latencies in µs of BLOCK sequential calls. */
async function timeSerial(call: () => Promise<number>): Promise<number[]> {
  const us: number[] = new Array<number>(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    const t0 = performance.now();
    const len = await call();
    us[i] = (performance.now() - t0) * 1000;
    if (len !== PAYLOAD_BYTES) throw new Error(`ask-serial: reply carried ${len} bytes, expected ${PAYLOAD_BYTES}`);
  }
  return us;
}

export const bench: Bench = {
  name: 'ask-serial',
  description: 'one ask at a time over NATS between two systems, p50/p99 latency, vs raw nc.request to a raw responder',
  needsNats: true,
  async run(ctx) {
    const data = bytes(PAYLOAD_BYTES);
    const pair = await natsPair(ctx.natsUrl, 'benchask');
    const nc1 = await connect({ servers: ctx.natsUrl, name: 'bench-raw-requester' });
    const nc2 = await connect({ servers: ctx.natsUrl, name: 'bench-raw-responder' });
    try {
      const echo = pair.b.spawn(Echo, { name: 'echo' });
      const remoteEcho = pair.a.ref(echo.address);
      nc2.subscribe('bench.raw.echo', { callback: (_err, msg) => void msg.respond(msg.data) });
      await nc2.flush();
      const variants: Variant<number[]>[] = [
        {
          name: 'troupe ask',
          round: () => timeSerial(async () => (await pair.a.ask<EchoReply>(remoteEcho, { type: 'Echo', data }, { timeoutMs: TIMEOUT_MS })).data.length),
        },
        {
          name: 'nats.js request',
          round: () => timeSerial(async () => (await nc1.request('bench.raw.echo', data, { timeout: TIMEOUT_MS })).data.length),
        },
      ];
      const [ours, raw] = (await alternate(variants, ctx.rounds * 3, () => undefined)).map((blocks) => blocks.flat());
      for (const [name, xs] of [['troupe ask', ours!], ['nats.js request', raw!]] as const) {
        ctx.log(`  ${name}: ${xs.length} samples, p50 ${percentile(xs, 50).toFixed(0)} µs, p99 ${percentile(xs, 99).toFixed(0)} µs`);
      }
      return [
        row('ask-serial', 'p50 latency (µs)', percentile(ours!, 50), percentile(raw!, 50), 'nats.js request', 0.87, 'lower'),
        // no target for the tail: reported, not judged
        row('ask-serial', 'p99 latency (µs)', percentile(ours!, 99), percentile(raw!, 99), 'nats.js request', 0, 'lower'),
      ];
    } finally {
      await Promise.all([pair.close(), nc1.drain(), nc2.drain()]);
    }
  },
};
