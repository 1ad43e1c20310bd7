/**
 * Cluster-wide circuit breakers: breakers with the same name on different nodes share their state
 * through a KV store (NATS JetStream KV in production, any `KvStore` in tests and the simulator).
 *
 * - When one node's breaker opens (by its own rules), it writes `open` with its `retryAtMs`; every
 *   other node watching the key opens too, within the store's watch delay.
 * - When the open period ends, only ONE node probes: the half-open trial is owned through a KV
 *   `create` (compare-and-set) of a trial key with a TTL. The others stay open until the owner
 *   writes the outcome (closed → everyone closes; open → everyone waits again).
 * - Optional quorum: open cluster-wide only when at least `quorum.nodes` nodes report the dependency
 *   failing within `quorum.windowMs` (a single node with a bad network path cannot open everyone's
 *   circuit). Each node still opens its own breaker on its own evidence.
 * - The store is never on the call path: calls only read the local breaker. When the store is
 *   unreachable the breaker degrades to local-only (and says so through `on('mode')`), and rejoins
 *   when the store answers again.
 */
import type { Clock } from '../../framework/clock.ts';
import { KvConflictError } from '../../framework/errors.ts';
import type { KvStore, KvWatch } from '../../framework/store/store.ts';
import type { CircuitBreaker } from './breaker.ts';
import { BreakerState } from './machine.ts';

export interface ShareOptions {
  store: KvStore;
  /** This node's name (who wrote what). */
  node: string;
  clock: Clock;
  /** Key prefix. @default `breakers.<breaker name>` */
  key?: string;
  /** Open cluster-wide only when this many nodes report failing within the window. */
  quorum?: { nodes: number; windowMs: number };
  /** Trial ownership lease: if the owner dies mid-trial, another node may probe after this. @default 30_000 */
  trialLeaseMs?: number;
  /** While local-only, retry the store this often. @default 1_000 */
  reconnectMs?: number;
}

/** What is stored under `<key>.state`. */
interface SharedState {
  state: 'open' | 'closed';
  retryAtMs: number;
  reason: string;
  by: string;
}

export type ShareMode = 'shared' | 'local-only';

