/**
 * Machine → graph: an XState v5 machine's state nodes and transitions as plain, serializable data
 * (what the inspection stream sends with `actor.spawned`, what the diagram export and the web UI
 * draw). Pure: reads `machine.root`, never starts the machine.
 *
 * States are named by their path from the root, dot-joined (`''` is the root, `role.leader` a
 * nested state); `activeStates(graph, snapshot.value)` maps a snapshot onto those names.
 */

/** Version of the graph format, carried in `ChartGraph.v`. */
export const CHART_GRAPH_VERSION = 1;

/** The kind of a state node, as XState names it. */
export type ChartStateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

/** One state node. */
export interface ChartState {
  /** Dot-joined path from the root (`''` for the root itself). Unique in the graph. */
  readonly path: string;
  /** The state's key in its parent (the machine id for the root). */
  readonly key: string;
  readonly type: ChartStateType;
  /** Path of the initial child (compound states). */
  readonly initial?: string;
  readonly children: readonly ChartState[];
  /** Names of entry / exit actions (`inline` for anonymous functions). */
  readonly entry: readonly string[];
  readonly exit: readonly string[];
  readonly tags: readonly string[];
  readonly description?: string;
}

/** What makes a transition fire. */
export type ChartTrigger =
  | { readonly kind: 'event'; readonly event: string }
  /** An `after` delay: a number of ms, or a named delay (`delayMs` when that name resolves to a constant). */
  | { readonly kind: 'after'; readonly delay: number | string; readonly delayMs?: number }
  /** An eventless (`always`) transition. */
  | { readonly kind: 'always' };

/** One transition (one candidate of an event's transition list, in XState's order). */
export interface ChartTransition {
  /** `source#index`, stable for a given machine definition. */
  readonly id: string;
  /** Path of the state that declares it. */
  readonly source: string;
  /** Paths of its targets; empty for a targetless (actions-only) transition. */
  readonly targets: readonly string[];
  readonly trigger: ChartTrigger;
  /** Guard name; `inline` for an anonymous guard function. */
  readonly guard?: string;
  readonly actions: readonly string[];
  readonly reenter: boolean;
}

/** A machine as a graph. */
export interface ChartGraph {
  readonly v: typeof CHART_GRAPH_VERSION;
  /** The machine's id. */
  readonly id: string;
  readonly root: ChartState;
  readonly transitions: readonly ChartTransition[];
}

// The slice of XState's StateNode this module reads (structural, so any v5 machine fits).
interface XStateNode {
  readonly key: string;
  readonly type: ChartStateType;
  readonly path: readonly string[];
  readonly states: Record<string, XStateNode>;
  readonly initial?: { readonly target: readonly XStateNode[] };
  readonly transitions: Map<string, readonly XTransition[]>;
  readonly after: readonly (XTransition & { delay: number | string })[];
  readonly always?: readonly XTransition[];
  readonly entry: readonly unknown[];
  readonly exit: readonly unknown[];
  readonly tags: readonly string[];
  readonly description?: string;
}
interface XTransition {
  readonly eventType: string;
  readonly target?: readonly XStateNode[];
  readonly guard?: unknown;
  readonly actions: readonly unknown[];
  readonly reenter: boolean;
}
/** What `machineGraph` needs of a machine: an XState v5 `StateMachine`. */
export interface MachineLike {
  readonly id: string;
  readonly root: unknown;
  readonly implementations?: { readonly delays?: Record<string, unknown> };
}

/** True when `value` looks like an XState v5 machine (has `root` state node and `id`). */
export function isMachineLike(value: unknown): value is MachineLike {
  if (typeof value !== 'object' || value === null) return false;
  const root = (value as { root?: { states?: unknown; transitions?: unknown } }).root;
  return typeof (value as { id?: unknown }).id === 'string' && typeof root === 'object' && root !== null
    && typeof root.states === 'object' && root.transitions instanceof Map;
}

function nameOf(fnOrObj: unknown): string {
  if (typeof fnOrObj === 'string') return fnOrObj;
  if (typeof fnOrObj === 'function') {
    const n = (fnOrObj as { name?: string }).name;
    // xstate's built-ins (assign, raise, emit…) keep their names; arrow functions assigned to a
    // `guard:` or `actions:` property take the property's name, which says nothing
    return n && n !== 'guard' && n !== 'actions' && n !== 'anonymous' ? n : 'inline';
  }
  if (typeof fnOrObj === 'object' && fnOrObj !== null && typeof (fnOrObj as { type?: unknown }).type === 'string') {
    return (fnOrObj as { type: string }).type;
  }
  return 'inline';
}

