/**
 * quorum — the CAP trade-off made visible. Three replicas (r1, r2, r3), a writer and a reader on
 * their own nodes, a stand-in (s1) for the sloppy row. For each (W, R) setting the writer puts a
 * new value every 20 ms and the reader gets it every 20 ms, for one simulated second — first on a
 * healthy network, then with the network split in two: the writer with r1 (and s1), the reader with
 * r2 and r3. The table counts, per setting, operations that succeeded, operations that were
 * unavailable (QuorumUnreachableError — never a partial success), and stale reads: reads that
 * returned an older version than a write acknowledged before the read began.
 *
 * What to look for: W + R > N never reads stale, but pays for it with unavailability on the side of
 * the split that cannot reach a quorum; W + R ≤ N stays available and reads stale; a sloppy quorum
 * (stand-ins count toward W) keeps writes available and gives up W + R > N.
 *
 * Runs on troupe's deterministic simulator (simulated time, seeded, instant).
 * Run: npx tsx framework/cli.ts run quorum
 */
import { createQuorumGroup, quorumMessages, type QuorumGroupOptions, type QuorumVersion } from '../actors/quorum/quorum.ts';
import { spawnQuorumReplica } from '../actors/quorum/replica.ts';
import { compareVersions } from '../actors/quorum/versions.ts';
import { isQuorumUnreachableError } from '../framework/errors.ts';
import { createSimulation } from '../framework/sim/simulation.ts';

/** One row of the table. */
export interface QuorumRow {
  readonly setting: string;
  readonly partitioned: boolean;
  readonly writesOk: number;
  readonly writesUnavailable: number;
  readonly readsOk: number;
  readonly readsUnavailable: number;
  readonly staleReads: number;
}

const SETTINGS: ReadonlyArray<{ label: string; options: Pick<QuorumGroupOptions, 'w' | 'r' | 'allowWeakQuorum' | 'standIns'> }> = [
  { label: 'W=1 R=1', options: { w: 1, r: 1, allowWeakQuorum: true } },
  { label: 'W=2 R=2', options: { w: 2, r: 2 } },
  { label: 'W=3 R=1', options: { w: 3, r: 1 } },
  { label: 'W=1 R=3', options: { w: 1, r: 3 } },
  { label: 'W=2 R=2 sloppy', options: { w: 2, r: 2, standIns: ['s1/replica'] } },
];
const REPLICAS = ['r1/replica', 'r2/replica', 'r3/replica'];
const DURATION_MS = 1_000;

async function measure(label: string, options: (typeof SETTINGS)[number]['options'], partitioned: boolean): Promise<QuorumRow> {
  const sim = createSimulation({ seed: 1, nodes: ['r1', 'r2', 'r3', 's1', 'writer', 'reader'], scenario: 'quorum-example', latencyMs: [1, 5] });
  try {
    for (const node of ['r1', 'r2', 'r3', 's1']) spawnQuorumReplica(sim.system(node), { name: 'replica', handoffIntervalMs: 100 });
    const group = (node: string) => createQuorumGroup(sim.system(node, { messages: [quorumMessages] }), { replicas: REPLICAS, timeoutMs: 50, ...options });
    const writer = group('writer');
    const reader = group('reader');
    if (partitioned) sim.nemesis.partition([['writer', 'r1', 's1'], ['reader', 'r2', 'r3']]);
    const acked: Array<{ version: QuorumVersion; at: number }> = [];
    const row = { setting: label, partitioned, writesOk: 0, writesUnavailable: 0, readsOk: 0, readsUnavailable: 0, staleReads: 0 };
    const every = (ms: number): Promise<void> => new Promise((resolve) => sim.clock.setTimeout(resolve, ms));
    const writes = (async () => {
      for (let i = 1; sim.now() < DURATION_MS; i++) {
        try {
          const { version } = await writer.put('x', `v${i}`);
          acked.push({ version, at: sim.now() });
          row.writesOk++;
        } catch (err) {
          if (!isQuorumUnreachableError(err)) throw err;
          row.writesUnavailable++;
        }
        await every(20);
      }
    })();
    const reads = (async () => {
      await every(10);
      while (sim.now() < DURATION_MS) {
        const startedAt = sim.now();
        const newest = acked.filter((w) => w.at < startedAt).at(-1)?.version;
        try {
          const r = await reader.get('x');
          row.readsOk++;
          if (newest && (r.version === undefined || compareVersions(r.version, newest) < 0)) row.staleReads++;
        } catch (err) {
          if (!isQuorumUnreachableError(err)) throw err;
          row.readsUnavailable++;
        }
        await every(20);
      }
    })();
    let done = false;
    const both = Promise.all([writes, reads]).finally(() => { done = true; });
    await sim.run({ until: () => done, maxSteps: 1_000_000 });
    await both;
    return row;
  } finally {
    await sim.shutdown();
  }
}

/** Print the table; returns its rows (tests read them). */
export async function main(options: { say?: (line: string) => void } = {}): Promise<QuorumRow[]> {
  const say = options.say ?? ((line: string) => console.log(line));
  say('N = 3 replicas; one simulated second per row; partition: {writer, r1, s1} | {reader, r2, r3}\n');
  const rows: QuorumRow[] = [];
  for (const partitioned of [false, true]) {
    for (const s of SETTINGS) rows.push(await measure(s.label, s.options, partitioned));
  }
  const head = ['setting', 'network', 'writes ok', 'writes unavailable', 'reads ok', 'reads unavailable', 'stale reads'];
  const cells = rows.map((r) => [r.setting, r.partitioned ? 'split' : 'healthy', r.writesOk, r.writesUnavailable, r.readsOk, r.readsUnavailable, r.staleReads].map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  say(line(head));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) say(line(c));
  say('\nW + R > N (2+2, 3+1, 1+3): no stale read, ever — on a split, the side without a quorum is unavailable.');
  say('W + R ≤ N (1+1): always available, and reads go stale on a split.');
  say('Sloppy W=2 R=2: writes stay available through the stand-in, and reads on the other side go stale until the heal and handoff.');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
