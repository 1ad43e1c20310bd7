/**
 * troupe — distributed-systems patterns as XState v5 state charts in supervised actors that
 * message each other over NATS (or an in-process bus with the same semantics).
 *
 * @example
 * import { createSystem, defineActor, reply } from 'troupe';
 * import { messages } from './pingpong.pb.ts';
 * const Ponger = defineActor({ type: 'ponger', machine: pongerMachine, messages });
 * await using system = createSystem({ cluster: 'demo', node: 'n1' });
 * const ponger = system.spawn(Ponger, { name: 'ponger' });
 * const pong = await system.ask(ponger, { type: 'Ping', n: 1 });
 */
export { createSystem } from './system.ts';
export { defineActor, defineSupervisor, tell, reply, replyTo, watch, unwatch, askLogic, hostActors } from './actor.ts';
export { originOf, addressOf } from './ref.ts';
export { defineMessages } from './codec/messages.ts';
export { Directive, Strategy, decide, resolvePolicy } from './supervision.ts';
export { realClock, simulatedClock, createRng, entropySeed } from './clock.ts';
export { createLogger, silentLogger } from './log.ts';
export { createMemoryBus } from './transport/memory.ts';
export { connectNats } from './transport/nats.ts';
export { withFaults } from './transport/faults.ts';
export { DeadLetterReason } from './dead-letters.ts';
export { createMemoryKvStore } from './store/memory.ts';
export { createNatsKvStore } from './store/nats-kv.ts';
export { createInspectionPublisher } from './inspector/publisher.ts';
export { startInspectorServer } from './inspector/server.ts';
export { machineGraph, activeStates } from './inspector/graph.ts';
export { toMermaid, renderSvg } from './inspector/diagram.ts';
export { joinCluster } from './membership/membership.ts';
export { createReceptionist } from './membership/receptionist.ts';
export { createPhiAccrual } from './membership/phi-accrual.ts';
export * from './errors.ts';

export type { ActorSystem, SpawnOptions, AskOptions, AskPolicy } from './system.ts';
export type {
  ActorDefinition, SupervisorDefinition, ChildSpec, AnyDefinition, TerminatedEvent, Effect, AskInput, MessagesOfDefinition,
} from './actor.ts';
export type { ActorRef, Address, Origin, RefLike } from './ref.ts';
export type { MessageObject, MessageSet, MessagesOf } from './codec/messages.ts';
export type { SupervisionOptions, SupervisionPolicy, BackoffOptions, Decision, RestartStats } from './supervision.ts';
export type { Clock, ManualClock, Rng } from './clock.ts';
export type { Logger, LoggerOptions, LogLevel } from './log.ts';
export type { Transport, TransportMsg, Subscription, TransportStatus, TransportEvent } from './transport/transport.ts';
export type { MemoryBus } from './transport/memory.ts';
export type { NatsTransportOptions } from './transport/nats.ts';
export type { FaultyTransport } from './transport/faults.ts';
export type { SystemOptions } from './options.ts';
export type { DeadLetter, DeadLetters } from './dead-letters.ts';
export type { InspectionEvent, InspectionSink, WireEvent, PublisherStats, RunningTimer } from './inspector/events.ts';
export type { InspectionPublisher, InspectionPublisherOptions, SanitizeTarget } from './inspector/publisher.ts';
export type { InspectorServer, InspectorServerOptions, InspectorServerStats } from './inspector/server.ts';
export type { ChartGraph, ChartState, ChartTransition, ChartTrigger, ChartStateType } from './inspector/graph.ts';
export type { SvgOptions } from './inspector/diagram.ts';
export type { KvStore, KvEntry, KvWatch } from './store/store.ts';
export type { MemoryKvStore } from './store/memory.ts';
export type { NatsKvStoreOptions } from './store/nats-kv.ts';
export type { Member, MemberStatus, MembershipEvent, Membership, MembershipOptions, MembershipView } from './membership/membership.ts';
export type { Receptionist, ReceptionistOptions, Listing } from './membership/receptionist.ts';
export type { PhiAccrualDetector, PhiAccrualOptions } from './membership/phi-accrual.ts';
