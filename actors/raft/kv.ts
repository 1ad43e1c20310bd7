/**
 * A replicated key-value store on Raft: every write is a log entry applied in order on every
 * replica; reads are linearizable through ReadIndex. Clients tag each command with (client id,
 * sequence number) and replicas remember the last result per client, so a retried write — after a
 * timeout or a leader change — is applied once (the session mechanism of the Raft thesis §6.3).
 */
import type { ActorSystem } from '../../framework/index.ts';
import type { Clock } from '../../framework/clock.ts';
import { AskTimeoutError, NotLeaderError } from '../../framework/errors.ts';
import { startRaftNode, type RaftNodeHandle, type RaftNodeOptions } from './node.ts';
import type { Entry } from './types.ts';

/** A KV command (JSON in the entry's data). */
export type KvCommand =
  | { readonly op: 'put'; readonly client: string; readonly seq: number; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly client: string; readonly seq: number; readonly key: string }
  | { readonly op: 'cas'; readonly client: string; readonly seq: number; readonly key: string; readonly expected: string | null; readonly value: string };

/** Outcome of a command: `ok` false only for a cas whose expected value did not match. */
export interface KvResult {
  readonly ok: boolean;
  readonly value: string | null;
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const dec = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;

/**
 * Start a Raft node whose state machine is a new KV replica: applied entries, snapshots (every
 * `snapshotEveryEntries`, default 10,000) and restores are wired for you.
 */
export function startKvReplica(
  system: ActorSystem, options: Omit<RaftNodeOptions, 'onApply' | 'snapshots'> & { snapshotEveryEntries?: number },
): KvReplica {
  const replica = new KvReplica(system.clock);
  const { snapshotEveryEntries, ...nodeOptions } = options;
  replica.attach(startRaftNode(system, {
    ...nodeOptions,
    onApply: (entries) => replica.apply(entries),
    snapshots: { everyEntries: snapshotEveryEntries, take: () => replica.snapshot(), restore: (data, index) => replica.restore(data, index) },
  }));
  return replica;
}

interface KvSnapshot {
  data: Array<[string, string]>;
  sessions: Array<[string, { seq: number; result: KvResult }]>;
}

/** One replica: the state machine fed by a Raft node's applied entries, and its local client surface. */
export class KvReplica {
  private data = new Map<string, string>();
  private sessions = new Map<string, { seq: number; result: KvResult }>();
  private readonly waiting = new Map<string, (r: KvResult) => void>();
  private readonly appliedWaiters: Array<{ index: number; resolve(): void }> = [];
  private appliedIndex = 0;
  private attached: RaftNodeHandle | undefined;
  private restoredCount = 0;

  /** A replica fed by a node attached later (`startKvReplica` does both). */
  constructor(private readonly clock: Clock) {}

  /** The Raft node whose log feeds this replica. */
  get node(): RaftNodeHandle {
    if (!this.attached) throw new TypeError('KvReplica: no Raft node attached yet');
    return this.attached;
  }

  attach(node: RaftNodeHandle): void {
    this.attached = node;
  }

  /** The replicated state (values and client sessions) for a Raft snapshot. */
  snapshot(): Uint8Array {
    const snap: KvSnapshot = { data: [...this.data], sessions: [...this.sessions] };
    return enc(snap);
  }

  /** Snapshots restored into this replica (at start and installed by a leader). */
  get restored(): number {
    return this.restoredCount;
  }

  /** Replace the replicated state with a snapshot taken at `index`. */
  restore(bytes: Uint8Array, index: number): void {
    this.restoredCount++;
    const snap = dec<KvSnapshot>(bytes);
    this.data = new Map(snap.data);
    this.sessions = new Map(snap.sessions);
    this.appliedIndex = index;
    this.wakeReaders();
  }

  /** Wire this to the node's `onApply`. */
  apply(entries: readonly Entry[]): void {
    for (const e of entries) {
      this.appliedIndex = e.index;
      if (e.data.length === 0) continue;
      const cmd = dec<KvCommand>(e.data);
      const session = this.sessions.get(cmd.client);
      let result: KvResult;
      if (session && cmd.seq <= session.seq) {
        result = session.result; // a retry of an applied command: applied once, same answer
      } else {
        result = this.execute(cmd);
        this.sessions.set(cmd.client, { seq: cmd.seq, result });
      }
      const key = `${cmd.client}#${cmd.seq}`;
      this.waiting.get(key)?.(result);
      this.waiting.delete(key);
    }
    this.wakeReaders();
  }

