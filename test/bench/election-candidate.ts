/**
 * One lease-election candidate as its own OS process, for the election-failover bench: a NATS KV
 * store (its own connection) and a campaign for the group `bench`. Configured by environment:
 * TROUPE_NATS_URL, TROUPE_CANDIDATE, TROUPE_BUCKET, TROUPE_TTL_MS, TROUPE_RENEW_MS, TROUPE_MARGIN_MS.
 * Prints `ready` once campaigning, then `elected <epoch>` and `deposed <epoch> <reason>` lines.
 */
import { leaseElection } from '../../actors/leader-election/lease.ts';
import { createNatsKvStore, realClock } from '../../framework/index.ts';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) {
    console.error(`election candidate: set ${k}`);
    process.exit(2);
  }
  return v;
};
const ttlMs = Number(env('TROUPE_TTL_MS'));
const candidate = env('TROUPE_CANDIDATE');
const store = await createNatsKvStore({ servers: env('TROUPE_NATS_URL'), bucket: env('TROUPE_BUCKET'), ttlMs, timeoutMs: 500, name: candidate });
const election = leaseElection({
  store, candidate, clock: realClock(), ttlMs, renewIntervalMs: Number(env('TROUPE_RENEW_MS')), safetyMarginMs: Number(env('TROUPE_MARGIN_MS')),
});
election.campaign('bench', {
  onElected: ({ epoch }) => console.log(`elected ${epoch}`),
  onDeposed: ({ epoch, reason }) => console.log(`deposed ${epoch} ${reason}`),
});
console.log('ready');
const stop = (): void => void election.close().then(() => store.close()).then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
