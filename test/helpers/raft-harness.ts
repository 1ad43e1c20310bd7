/**
 * A deterministic, in-process harness for Raft's pure core: N nodes, a message queue with seeded
 * loss, duplication and reordering, partitions, crashes (volatile state lost; what was persisted
 * survives) and restarts, and Raft's global invariants checked after every step:
 * at most one leader per term, terms never decrease, committed prefixes never diverge, applied ≤ commit.
 */
import { createRng, type Rng } from '../../framework/clock.ts';
import { initialState, snapshotIndex, step, type HardState, type RaftConfig, type RaftInput, type RaftState } from '../../actors/raft/core.ts';
import { applyPersist } from '../../actors/raft/node.ts';
import type { Entry, RaftEffect, RaftMessage, Snapshot } from '../../actors/raft/types.ts';

interface NodeSlot {
  config: RaftConfig;
  state: RaftState | undefined; // undefined while crashed
  hard: HardState;
  /** Every entry the state machine holds, from index 1 (a restored snapshot included). */
  applied: Entry[];
  maxTermSeen: number;
}

interface InFlight { from: string; to: string; message: RaftMessage; seq: number }

export interface HarnessOptions {
  nodes: number;
  seed: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  electionTicks?: number;
  heartbeatTicks?: number;
  maxBatch?: number;
  drop?: number;
  duplicate?: number;
  /** Compact every node's log each time it has applied this many entries past its snapshot (off when unset). */
  compactEvery?: number;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
/** The harness's "state machine" is the list of applied entries; a snapshot is that list. */
const snapshotData = (applied: readonly Entry[]): Uint8Array => enc(JSON.stringify(applied.map((e) => [e.term, e.index, dec(e.data)])));
const fromSnapshot = (snapshot: Snapshot | undefined): Entry[] =>
  snapshot ? (JSON.parse(dec(snapshot.data)) as Array<[number, number, string]>).map(([term, index, data]) => ({ term, index, data: enc(data) })) : [];

export class RaftHarness {
  readonly ids: string[];
  readonly rng: Rng;
  readonly slots = new Map<string, NodeSlot>();
  private queue: InFlight[] = [];
  private seq = 0;
  /** Read outcomes: `index` -1 means refused (not the leader). */
  readonly reads: Array<{ node: string; id: string; index: number }> = [];
  /** The committed log as first applied by any node. */
  private readonly committed: Entry[] = [];
  /** term → the node that led it */
  readonly leaders = new Map<number, string>();
  /** Pairs (a, b) that cannot talk, a → b. */
  private cut = new Set<string>();
  drop: number;
  duplicate: number;
  steps = 0;

  constructor(readonly opts: HarnessOptions) {
    this.rng = createRng(opts.seed);
    this.ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.drop = opts.drop ?? 0;
    this.duplicate = opts.duplicate ?? 0;
    for (const id of this.ids) {
      const nodeRng = this.rng.fork();
      const config: RaftConfig = {
        id, voters: this.ids, electionTicks: opts.electionTicks ?? 10, heartbeatTicks: opts.heartbeatTicks ?? 2,
        preVote: opts.preVote ?? true, checkQuorum: opts.checkQuorum ?? true, maxBatch: opts.maxBatch ?? 16,
        random: () => nodeRng.next(),
      };
      const hard: HardState = { term: 0, votedFor: undefined, log: [] };
      this.slots.set(id, { config, state: initialState(config, hard), hard, applied: [], maxTermSeen: 0 });
    }
  }

  /** Start a new, empty node that knows `voters` (for membership changes); it joins `ids`. */
  addNode(id: string, voters: readonly string[]): void {
    const nodeRng = this.rng.fork();
    const config: RaftConfig = { ...this.slot(this.ids[0]!).config, id, voters, random: () => nodeRng.next() };
    const hard: HardState = { term: 0, votedFor: undefined, log: [] };
    this.slots.set(id, { config, state: initialState(config, hard), hard, applied: [], maxTermSeen: 0 });
    this.ids.push(id);
  }

  slot(id: string): NodeSlot {
    return this.slots.get(id)!;
  }

  state(id: string): RaftState {
    const s = this.slot(id).state;
    if (!s) throw new Error(`${id} is down`);
    return s;
  }

  /** Feed one input to a node and carry out its effects. */
  input(id: string, input: RaftInput): RaftEffect[] {
    const slot = this.slot(id);
    if (!slot.state) return [];
    const r = step(slot.config, slot.state, input);
    slot.state = r.state;
    for (const e of r.effects) this.effect(id, slot, e);
    this.steps++;
    this.checkInvariants();
    const every = this.opts.compactEvery;
    if (every !== undefined && input.type !== 'Compact' && slot.state && slot.state.lastApplied - snapshotIndex(slot.state) >= every) {
      this.input(id, { type: 'Compact', index: slot.applied.length, data: snapshotData(slot.applied) });
    }
    return [...r.effects];
  }

  private effect(id: string, slot: NodeSlot, e: RaftEffect): void {
    switch (e.type) {
      case 'raft.persist': {
        const before = applyPersist(slot.hard, { ...e, append: [] });
        const last = before.log[before.log.length - 1]?.index ?? before.snapshot?.index ?? 0;
        if (e.append.length > 0 && e.append[0]!.index !== last + 1) throw new Error(`${id}: persisted entry ${e.append[0]!.index} after ${last}`);
        slot.hard = applyPersist(slot.hard, e);
        return;
      }
      case 'raft.restore':
        slot.applied = fromSnapshot(e.snapshot);
        this.checkCommitted(id, slot.applied);
        return;
      case 'raft.send':
        this.send(id, e.to, e.message);
        return;
      case 'raft.apply':
        for (const entry of e.entries) {
          if (entry.index !== slot.applied.length + 1) throw new Error(`${id}: applied ${entry.index} after ${slot.applied.length}`);
          slot.applied.push(entry);
        }
        this.checkCommitted(id, e.entries);
        return;
      case 'raft.role':
        if (e.role === 'leader') {
          const other = this.leaders.get(e.term);
          if (other !== undefined && other !== id) throw new Error(`two leaders in term ${e.term}: ${other} and ${id}`);
          this.leaders.set(e.term, id);
        }
        return;
      case 'raft.notLeader':
        if (e.readId !== undefined) this.reads.push({ node: id, id: e.readId, index: -1 });
        return;
      case 'raft.readReady':
        this.reads.push({ node: id, id: e.id, index: e.index });
        return;
    }
  }

