/**
 * A membership driven by hand, for tests: one cluster-wide member list and one view per node.
 * Changes reach every attached view at once (as if gossip were instantaneous), unless a view is
 * detached — a crashed node's view stops hearing anything. Its views are the real
 * `MembershipView` of `framework/membership/membership.ts`, so `joinCluster` replaces it unchanged.
 */
import type { Member, MemberStatus, MembershipEvent, MembershipView } from '../../framework/membership/membership.ts';

export interface ManualView extends MembershipView {
  /** Stop notifying this view's subscribers (its node crashed). */
  detach(): void;
  /** Freeze this view: it keeps the current member list and queues changes (slow gossip). */
  lag(): void;
  /** Apply the queued changes, in order, and follow the cluster again. */
  catchUp(): void;
}

export interface ManualMembership {
  /** The view of `node` (created on first call, and again after `detach()`: a restarted node's). */
  view(node: string): ManualView;
  /** Add a member (default status `up`), or change its status when present. */
  add(node: string, status?: MemberStatus, roles?: readonly string[]): void;
  setStatus(node: string, status: MemberStatus): void;
  suspect(node: string): void;
  down(node: string): void;
  /** Drop a member from the list altogether. */
  remove(node: string): void;
  members(): readonly Member[];
}

export function createManualMembership(initial: readonly string[] = [], nowMs: () => number = () => 0): ManualMembership {
  const members = new Map<string, Member>();
  interface ViewState {
    listeners: Set<(e: MembershipEvent) => void>;
    attached: boolean;
    frozen: readonly Member[] | undefined;
    queue: MembershipEvent[];
    view: ManualView;
  }
  const views = new Map<string, ViewState>();
  const publish = (member: Member, previous: MemberStatus | undefined): void => {
    const e: MembershipEvent = { type: 'member.changed', member, previous };
    for (const v of views.values()) {
      if (!v.attached) continue;
      if (v.frozen) v.queue.push(e);
      else for (const l of [...v.listeners]) l(e);
    }
  };
  const setStatus = (node: string, status: MemberStatus, roles?: readonly string[]): void => {
    const prev = members.get(node);
    const m: Member = {
      node, status, roles: roles ?? prev?.roles ?? [],
      ...(status === 'up' ? { upSinceMs: prev?.status === 'up' ? prev.upSinceMs ?? nowMs() : nowMs() } : {}),
    };
    members.set(node, m);
    publish(m, prev?.status);
  };
  for (const n of initial) members.set(n, { node: n, status: 'up', roles: [], upSinceMs: nowMs() });
  const list = (): readonly Member[] => [...members.values()];
  return {
    view(node) {
      let v = views.get(node);
      if (!v || !v.attached) {
        const listeners = new Set<(e: MembershipEvent) => void>();
        const entry: ViewState = {
          listeners, attached: true, frozen: undefined, queue: [],
          view: {
            self: node,
            members: () => entry.frozen ?? list(),
            subscribe(l: (e: MembershipEvent) => void) {
              listeners.add(l);
              return () => listeners.delete(l);
            },
            detach() { entry.attached = false; },
            lag() { entry.frozen ??= list(); },
            catchUp() {
              // Replay one change at a time, so the view's list matches each event as it is delivered.
              const queue = entry.queue;
              entry.queue = [];
              const current = new Map((entry.frozen ?? []).map((m) => [m.node, m]));
              entry.frozen = undefined;
              for (const e of queue) {
                current.set(e.member.node, e.member);
                entry.frozen = [...current.values()];
                for (const l of [...listeners]) l(e);
              }
              entry.frozen = undefined;
              if (queue.length > 0) for (const l of [...listeners]) l(queue.at(-1)!);
            },
          },
        };
        v = entry;
        views.set(node, v);
      }
      return v.view;
    },
    add: (node, status = 'up', roles) => setStatus(node, status, roles),
    setStatus: (node, status) => setStatus(node, status),
    suspect: (node) => setStatus(node, 'suspect'),
    down: (node) => setStatus(node, 'down'),
    remove(node) {
      const prev = members.get(node);
      if (!prev) return;
      members.delete(node);
      publish({ ...prev, status: 'left' }, prev.status);
    },
    members: list,
  };
}
