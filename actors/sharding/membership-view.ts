/**
 * What sharding needs of cluster membership — the shapes of `framework/membership/membership.ts`
 * (declared here so this pattern builds before that module lands; the real `Membership` satisfies
 * `MembershipView` structurally).
 */

export type MemberStatus = 'joining' | 'up' | 'suspect' | 'down' | 'left';

export interface Member {
  readonly node: string;
  readonly status: MemberStatus;
  readonly roles: readonly string[];
  readonly upSinceMs?: number;
}

export type MembershipEvent = { readonly type: 'member.changed'; readonly member: Member; readonly previous: MemberStatus | undefined };

/** A node's view of the cluster: who is in it, and a stream of changes. */
export interface MembershipView {
  /** This node's name. */
  readonly self: string;
  members(): readonly Member[];
  /** Returns the unsubscribe function. */
  subscribe(listener: (e: MembershipEvent) => void): () => void;
}
