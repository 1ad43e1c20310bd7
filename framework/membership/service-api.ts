/**
 * The NATS service API (the "micro" protocol, ADR-32) for a troupe node, so standard tooling
 * (`nats micro ls`, `nats micro info troupe`) sees each node as an instance of the `troupe` service.
 * Its payloads are JSON because the protocol says so.
 */
import type { Subscription, Transport, TransportMsg } from '../transport/transport.ts';
import type { MembershipStats } from './membership.ts';

/** The service name troupe nodes answer to. */
export const SERVICE_NAME = 'troupe';
/** Semver the protocol requires; the wire protocol of membership, not the package version. */
export const SERVICE_VERSION = '0.1.0';

/** What one node tells the service API. */
export interface ServiceApiInfo {
  readonly node: string;
  readonly cluster: string;
  readonly roles: readonly string[];
  /** When the node joined, on its clock (ms since the epoch on a real clock). */
  readonly startedMs: number;
  stats(): MembershipStats;
}

const VERBS = ['PING', 'INFO', 'STATS'] as const;

/** Subscribe the node to `$SRV.<verb>`, `$SRV.<verb>.troupe` and `$SRV.<verb>.troupe.<node>`. */
export function answerServiceApi(transport: Transport, info: ServiceApiInfo): Subscription[] {
  const startedIso = new Date(info.startedMs).toISOString();
  const base = {
    name: SERVICE_NAME,
    id: info.node,
    version: SERVICE_VERSION,
    metadata: { cluster: info.cluster, roles: info.roles.join(',') },
  };
  const body = (verb: (typeof VERBS)[number]): object => {
    switch (verb) {
      case 'PING': return { type: 'io.nats.micro.v1.ping_response', ...base };
      case 'INFO': return { type: 'io.nats.micro.v1.info_response', ...base, description: `troupe node ${info.node} of cluster ${info.cluster}`, endpoints: [] };
      case 'STATS': return { type: 'io.nats.micro.v1.stats_response', ...base, started: startedIso, endpoints: [], data: info.stats() };
    }
  };
  const subs: Subscription[] = [];
  const encoder = new TextEncoder();
  for (const verb of VERBS) {
    const handler = (m: TransportMsg): void => {
      m.respond(encoder.encode(JSON.stringify(body(verb))));
    };
    for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${SERVICE_NAME}`, `$SRV.${verb}.${SERVICE_NAME}.${info.node}`]) {
      subs.push(transport.subscribe(subject, handler));
    }
  }
  return subs;
}
