/**
 * Diagrams of a chart graph: Mermaid `stateDiagram-v2` text, and SVG laid out by ELK (the layered
 * algorithm of elkjs, as the Stately visualizer uses) with compound and parallel states as nested
 * boxes, transitions as labelled arrows. The SVG marks every state with `data-state="<path>"` and
 * every `after` label with `data-after="<transition id>"`, which the web UI uses to highlight
 * active states and count timers down.
 */
import type { ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import { transitionLabel, type ChartGraph, type ChartState, type ChartTransition } from './graph.ts';

// ---------------------------------------------------------------------------------------------
// Mermaid

/**
 * Mermaid `stateDiagram-v2` source for a graph. Nested states become composite states, parallel
 * regions are split by `--`. Mermaid cannot draw an edge that starts or ends on a composite state,
 * so such a transition is drawn from / to that state's initial leaf and labelled `(from X)` /
 * `(into X)`; a machine-wide transition reads `(from any state)`.
 */
export function toMermaid(graph: ChartGraph): string {
  const lines = ['stateDiagram-v2'];
  const byPath = new Map<string, ChartState>();
  const index = (s: ChartState): void => {
    byPath.set(s.path, s);
    s.children.forEach(index);
  };
  index(graph.root);
  const idOf = (path: string): string => `s_${path.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const text = (s: string): string => s.replace(/[;#:\n]/g, ' ');
  /** The leaf a composite state starts in. */
  const leaf = (path: string): string => {
    const s = byPath.get(path)!;
    if (s.children.length === 0) return path;
    return leaf(s.type === 'parallel' ? s.children[0]!.path : (s.initial ?? s.children[0]!.path));
  };
  const edges: string[] = [];
  for (const t of graph.transitions) {
    const source = byPath.get(t.source)!;
    const from = leaf(t.source);
    const fromNote = source.children.length === 0 ? '' : t.source === '' ? ' (from any state)' : ` (from ${source.key})`;
    for (const target of t.targets.length > 0 ? t.targets : [t.source]) {
      const into = byPath.get(target)!;
      const intoNote = into.children.length === 0 || t.targets.length === 0 ? '' : ` (into ${into.key})`;
      edges.push(`  ${idOf(from)} --> ${idOf(leaf(target))} : ${text(transitionLabel(t))}${fromNote}${intoNote}`);
    }
  }
  const emitBody = (state: ChartState, indent: string): void => {
    const regions = state.type === 'parallel';
    state.children.forEach((child, i) => {
      if (regions && i > 0) lines.push(`${indent}--`);
      lines.push(`${indent}state "${text(child.key)}" as ${idOf(child.path)}`);
      if (child.children.length > 0) {
        lines.push(`${indent}state ${idOf(child.path)} {`);
        emitBody(child, `${indent}  `);
        lines.push(`${indent}}`);
      }
      if (child.type === 'final') lines.push(`${indent}${idOf(child.path)} --> [*]`);
    });
    if (state.initial !== undefined) lines.push(`${indent}[*] --> ${idOf(state.initial)}`);
  };
  if (graph.root.type === 'parallel') {
    // the root's regions side by side, in one composite named after the machine
    lines.push(`  state "${text(graph.root.key)}" as s_`, '  state s_ {');
    emitBody(graph.root, '    ');
    lines.push('  }');
  } else {
    emitBody(graph.root, '  ');
  }
  return `${[...lines, ...edges].join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Layout

/** A laid-out chart: absolute coordinates, in px. */
export interface ChartLayout {
  readonly width: number;
  readonly height: number;
  readonly states: readonly LaidOutState[];
  readonly edges: readonly LaidOutEdge[];
  /** Initial-state markers: a dot and its arrow to the initial child. */
  readonly initials: readonly { readonly parent: string; readonly x: number; readonly y: number; readonly points: readonly Point[] }[];
}
export interface Point { readonly x: number; readonly y: number }
export interface LaidOutState {
  readonly state: ChartState;
  readonly x: number; readonly y: number; readonly width: number; readonly height: number;
  readonly depth: number;
  /** Targetless transitions listed inside the box. */
  readonly internal: readonly ChartTransition[];
}
export interface LaidOutEdge {
  readonly transition: ChartTransition;
  readonly target: string;
  readonly points: readonly Point[];
  readonly label: { readonly text: string; readonly x: number; readonly y: number; readonly width: number; readonly height: number };
}

type ElkConstructor = new () => { layout(graph: ElkNode): Promise<ElkNode> };
/** elkjs is large: loaded on first layout, not with the framework. */
async function loadElk(): Promise<ElkConstructor> {
  const mod = (await import('elkjs/lib/elk.bundled.js')) as unknown as { default: unknown };
  // CommonJS whose typings declare an ES default export: take the constructor either way
  const m = mod.default as { default?: ElkConstructor } | ElkConstructor;
  return (typeof m === 'function' ? m : m.default!) as ElkConstructor;
}

const FONT_PX = 11;
const CHAR_PX = 6.7;
const LINE_PX = 15;
const HEADER_PX = 24;
const textWidth = (s: string): number => Math.ceil(s.length * CHAR_PX) + 10;

/** Lay a graph out with ELK (layered, hierarchy included). */
export async function layoutChart(graph: ChartGraph): Promise<ChartLayout> {
  const internal = new Map<string, ChartTransition[]>();
  const external: ChartTransition[] = [];
  for (const t of graph.transitions) {
    if (t.targets.length === 0) internal.set(t.source, [...(internal.get(t.source) ?? []), t]);
    else external.push(t);
  }
  const depthOf = new Map<string, number>();
  const stateOf = new Map<string, ChartState>();
  const toNode = (s: ChartState, depth: number): ElkNode => {
    depthOf.set(s.path, depth);
    stateOf.set(s.path, s);
    const lines = (internal.get(s.path) ?? []).map(transitionLabel);
    const title = s.type === 'parallel' ? `${s.key} (parallel)` : s.key;
    const minWidth = Math.max(textWidth(title) + 8, ...lines.map(textWidth), 60);
    if (s.children.length === 0) {
      return { id: `s:${s.path}`, width: minWidth + 16, height: HEADER_PX + 10 + lines.length * LINE_PX };
    }
    const children = s.children.map((c) => toNode(c, depth + 1));
    if (s.initial !== undefined) children.unshift({ id: `i:${s.path}`, width: 10, height: 10 });
    const top = HEADER_PX + 6 + lines.length * LINE_PX;
    return {
      id: `s:${s.path}`,
      children,
      layoutOptions: {
        'elk.padding': `[top=${top},left=14,bottom=14,right=14]`,
        'elk.nodeSize.constraints': 'MINIMUM_SIZE',
        'elk.nodeSize.minimum': `(${minWidth + 16},${top + 20})`,
        // parallel regions side by side
        ...(s.type === 'parallel' ? { 'elk.direction': 'RIGHT', 'elk.layered.spacing.nodeNodeBetweenLayers': '24' } : {}),
      },
    };
  };
  const rootNode = toNode(graph.root, 0);
  const edges: ElkExtendedEdge[] = [];
  const labelText = new Map<string, string>();
  for (const t of external) {
    t.targets.forEach((target, k) => {
      const id = `t:${t.id}:${k}`;
      const text = transitionLabel(t);
      labelText.set(id, text);
      edges.push({ id, sources: [`s:${t.source}`], targets: [`s:${target}`], labels: [{ text, width: textWidth(text), height: LINE_PX }] });
    });
  }
  const walkInitials = (s: ChartState): void => {
    if (s.initial !== undefined) edges.push({ id: `ie:${s.path}`, sources: [`i:${s.path}`], targets: [`s:${s.initial}`] });
    s.children.forEach(walkInitials);
  };
  walkInitials(graph.root);

  const elk = new (await loadElk())();
  const laid = await elk.layout({
    id: 'graph',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.json.edgeCoords': 'ROOT',
      'elk.json.shapeCoords': 'ROOT',
      'elk.padding': '[top=10,left=10,bottom=10,right=10]',
      'elk.spacing.nodeNode': '28',
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.spacing.edgeLabel': '4',
      'elk.edgeLabels.placement': 'CENTER',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
    },
    children: [rootNode],
    edges,
  });

  const states: LaidOutState[] = [];
  const initials: { parent: string; x: number; y: number; points: Point[] }[] = [];
  const pointsOf = (e: ElkExtendedEdge): Point[] => {
    const sec = e.sections?.[0];
    return sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint].map((p) => ({ x: p.x, y: p.y })) : [];
  };
  const edgeById = new Map<string, ElkExtendedEdge>((laid.edges ?? []).map((e: ElkExtendedEdge) => [e.id, e] as const));
  const collect = (n: ElkNode): void => {
    if (n.id.startsWith('s:')) {
      const path = n.id.slice(2);
      states.push({
        state: stateOf.get(path)!, x: n.x ?? 0, y: n.y ?? 0, width: n.width ?? 0, height: n.height ?? 0,
        depth: depthOf.get(path) ?? 0, internal: internal.get(path) ?? [],
      });
    } else if (n.id.startsWith('i:')) {
      const parent = n.id.slice(2);
      initials.push({ parent, x: (n.x ?? 0) + 5, y: (n.y ?? 0) + 5, points: pointsOf(edgeById.get(`ie:${parent}`)!) });
    }
    n.children?.forEach(collect);
  };
  laid.children?.forEach(collect);
  const out: LaidOutEdge[] = [];
  for (const t of external) {
    t.targets.forEach((target, k) => {
      const e = edgeById.get(`t:${t.id}:${k}`);
      if (!e) return;
      const l = e.labels?.[0];
      out.push({
        transition: t, target, points: pointsOf(e),
        label: { text: labelText.get(e.id)!, x: l?.x ?? 0, y: l?.y ?? 0, width: l?.width ?? 0, height: l?.height ?? 0 },
      });
    });
  }
  return { width: Math.ceil(laid.width ?? 0), height: Math.ceil(laid.height ?? 0), states, edges: out, initials };
}

// ---------------------------------------------------------------------------------------------
// SVG

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const r1 = (n: number): string => String(Math.round(n * 10) / 10);

/** Options of `toSvg`. */
export interface SvgOptions {
  /** State paths drawn highlighted (a static picture of a snapshot). */
  readonly active?: readonly string[];
  /** Include the `<style>` block (the web UI brings its own). @default true */
  readonly style?: boolean;
}

/** The stylesheet of the SVG (also served to the web UI). */
export const CHART_CSS = `
.chart text { font: ${FONT_PX}px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; fill: #1f2933; }
.chart .state > rect { fill: #ffffff; stroke: #52606d; stroke-width: 1.2; }
.chart .state.depth-0 > rect { fill: #f5f7fa; stroke: #9aa5b1; }
.chart .state.compound > rect { fill: #f8fafc; }
.chart .state.parallel > rect { fill: #f8fafc; stroke-dasharray: 5 3; }
.chart .state.final > rect.inner { fill: none; }
.chart .state > text.title { font-weight: 600; }
.chart .state > text.internal { fill: #616e7c; }
.chart .state.active > rect { fill: #e3f8ff; stroke: #0b69a3; stroke-width: 2.4; }
.chart .state.active.atomic > rect, .chart .state.active.final > rect { fill: #b3ecff; }
.chart .edge path { fill: none; stroke: #7b8794; stroke-width: 1.2; }
.chart .edge.after path { stroke-dasharray: 4 2; }
.chart .edge text { fill: #3e4c59; }
.chart .edge .guard { fill: #8a4baf; }
.chart .edge.live path { stroke: #0b69a3; stroke-width: 2; }
.chart .initial { fill: #323f4b; }
.chart .initial-edge { fill: none; stroke: #323f4b; stroke-width: 1.2; }
`;

/** An SVG document of the chart, laid out by `layoutChart`. */
export function toSvg(graph: ChartGraph, layout: ChartLayout, options: SvgOptions = {}): string {
  const active = new Set(options.active ?? []);
  const w = layout.width;
  const h = layout.height;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-machine="${esc(graph.id)}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}">`);
  parts.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
    + '<path d="M 0 0 L 10 5 L 0 10 z" fill="#52606d"/></marker></defs>');
  if (options.style ?? true) parts.push(`<style>${CHART_CSS}</style>`);
  // outer boxes first, so nested boxes draw on top
  for (const s of [...layout.states].sort((a, b) => a.depth - b.depth)) {
    const cls = ['state', s.state.type, `depth-${s.depth}`, active.has(s.state.path) ? 'active' : ''].filter(Boolean).join(' ');
    parts.push(`<g class="${cls}" data-state="${esc(s.state.path)}">`);
    parts.push(`<rect x="${r1(s.x)}" y="${r1(s.y)}" width="${r1(s.width)}" height="${r1(s.height)}" rx="${s.depth === 0 ? 4 : 8}"/>`);
    if (s.state.type === 'final') {
      parts.push(`<rect class="inner" x="${r1(s.x + 3)}" y="${r1(s.y + 3)}" width="${r1(s.width - 6)}" height="${r1(s.height - 6)}" rx="6"/>`);
    }
    const title = s.state.type === 'parallel' ? `${s.state.key} (parallel)` : s.state.key;
    parts.push(`<text class="title" x="${r1(s.x + 8)}" y="${r1(s.y + 16)}">${esc(title)}</text>`);
    s.internal.forEach((t, i) => {
      parts.push(`<text class="internal" data-transition="${esc(t.id)}" x="${r1(s.x + 8)}" y="${r1(s.y + HEADER_PX + 8 + i * LINE_PX)}">${esc(transitionLabel(t))}</text>`);
    });
    parts.push('</g>');
  }
  for (const i of layout.initials) {
    parts.push(`<circle class="initial" cx="${r1(i.x)}" cy="${r1(i.y)}" r="4"/>`);
    if (i.points.length > 1) parts.push(`<path class="initial-edge" marker-end="url(#arrow)" d="${pathD(i.points)}"/>`);
  }
  for (const e of layout.edges) {
    const t = e.transition;
    const cls = ['edge', t.trigger.kind, t.guard !== undefined ? 'guarded' : ''].filter(Boolean).join(' ');
    parts.push(`<g class="${cls}" data-transition="${esc(t.id)}" data-source="${esc(t.source)}" data-target="${esc(e.target)}">`);
    parts.push(`<path marker-end="url(#arrow)" d="${pathD(e.points)}"/>`);
    const ty = e.label.y + e.label.height - 4;
    const after = t.trigger.kind === 'after' ? ` data-after="${esc(t.id)}"` : '';
    const guardAt = e.label.text.indexOf(' [');
    if (guardAt >= 0) {
      parts.push(`<text x="${r1(e.label.x)}" y="${r1(ty)}"${after}>${esc(e.label.text.slice(0, guardAt))}<tspan class="guard">${esc(e.label.text.slice(guardAt))}</tspan></text>`);
    } else {
      parts.push(`<text x="${r1(e.label.x)}" y="${r1(ty)}"${after}>${esc(e.label.text)}</text>`);
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function pathD(points: readonly Point[]): string {
  return points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${r1(p.x)} ${r1(p.y)}`).join(' ');
}

/** Graph → laid-out SVG in one step. */
export async function renderSvg(graph: ChartGraph, options: SvgOptions = {}): Promise<string> {
  return toSvg(graph, await layoutChart(graph), options);
}
