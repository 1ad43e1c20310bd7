/**
 * Lease election over a real 3-server NATS cluster (a KV bucket with 3 replicas): three
 * candidates, each on its own connection (to a different server first), campaign for one group.
 * The server that leads the bucket's stream is SIGKILLed. Checked throughout, by a 2 ms sampler
 * and at every callback: never two candidates that may act as leader at once, never two
 * leaderships with the same epoch, epochs increasing, a fenced resource never rejects a leader;
 * and a leader again after NATS's own failover, which then holds its lease.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { leaseElection, type LeaseCampaign } from '../../actors/leader-election/lease.ts';
import { realClock } from '../../framework/clock.ts';
import { isStoreUnavailableError } from '../../framework/errors.ts';
import { createNatsKvStore } from '../../framework/store/nats-kv.ts';
import type { KvStore } from '../../framework/store/store.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { eventually, waitFor } from '../helpers/wait-for.ts';

const TTL = 2_000;
const RENEW = 400;
const MARGIN = 200;
const BUCKET = 'elections';

describe.skipIf(!requireNatsServer())('lease election over NATS KV on a 3-server cluster', () => {
  const servers = natsServerScope();
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await servers.stopAll();
  });

  it('killing the server that leads the KV stream never yields two leaders; a leader is back after the failover', { timeout: 90_000 }, async () => {
    const cluster = await servers.startCluster(3);
    const urls = [...cluster.urls];
    const clock = realClock();
    const violations: string[] = [];
    const elections: Array<{ candidate: string; epoch: number; atMs: number }> = [];
    const deposals: Array<{ candidate: string; epoch: number; reason: string; atMs: number }> = [];
    const campaigns: LeaseCampaign[] = [];
    let highestWritten = 0;
    let writes = 0;

    const leaders = (): LeaseCampaign[] => campaigns.filter((c) => c.isLeader());
    const check = (when: string): void => {
      const now = leaders();
      if (now.length > 1) violations.push(`${when}: ${now.map((c) => `${c.candidate}@${c.leadership()?.epoch}`).join(' and ')} lead at once`);
    };

    for (let i = 0; i < 3; i++) {
      const name = `cand-${i}`;
      // JetStream elects its meta leader a moment after the routes are up: until then opening fails as unavailable.
      const store: KvStore = await eventually(`${name} to open the bucket`, () => createNatsKvStore({
        servers: [urls[i]!, ...urls.filter((_, j) => j !== i)], bucket: BUCKET, replicas: 3, ttlMs: TTL,
        timeoutMs: 500, reconnectTimeWaitMs: 100, watchProbeIntervalMs: 500, name,
      }), { transient: isStoreUnavailableError });
      cleanup.push(() => store.close());
      const election = leaseElection({ store, candidate: name, clock, ttlMs: TTL, renewIntervalMs: RENEW, safetyMarginMs: MARGIN });
      const campaign = election.campaign('jobs', {
        onElected: ({ epoch }) => {
          if (elections.some((e) => e.epoch === epoch)) violations.push(`epoch ${epoch} elected twice`);
          if (elections.some((e) => e.epoch > epoch)) violations.push(`epoch ${epoch} elected after a larger one`);
          elections.push({ candidate: name, epoch, atMs: clock.now() });
          check(`${name} elected with ${epoch}`);
        },
        onDeposed: ({ epoch, reason }) => deposals.push({ candidate: name, epoch, reason, atMs: clock.now() }),
      });
      campaigns.push(campaign);
      cleanup.push(() => campaign.resign());
    }

    // The sampler: who may act right now, and the leader's work against a fenced resource.
    const sampler = setInterval(() => {
      check('sampler');
      for (const c of campaigns) {
        const l = c.leadership();
        if (!l) continue;
        if (l.epoch < highestWritten) violations.push(`fenced resource rejected ${l.candidate} with epoch ${l.epoch} < ${highestWritten}`);
        highestWritten = Math.max(highestWritten, l.epoch);
        writes++;
      }
    }, 2);
    cleanup.push(async () => clearInterval(sampler));

    await waitFor(() => leaders().length === 1, { timeoutMs: 20_000, message: 'a first leader' });
    const first = leaders()[0]!;
    const firstEpoch = first.leadership()!.epoch;
    await waitFor(() => writes > 200, { timeoutMs: 10_000 }); // it renews and works for a while

    const nc = await connect({ servers: urls });
    const streamLeader = (await (await jetstreamManager(nc)).streams.info(`KV_${BUCKET}`)).cluster?.leader;
    await nc.close();
    const index = cluster.servers.findIndex((_, i) => `s${i + 1}` === streamLeader);
    expect(index).toBeGreaterThanOrEqual(0);
    const electionsBefore = elections.length;
    await cluster.kill(index);
    const killedAt = clock.now();

    // Liveness: a leader again (the same leadership riding the failover out, or a new one) that
    // holds its lease across several renewals after NATS has failed over.
    let stableSince: number | undefined;
    await waitFor(() => {
      const now = leaders();
      if (now.length !== 1 || clock.now() - killedAt < TTL) { stableSince = undefined; return false; }
      stableSince ??= clock.now();
      return clock.now() - stableSince >= 2 * TTL;
    }, { timeoutMs: 60_000, intervalMs: 20, message: () => `a stable leader after the failover (elections ${JSON.stringify(elections)}, deposals ${JSON.stringify(deposals)})` });
    clearInterval(sampler);
    const after = leaders()[0]!;
    const afterEpoch = after.leadership()!.epoch;
    const newLeaderships = elections.slice(electionsBefore);
    console.log(`leader-election over NATS: first ${first.candidate}@${firstEpoch}; killed stream leader s${index + 1}; ` +
      `then ${newLeaderships.map((e) => `${e.candidate}@${e.epoch} after ${Math.round(e.atMs - killedAt)} ms`).join(', ') || 'the same leadership rode it out'}; ` +
      `deposals ${deposals.map((d) => `${d.candidate}@${d.epoch} ${d.reason} after ${Math.round(d.atMs - killedAt)} ms`).join(', ') || 'none'}`);

    expect(violations).toEqual([]);
    expect(writes).toBeGreaterThan(1_000);
    if (afterEpoch === firstEpoch) {
      expect(after).toBe(first);
      expect(newLeaderships).toEqual([]);
    } else {
      expect(afterEpoch).toBeGreaterThan(firstEpoch);
      // the old leadership ended before the new one began
      const end = deposals.find((d) => d.epoch === firstEpoch);
      expect(end).toBeDefined();
      expect(end!.atMs).toBeLessThanOrEqual(newLeaderships[0]!.atMs);
    }
  });
});