export interface SharedBreaker {
  readonly mode: ShareMode;
  on(event: 'mode', listener: (e: { mode: ShareMode; reason: string }) => void): () => void;
  /** Resolves when the watch is established (or the store was found unreachable). */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const dec = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;
const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Share `breaker` across the cluster.
 * @example
 * const store = await createNatsKvStore({ servers, bucket: 'breakers' });
 * const shared = shareBreaker(breaker, { store, node: system.node, clock: system.clock });
 */
export function shareBreaker(breaker: CircuitBreaker, options: ShareOptions): SharedBreaker {
  const { store, node, clock } = options;
  const prefix = options.key ?? `breakers.${breaker.name}`;
  const stateKey = `${prefix}.state`;
  const trialKey = `${prefix}.trial`;
  const reportPrefix = `${prefix}.reports`;
  const trialLeaseMs = options.trialLeaseMs ?? 30_000;
  const reconnectMs = options.reconnectMs ?? 1_000;
  if (options.quorum && (!Number.isInteger(options.quorum.nodes) || options.quorum.nodes < 1)) {
    throw new RangeError(`shareBreaker option quorum.nodes must be an integer ≥ 1, got ${JSON.stringify(options.quorum.nodes)}`);
  }
  let mode: ShareMode = 'shared';
  let stopped = false;
  let applyingRemote = false;
  let watches: KvWatch[] = [];
  let reconnectTimer: unknown;
  const modeListeners = new Set<(e: { mode: ShareMode; reason: string }) => void>();
  const reports = new Map<string, number>(); // node → time it reported failing
  /** True while this node owns the current half-open trial. */
  let ownsTrial = false;
  // Admit a half-open trial only once the KV says this node owns it (or the store is out of reach).
  breaker.setTrialGate(() => ownsTrial || mode === 'local-only');

  const setMode = (next: ShareMode, reason: string): void => {
    if (mode === next) return;
    mode = next;
    for (const l of modeListeners) l({ mode, reason });
    if (next === 'local-only' && !stopped) scheduleReconnect();
  };

  /** Store calls never reach the caller: a failure switches to local-only. */
  const attempt = (what: string, op: () => Promise<unknown>): Promise<void> =>
    op().then(
      () => setMode('shared', `${what} succeeded`),
      (err: unknown) => {
        if (err instanceof KvConflictError) return;
        setMode('local-only', `${what} failed: ${describe(err)}`);
      },
    );

  /** The last state this node wanted to share but could not (the store was unreachable); sent on rejoin. */
  let unsent: SharedState | undefined;
  const publish = (s: SharedState): Promise<void> => {
    unsent = s;
    return attempt(`write ${stateKey}`, async () => {
      await store.put(stateKey, enc(s));
      if (unsent === s) unsent = undefined;
    });
  };

  const quorumReached = (): boolean => {
    if (!options.quorum) return true;
    const since = clock.now() - options.quorum.windowMs;
    let n = 0;
    for (const at of reports.values()) if (at >= since) n++;
    return n >= options.quorum.nodes;
  };

  const onRemoteState = (s: SharedState): void => {
    if (s.by === node) return;
    applyingRemote = true;
    try {
      if (s.state === 'open' && breaker.state !== BreakerState.Open && breaker.state !== BreakerState.Isolated && breaker.state !== BreakerState.Disabled) {
        breaker.applyRemote({ state: 'open', retryAtMs: s.retryAtMs, reason: `${s.by}: ${s.reason}` });
      } else if (s.state === 'closed' && (breaker.state === BreakerState.Open || breaker.state === BreakerState.HalfOpen)) {
        breaker.applyRemote({ state: 'closed' });
      }
    } finally {
      applyingRemote = false;
    }
  };

  const offStateChange = breaker.on('stateChange', (e) => {
    if (e.from === BreakerState.HalfOpen) ownsTrial = false;
    if (applyingRemote || stopped) return;
    const retryAtMs = breaker.snapshot().context.retryAtMs;
    if (e.to === BreakerState.Open) {
      if (options.quorum) {
        reports.set(node, clock.now());
        void attempt('report', () => store.put(`${reportPrefix}.${node}`, enc({ atMs: clock.now(), reason: e.reason })));
        if (!quorumReached()) return;
      }
      void publish({ state: 'open', retryAtMs, reason: e.reason, by: node });
      void attempt('release trial', () => store.delete(trialKey));
    } else if (e.to === BreakerState.Closed && e.from === BreakerState.HalfOpen) {
      reports.delete(node);
      if (options.quorum) void attempt('clear report', () => store.delete(`${reportPrefix}.${node}`));
      void publish({ state: 'closed', retryAtMs: 0, reason: e.reason, by: node });
      void attempt('release trial', () => store.delete(trialKey));
    } else if (e.to === BreakerState.HalfOpen && mode === 'shared') {
      // one node probes: the one whose create() wins; the others keep waiting
      store.create(trialKey, enc({ node, atMs: clock.now() }), { ttlMs: trialLeaseMs }).then(
        () => {
          ownsTrial = breaker.state === BreakerState.HalfOpen;
          setMode('shared', 'trial ownership taken');
        },
        (err: unknown) => {
          if (err instanceof KvConflictError) {
            if (breaker.state !== BreakerState.HalfOpen) return;
            applyingRemote = true;
            try {
              breaker.applyRemote({ state: 'open', retryAtMs: clock.now() + trialLeaseMs, reason: 'another node is probing' });
            } finally {
              applyingRemote = false;
            }
          } else {
            setMode('local-only', `taking trial ownership failed: ${describe(err)}`);
          }
        },
      );
    }
  });

  const startWatching = async (): Promise<void> => {
    const w1 = await store.watch(stateKey, (entry) => {
      if (entry.operation === 'put') onRemoteState(dec<SharedState>(entry.value));
    }, { onError: (err) => setMode('local-only', `watch failed: ${err.message}`) });
    watches.push(w1);
    if (options.quorum) {
      const w2 = await store.watch(`${reportPrefix}.>`, (entry) => {
        const reporter = entry.key.slice(reportPrefix.length + 1);
        if (entry.operation === 'delete') reports.delete(reporter);
        else reports.set(reporter, dec<{ atMs: number }>(entry.value).atMs);
        if (reporter !== node && breaker.state === BreakerState.Open && quorumReached()) {
          void publish({ state: 'open', retryAtMs: breaker.snapshot().context.retryAtMs, reason: `${options.quorum!.nodes} nodes report failing`, by: node });
        }
      });
      watches.push(w2);
    }
  };

  const scheduleReconnect = (): void => {
    if (reconnectTimer !== undefined) return;
    reconnectTimer = clock.setTimeout(() => {
      reconnectTimer = undefined;
      if (stopped) return;
      for (const w of watches) w.stop();
      watches = [];
      startWatching().then(
        () => {
          setMode('shared', 'store reachable again');
          // what happened here while cut off is still news for the others
          if (unsent && breaker.state === (unsent.state === 'open' ? BreakerState.Open : BreakerState.Closed)) void publish(unsent);
          else unsent = undefined;
        },
        (err: unknown) => {
          mode = 'local-only';
          scheduleReconnect();
          void err;
        },
      );
    }, reconnectMs);
  };

  const ready = startWatching().catch((err: unknown) => setMode('local-only', `watch failed: ${describe(err)}`));

  return {
    get mode() { return mode; },
    ready,
    on(_event, listener) {
      modeListeners.add(listener);
      return () => modeListeners.delete(listener);
    },
    async stop() {
      stopped = true;
      breaker.setTrialGate(undefined);
      offStateChange();
      if (reconnectTimer !== undefined) clock.clearTimeout(reconnectTimer);
      for (const w of watches) w.stop();
      watches = [];
    },
  };
}
