/**
 * The replicated KV over the wire: a KV service actor in front of each replica answers `KvPut` and
 * `KvGet` asks (from any node, over NATS or the simulator), and `RemoteKvClient` finds the leader,
 * retries with the same (client, seq) — so a retried write is applied once — and follows
 * `NotLeaderError` hints.
 */
import { emit, setup } from 'xstate';
import { defineActor, isTroupeError, NotLeaderError, originOf, TroupeError, type ActorSystem, type Origin } from '../../framework/index.ts';
import { messages, type KvValue, type Message } from './kv.pb.ts';
import type { KvReplica } from './kv.ts';

/** The service's chart: it hands every request to its host, which answers when Raft has. */
export const kvServiceMachine = setup({
  types: { events: {} as Message, emitted: {} as { type: 'kv.request'; origin: Origin | undefined; request: Message } },
}).createMachine({
  id: 'kvService',
  on: {
    KvPut: { actions: emit(({ event }) => ({ type: 'kv.request' as const, origin: originOf(event), request: event })) },
    KvGet: { actions: emit(({ event }) => ({ type: 'kv.request' as const, origin: originOf(event), request: event })) },
  },
});

export const KvService = defineActor({ type: 'kv-service', machine: kvServiceMachine, messages });

/** Spawn the KV service for `replica` on `system` (name default 'kv'). */
export function startKvService(system: ActorSystem, replica: () => KvReplica, options: { name?: string; timeoutMs?: number } = {}): void {
  const timeoutMs = options.timeoutMs ?? 2_000;
  system.spawn(KvService, {
    name: options.name ?? 'kv',
    onEffect: (effect, self) => {
      const { origin, request } = effect as { type: string; origin: Origin | undefined; request: Message };
      if (!origin) return;
      const fail = (err: unknown): void => system.reply(origin, isTroupeError(err) ? err : new NotLeaderError(self.address, undefined), self);
      if (request.type === 'KvPut') {
        replica().submit({ op: 'put', client: request.client, seq: request.seq, key: request.key, value: request.value }, timeoutMs).then(
          () => system.reply(origin, { type: 'KvAck', seq: request.seq }, self),
          fail,
        );
      } else if (request.type === 'KvGet') {
        replica().read(request.key, timeoutMs).then(
          (value) => system.reply(origin, { type: 'KvValue', found: value !== null, value: value ?? '' }, self),
          fail,
        );
      }
    },
  });
}

/** A client of KV services at `services` (addresses); the service of node `n` is `n/<name>`. */
export class RemoteKvClient {
  private seq = 0;
  private guess = 0;
  /** Address of the service that answered last (the leader's, as far as this client knows). */
  lastLeader: string | undefined;

  constructor(
    private readonly system: ActorSystem,
    readonly id: string,
    private readonly services: readonly string[],
    private readonly options: { attemptTimeoutMs: number; attempts: number; /** Pause after a refusal without a leader hint (an election is on). @default 20 */ backoffMs?: number },
  ) {}

  private async withLeader<T>(call: (address: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.options.attempts; i++) {
      const address = this.services[this.guess % this.services.length]!;
      try {
        const r = await call(address);
        this.lastLeader = address;
        return r;
      } catch (err) {
        last = err;
        // a hint names the leader's Raft node (`node/raft`): its service is on the same node
        const hintNode = err instanceof NotLeaderError && err.leader ? err.leader.slice(0, err.leader.indexOf('/')) : undefined;
        const hinted = hintNode ? this.services.findIndex((s) => s.startsWith(`${hintNode}/`)) : -1;
        this.guess = hinted >= 0 && hinted !== this.guess % this.services.length ? hinted : this.guess + 1;
        if (hinted < 0) {
          // no leader known (an election is on, or that node is gone): give it a moment
          await new Promise<void>((resolve) => this.system.clock.setTimeout(resolve, this.options.backoffMs ?? 20));
        }
      }
    }
    throw last instanceof TroupeError ? last : new Error(String(last));
  }

  /** Resolves once committed; rejects when no attempt got an answer (the write may still happen). */
  put(key: string, value: string): Promise<void> {
    const seq = ++this.seq;
    return this.withLeader(async (address) => {
      await this.system.ask(address, { type: 'KvPut', client: this.id, seq, key, value }, { timeoutMs: this.options.attemptTimeoutMs });
    });
  }

  get(key: string): Promise<string | null> {
    return this.withLeader(async (address) => {
      const v = await this.system.ask<KvValue>(address, { type: 'KvGet', key }, { timeoutMs: this.options.attemptTimeoutMs });
      return v.found ? v.value : null;
    });
  }
}