/**
 * The graph of an XState v5 machine.
 * @example
 * const g = machineGraph(breakerMachine);
 * g.transitions.find((t) => t.trigger.kind === 'after'); // open → halfOpen after openRemaining
 */
export function machineGraph(machine: MachineLike): ChartGraph {
  const transitions: ChartTransition[] = [];
  const delays = machine.implementations?.delays ?? {};
  const pathOf = (n: XStateNode): string => n.path.join('.');

  const visit = (node: XStateNode): ChartState => {
    const source = pathOf(node);
    const afterByEvent = new Map(node.after.map((a) => [a.eventType, a.delay] as const));
    const add = (t: XTransition, trigger: ChartTrigger): void => {
      const guard = t.guard === undefined ? undefined : nameOf(t.guard);
      transitions.push({
        id: `${source}#${transitions.filter((x) => x.source === source).length}`,
        source,
        targets: (t.target ?? []).map(pathOf),
        trigger,
        ...(guard !== undefined ? { guard } : {}),
        actions: t.actions.map(nameOf),
        reenter: t.reenter,
      });
    };
    for (const [eventType, list] of node.transitions) {
      const delay = afterByEvent.get(eventType);
      for (const t of list) {
        if (delay === undefined) {
          add(t, { kind: 'event', event: eventType });
        } else {
          const named = typeof delay === 'string' ? delays[delay] : undefined;
          const delayMs = typeof delay === 'number' ? delay : typeof named === 'number' ? named : undefined;
          add(t, { kind: 'after', delay, ...(delayMs !== undefined ? { delayMs } : {}) });
        }
      }
    }
    for (const t of node.always ?? []) add(t, { kind: 'always' });
    const children = Object.values(node.states).map(visit);
    const initial = node.type === 'compound' ? node.initial?.target[0] : undefined;
    return {
      path: source,
      key: node.path.length === 0 ? machine.id : node.key,
      type: node.type,
      ...(initial ? { initial: pathOf(initial) } : {}),
      children,
      entry: node.entry.map(nameOf),
      exit: node.exit.map(nameOf),
      tags: [...node.tags],
      ...(node.description ? { description: node.description } : {}),
    };
  };
  const root = visit(machine.root as XStateNode);
  return { v: CHART_GRAPH_VERSION, id: machine.id, root, transitions };
}

/**
 * Paths of the states active in a snapshot `value` (`'closed'`, `{ role: 'leader', clock: 'ticking' }`),
 * ancestors included, root (`''`) first. Keys the graph does not have are ignored.
 */
export function activeStates(graph: ChartGraph, value: unknown): string[] {
  const out = [''];
  const walk = (state: ChartState, v: unknown): void => {
    if (typeof v === 'string') {
      const child = state.children.find((c) => c.key === v);
      if (child) out.push(child.path);
      return;
    }
    if (typeof v !== 'object' || v === null) return;
    for (const [k, sub] of Object.entries(v as Record<string, unknown>)) {
      const child = state.children.find((c) => c.key === k);
      if (!child) continue;
      out.push(child.path);
      walk(child, sub);
    }
  };
  walk(graph.root, value);
  return out;
}

/** Every state of the graph, depth first, root first. */
export function allStates(graph: ChartGraph): ChartState[] {
  const out: ChartState[] = [];
  const walk = (s: ChartState): void => {
    out.push(s);
    s.children.forEach(walk);
  };
  walk(graph.root);
  return out;
}

/** XState's invoke and final-state events, shortened: `xstate.done.actor.0.m.a.fetch` → `done: fetch`. */
function eventLabel(event: string): string {
  const m = /^xstate\.(done|error)\.(actor|state)\.(.+)$/.exec(event);
  return m ? `${m[1]}: ${m[3]!.split('.').pop()}` : event;
}

/** Human label of a transition: `EVENT [guard]`, `after 300 ms`, `always [guard]`, `done: fetch`. */
export function transitionLabel(t: ChartTransition): string {
  const trigger = t.trigger.kind === 'event'
    ? eventLabel(t.trigger.event)
    : t.trigger.kind === 'always'
      ? 'always'
      : `after ${t.trigger.delayMs !== undefined ? `${t.trigger.delayMs} ms` : t.trigger.delay}`;
  return t.guard !== undefined ? `${trigger} [${t.guard}]` : trigger;
}