  private wakeReaders(): void {
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      if (this.appliedWaiters[i]!.index <= this.appliedIndex) this.appliedWaiters.splice(i, 1)[0]!.resolve();
    }
  }

  private execute(cmd: KvCommand): KvResult {
    const current = this.data.get(cmd.key) ?? null;
    switch (cmd.op) {
      case 'put':
        this.data.set(cmd.key, cmd.value);
        return { ok: true, value: cmd.value };
      case 'delete':
        this.data.delete(cmd.key);
        return { ok: true, value: null };
      case 'cas':
        if (current !== cmd.expected) return { ok: false, value: current };
        this.data.set(cmd.key, cmd.value);
        return { ok: true, value: cmd.value };
    }
  }

  /** Propose `cmd` here; resolves when this replica applies it. Rejects with `NotLeaderError` or `AskTimeoutError`. */
  submit(cmd: KvCommand, timeoutMs: number): Promise<KvResult> {
    if (this.node.role() !== 'leader') return Promise.reject(new NotLeaderError(this.node.id, this.node.leader()));
    const key = `${cmd.client}#${cmd.seq}`;
    return new Promise<KvResult>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        if (this.waiting.get(key) === done) this.waiting.delete(key);
        reject(new AskTimeoutError(this.node.id, timeoutMs, cmd.op));
      }, timeoutMs);
      const done = (r: KvResult): void => {
        this.clock.clearTimeout(timer);
        resolve(r);
      };
      this.waiting.set(key, done);
      this.node.propose(enc(cmd));
    });
  }

  /** A linearizable read: ReadIndex, then wait until this replica has applied that far. */
  read(key: string, timeoutMs: number): Promise<string | null> {
    return new Promise<string | null>((resolve, reject) => {
      let settled = false;
      const timer = this.clock.setTimeout(() => {
        settled = true;
        reject(new AskTimeoutError(this.node.id, timeoutMs, 'read'));
      }, timeoutMs);
      const finish = (): void => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(timer);
        resolve(this.data.get(key) ?? null);
      };
      this.node.readIndex().then(
        (index) => {
          if (this.appliedIndex >= index) finish();
          else this.appliedWaiters.push({ index, resolve: finish });
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          this.clock.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}

/** A client that finds the leader, retries, and de-duplicates its writes by (client id, sequence). */
export class KvClient {
  private seq = 0;
  private guess = 0;

  constructor(
    readonly id: string,
    private readonly replicas: readonly KvReplica[],
    private readonly options: { attemptTimeoutMs: number; attempts: number; clock: Clock },
  ) {}

  /** Bound an attempt on the client's own clock (the replica's may stop: a crashed node's timers never fire). */
  private bounded<T>(p: Promise<T>, replica: KvReplica): Promise<T> {
    const { clock, attemptTimeoutMs } = this.options;
    return new Promise<T>((resolve, reject) => {
      const timer = clock.setTimeout(() => reject(new AskTimeoutError(replica.node.id, attemptTimeoutMs)), attemptTimeoutMs);
      p.then(
        (v) => { clock.clearTimeout(timer); resolve(v); },
        (e: unknown) => { clock.clearTimeout(timer); reject(e); },
      );
    });
  }

  /**
   * Try replicas until one answers. Rejects with `NotLeaderError` only when every attempt was
   * refused outright (the command certainly did not happen); otherwise with the last timeout
   * (it may have happened).
   */
  private async withLeader<T>(attempt: (r: KvReplica) => Promise<T>): Promise<T> {
    let last: unknown;
    let uncertain: unknown;
    for (let i = 0; i < this.options.attempts; i++) {
      const replica = this.replicas[this.guess % this.replicas.length]!;
      try {
        return await this.bounded(attempt(replica), replica);
      } catch (err) {
        last = err;
        if (!(err instanceof NotLeaderError)) uncertain = err;
        const hint = err instanceof NotLeaderError ? this.replicas.findIndex((r) => r.node.id === err.leader) : -1;
        this.guess = hint >= 0 ? hint : this.guess + 1;
      }
    }
    throw uncertain ?? last;
  }

  /** Resolves when applied; rejects when no attempt got an answer (the write may still happen: indeterminate). */
  command(cmd: KvCommand extends infer C ? (C extends KvCommand ? Omit<C, 'client' | 'seq'> : never) : never): Promise<KvResult> {
    const full = { ...cmd, client: this.id, seq: ++this.seq } as KvCommand;
    return this.withLeader((r) => r.submit(full, this.options.attemptTimeoutMs));
  }

  get(key: string): Promise<string | null> {
    return this.withLeader((r) => r.read(key, this.options.attemptTimeoutMs));
  }
}