  /** Committed prefixes never diverge: every node applies (or restores) the same entry at each index. */
  private checkCommitted(id: string, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const first = this.committed[entry.index - 1];
      if (first === undefined) this.committed[entry.index - 1] = entry;
      else if (first.term !== entry.term || dec(first.data) !== dec(entry.data)) {
        throw new Error(`invariant broken (seed ${this.opts.seed}, step ${this.steps}): ${id} applied a different entry at index ${entry.index} (term ${entry.term}, not ${first.term})`);
      }
    }
  }

  private send(from: string, to: string, message: RaftMessage): void {
    if (this.cut.has(`${from}>${to}`)) return;
    if (this.drop > 0 && this.rng.next() < this.drop) return;
    this.queue.push({ from, to, message, seq: this.seq++ });
    if (this.duplicate > 0 && this.rng.next() < this.duplicate) this.queue.push({ from, to, message, seq: this.seq++ });
  }

  /** Deliver one queued message (a random one when `reorder`), or return false when none. */
  deliverOne(reorder = false): boolean {
    if (this.queue.length === 0) return false;
    const i = reorder ? this.rng.int(this.queue.length) : 0;
    const [m] = this.queue.splice(i, 1);
    if (this.cut.has(`${m!.from}>${m!.to}`)) return true; // cut while in flight
    this.input(m!.to, m!.message);
    return true;
  }

  deliverAll(reorder = false, max = 100_000): void {
    for (let i = 0; i < max && this.deliverOne(reorder); i++);
  }

  tick(id: string): void {
    this.input(id, { type: 'Tick' });
  }

  /** One round: every live node ticks, then messages are delivered. */
  round(reorder = false): void {
    for (const id of this.ids) if (this.slot(id).state) this.tick(id);
    this.deliverAll(reorder);
  }

  /** Rounds until `pred` holds (or throw after `max`). */
  until(pred: () => boolean, max = 1_000, reorder = false): number {
    for (let r = 0; r < max; r++) {
      if (pred()) return r;
      this.round(reorder);
    }
    if (pred()) return max;
    throw new Error(`condition not reached within ${max} rounds (seed ${this.opts.seed})`);
  }

  leader(): string | undefined {
    const live = this.ids.filter((id) => this.slot(id).state?.role === 'leader');
    // several nodes may believe they lead (different terms); the one with the highest term is current
    return live.sort((a, b) => this.state(b).term - this.state(a).term)[0];
  }

  propose(id: string, value: string): RaftEffect[] {
    return this.input(id, { type: 'Propose', data: enc(value) });
  }

  /** Like a client: propose `value` to whoever leads until every live node has applied it. */
  commitEventually(value: string, maxAttempts = 50, reorder = false, among?: readonly string[]): void {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const live = (among ?? this.ids).filter((id) => this.slot(id).state);
      if (live.every((id) => this.appliedValues(id).includes(value))) return;
      const l = this.leader();
      if (l && !this.state(l).log.some((e) => dec(e.data) === value)) this.propose(l, value);
      for (let i = 0; i < 20; i++) this.round(reorder);
    }
    throw new Error(`'${value}' was not committed everywhere within ${maxAttempts} attempts (seed ${this.opts.seed})`);
  }

  appliedValues(id: string): string[] {
    return this.slot(id).applied.filter((e) => e.data.length > 0).map((e) => dec(e.data));
  }

  /** Cut links: each group talks only within itself. */
  partition(...groups: string[][]): void {
    this.cut.clear();
    for (const a of this.ids) for (const b of this.ids) {
      if (a === b) continue;
      const ga = groups.findIndex((g) => g.includes(a));
      const gb = groups.findIndex((g) => g.includes(b));
      if (ga !== gb) this.cut.add(`${a}>${b}`);
    }
  }

  cutOneWay(from: string, to: string): void {
    this.cut.add(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  crash(id: string): void {
    const slot = this.slot(id);
    slot.state = undefined;
    this.queue = this.queue.filter((m) => m.to !== id);
  }

  restart(id: string): void {
    const slot = this.slot(id);
    slot.state = initialState(slot.config, { ...slot.hard, log: [...slot.hard.log] });
    // the state machine is rebuilt from the snapshot, then by re-applying committed entries
    slot.applied = fromSnapshot(slot.hard.snapshot);
  }

  /** Raft's safety invariants; throws naming the seed when one breaks. */
  checkInvariants(): void {
    const fail = (what: string): never => {
      throw new Error(`invariant broken (seed ${this.opts.seed}, step ${this.steps}): ${what}`);
    };
    for (const id of this.ids) {
      const slot = this.slot(id);
      const s = slot.state;
      if (!s) continue;
      if (s.term < slot.maxTermSeen) fail(`${id}'s term went back from ${slot.maxTermSeen} to ${s.term}`);
      slot.maxTermSeen = s.term;
      if (s.lastApplied > s.commitIndex) fail(`${id} applied ${s.lastApplied} > commit ${s.commitIndex}`);
    }
  }
}
