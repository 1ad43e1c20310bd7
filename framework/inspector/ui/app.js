/* troupe inspector — the browser side. Plain JS, no build step; served inline by server.ts.
 * Model: every inspection event received is kept (bounded); the picture shown is the fold of the
 * events up to the cursor (the end when live). The selected actor's chart is re-highlighted on
 * every snapshot of that actor, so no transition is skipped. */
/* global document, window, WebSocket, location, requestAnimationFrame, fetch, URL, URLSearchParams, performance, setInterval */
'use strict';

const MAX_EVENTS = 200000;
const MAX_EVENT_BYTES = 128 * 1024 * 1024;
const ROW_PX = 22;
const RECENT = 40;
const SEQ_MESSAGES = 40;
const SEQ_LANES = 10;

const params = new URLSearchParams(location.search);
const tokenQs = params.get('token') ? `?token=${encodeURIComponent(params.get('token'))}` : '';
const $ = (id) => document.getElementById(id);

const state = {
  events: [],
  /** approximate bytes of each kept event, and their sum (the history is bounded by both) */
  sizes: [],
  bytes: 0,
  graphs: new Map(),
  charts: new Map(),
  nodesLive: new Map(),
  cursor: null, // null = live
  model: emptyModel(),
  selected: params.get('select') || null,
  allowSend: false,
  connected: false,
  chartKeyShown: null,
  /** node → [node clock at last event, performance.now() then], for countdowns */
  nodeTime: new Map(),
};
window.__inspector = state;

function emptyModel() {
  return { actors: new Map(), messages: [], types: new Set(), nodes: new Set(), lastAt: 0 };
}

// ---------------------------------------------------------------------------------------------
// Fold

function actorOf(m, address, node) {
  let a = m.actors.get(address);
  if (!a) {
    a = { actor: address, node, actorType: address.endsWith('/_sys') ? 'root guardian' : '?', parent: undefined, key: undefined, value: undefined, context: undefined, status: '', timers: [], stopped: undefined, recent: [] };
    m.actors.set(address, a);
  }
  return a;
}

function remember(a, ev) {
  a.recent.push(ev);
  if (a.recent.length > RECENT) a.recent.shift();
}

function apply(m, ev) {
  m.lastAt = ev.at;
  m.nodes.add(ev.node);
  switch (ev.kind) {
    case 'actor.spawned': {
      if (ev.machine && ev.machineKey) state.graphs.set(ev.machineKey, ev.machine);
      const a = actorOf(m, ev.actor, ev.node);
      a.actorType = ev.actorType; a.parent = ev.parent; a.key = ev.machineKey; a.stopped = undefined;
      m.types.add(ev.actorType);
      remember(a, ev);
      return a;
    }
    case 'actor.snapshot': {
      const a = actorOf(m, ev.actor, ev.node);
      a.value = ev.value; a.context = ev.context; a.status = ev.status; a.timers = ev.timers || [];
      remember(a, ev);
      return a;
    }
    case 'actor.stopped': {
      const a = actorOf(m, ev.actor, ev.node);
      a.stopped = ev.reason;
      remember(a, ev);
      return a;
    }
    case 'actor.event':
    case 'actor.failed': {
      const a = actorOf(m, ev.actor, ev.node);
      remember(a, ev);
      return undefined;
    }
    case 'supervision.directive': {
      const a = m.actors.get(ev.child) || m.actors.get(`${ev.supervisor}/${ev.child}`);
      if (a) remember(a, ev);
      return undefined;
    }
    case 'message.sent':
    case 'message.dead':
      m.messages.push(ev);
      if (m.messages.length > 2000) m.messages.splice(0, 1000);
      return undefined;
    default:
      return undefined;
  }
}

function rebuild(upTo) {
  const m = emptyModel();
  for (let i = 0; i <= upTo && i < state.events.length; i++) apply(m, state.events[i]);
  state.model = m;
}

// ---------------------------------------------------------------------------------------------
// Graph helpers (mirror graph.ts)

function activeStates(graph, value) {
  const out = [''];
  const walk = (s, v) => {
    if (typeof v === 'string') {
      const c = s.children.find((x) => x.key === v);
      if (c) out.push(c.path);
      return;
    }
    if (!v || typeof v !== 'object') return;
    for (const [k, sub] of Object.entries(v)) {
      const c = s.children.find((x) => x.key === k);
      if (!c) continue;
      out.push(c.path);
      walk(c, sub);
    }
  };
  walk(graph.root, value);
  return out;
}

function leaves(value, prefix) {
  if (typeof value === 'string') return [prefix ? `${prefix}.${value}` : value];
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}

// ---------------------------------------------------------------------------------------------
// Tree (virtualized)

let rows = [];
function buildRows() {
  const m = state.model;
  const nodeF = $('nodeFilter').value;
  const typeF = $('typeFilter').value;
  const text = $('textFilter').value.trim().toLowerCase();
  const byNode = new Map();
  for (const a of m.actors.values()) {
    if (nodeF && a.node !== nodeF) continue;
    if (!byNode.has(a.node)) byNode.set(a.node, []);
    byNode.get(a.node).push(a);
  }
  const out = [];
  for (const node of [...byNode.keys()].sort()) {
    const list = byNode.get(node);
    const live = state.nodesLive.get(node);
    out.push({ kind: 'node', node, down: live ? !live.up : false, count: list.length });
    const children = new Map();
    const roots = [];
    const present = new Set(list.map((a) => a.actor));
    for (const a of list) {
      if (a.parent && present.has(a.parent)) {
        if (!children.has(a.parent)) children.set(a.parent, []);
        children.get(a.parent).push(a);
      } else roots.push(a);
    }
    // a row whose parent is filtered out shows its path below the node, so it stays unambiguous
    const visit = (a, depth, parentShown) => {
      const match = (!typeF || a.actorType === typeF) && (!text || a.actor.toLowerCase().includes(text));
      if (match) out.push({ kind: 'actor', a, depth, down: live ? !live.up : false, fullPath: !parentShown });
      for (const c of (children.get(a.actor) || []).sort((x, y) => (x.actor < y.actor ? -1 : 1))) visit(c, match ? depth + 1 : depth, match);
    };
    for (const a of roots.sort((x, y) => (x.actor < y.actor ? -1 : 1))) visit(a, 1, false);
  }
  rows = out;
}

function renderTree() {
  const tree = $('tree');
  const spacer = tree.firstElementChild;
  spacer.style.height = `${rows.length * ROW_PX}px`;
  const first = Math.max(0, Math.floor(tree.scrollTop / ROW_PX) - 10);
  const last = Math.min(rows.length, first + Math.ceil(tree.clientHeight / ROW_PX) + 20);
  const html = [];
  for (let i = first; i < last; i++) {
    const r = rows[i];
    const top = i * ROW_PX;
    if (r.kind === 'node') {
      html.push(`<div class="row node${r.down ? ' down' : ''}" data-node="${esc(r.node)}" style="top:${top}px;padding-left:6px">▾ ${esc(r.node)} <span class="type">${r.count} actors</span></div>`);
    } else {
      const a = r.a;
      const summary = leaves(a.value, '').join(' ');
      const cls = ['row', 'actor', a.actor === state.selected ? 'selected' : '', a.stopped ? 'stopped' : '', r.down ? 'node-down' : ''].filter(Boolean).join(' ');
      const name = r.fullPath ? a.actor.slice(a.node.length + 1) : a.actor.slice(a.actor.lastIndexOf('/') + 1);
      html.push(`<div class="${cls}" data-actor="${esc(a.actor)}" data-state="${esc(summary)}" style="top:${top}px;padding-left:${6 + r.depth * 14}px">${esc(name)}<span class="type">${esc(a.actorType)}</span><span class="state">${esc(summary)}</span></div>`);
    }
  }
  spacer.innerHTML = html.join('');
}

function renderFilters() {
  const fill = (sel, values, label) => {
    const cur = sel.value;
    const want = ['', ...[...values].sort()];
    if (sel.options.length === want.length && [...sel.options].every((o, i) => o.value === want[i])) return;
    sel.innerHTML = want.map((v) => `<option value="${esc(v)}">${esc(v || label)}</option>`).join('');
    sel.value = cur;
  };
  fill($('nodeFilter'), new Set([...state.model.nodes, ...state.nodesLive.keys()]), 'all nodes');
  fill($('typeFilter'), state.model.types, 'all types');
}

// ---------------------------------------------------------------------------------------------
// Chart

function loadChart(key) {
  if (!state.charts.has(key)) {
    state.charts.set(key, fetch(`/api/chart/${encodeURIComponent(key)}${tokenQs}`).then((r) => (r.ok ? r.json() : null)).catch(() => null));
  }
  return state.charts.get(key);
}

function showChart() {
  const a = state.selected ? state.model.actors.get(state.selected) : undefined;
  const title = $('chartTitle');
  if (!a) {
    title.textContent = state.selected ? `${state.selected} (not seen yet)` : 'select an actor';
    $('chart').innerHTML = '';
    state.chartKeyShown = null;
    return;
  }
  title.innerHTML = `${esc(a.actor)} <span class="muted">${esc(a.actorType)}${a.stopped ? ` · stopped (${esc(a.stopped)})` : ''}</span>`;
  if (!a.key) {
    $('chart').innerHTML = '<div class="empty">no state chart for this actor</div>';
    state.chartKeyShown = null;
    return;
  }
  if (state.chartKeyShown === a.key) {
    highlight();
    return;
  }
  const key = a.key;
  state.chartKeyShown = key;
  $('chart').innerHTML = '<div class="empty">laying out…</div>';
  loadChart(key).then((c) => {
    if (state.chartKeyShown !== key) return;
    if (!c) {
      $('chart').innerHTML = '<div class="empty">chart not available</div>';
      return;
    }
    $('chart').innerHTML = c.svg;
    highlight();
  });
}

function highlight() {
  const a = state.selected ? state.model.actors.get(state.selected) : undefined;
  const svg = $('chart').querySelector('svg');
  if (!a || !svg || !a.key || state.chartKeyShown !== a.key) return;
  const graph = state.graphs.get(a.key);
  if (!graph) return;
  const active = new Set(activeStates(graph, a.value));
  for (const g of svg.querySelectorAll('g[data-state]')) {
    const on = active.has(g.getAttribute('data-state'));
    if (g.classList.contains('active') !== on) g.classList.toggle('active', on);
  }
  const live = new Set(a.timers.map((t) => t.transition));
  for (const e of svg.querySelectorAll('g.edge[data-transition]')) e.classList.toggle('live', live.has(e.getAttribute('data-transition')));
  countdown();
}

function nodeNow(node) {
  if (state.cursor !== null) return state.model.lastAt;
  const t = state.nodeTime.get(node);
  return t ? t[0] + (performance.now() - t[1]) : state.model.lastAt;
}

function countdown() {
  const a = state.selected ? state.model.actors.get(state.selected) : undefined;
  const svg = $('chart').querySelector('svg');
  const lines = [];
  // the time left goes on a line of its own under the delay's label (appending would overlap neighbours)
  const countdownOf = (el) => {
    let cd = el.nextElementSibling;
    if (!cd || !cd.classList.contains('countdown')) {
      cd = document.createElementNS('http://www.w3.org/2000/svg', 'text');
      cd.setAttribute('class', 'countdown');
      cd.setAttribute('x', el.getAttribute('x'));
      cd.setAttribute('y', String(Number(el.getAttribute('y')) + 12));
      el.after(cd);
    }
    return cd;
  };
  if (svg) for (const el of svg.querySelectorAll('text.countdown')) el.textContent = '';
  if (a && !a.stopped) {
    const now = nodeNow(a.node);
    const graph = a.key ? state.graphs.get(a.key) : undefined;
    for (const t of a.timers) {
      const tr = graph && graph.transitions.find((x) => x.id === t.transition);
      // a transition that re-enters its own state restarts its timer each time: count the current period
      const periodic = tr && tr.reenter && tr.targets.includes(tr.source) && t.delayMs > 0;
      const elapsed = now - t.startedAt;
      const left = Math.max(0, Math.round(periodic ? t.delayMs - (elapsed % t.delayMs) : t.delayMs - elapsed));
      lines.push(`<div>${esc(t.transition)}: ${left} ms left of ${t.delayMs} ms</div>`);
      const el = svg && svg.querySelector(`text[data-after="${cssEsc(t.transition)}"]`);
      if (el) countdownOf(el).textContent = `⏱ ${left} ms`;
    }
  }
  $('timers').innerHTML = lines.join('') || '<div class="empty" style="padding:2px">none running</div>';
}

// ---------------------------------------------------------------------------------------------
// Detail, sequence diagram, header

function renderDetail() {
  const a = state.selected ? state.model.actors.get(state.selected) : undefined;
  $('stateLine').textContent = a ? `${leaves(a.value, '').join(', ') || '—'}  (${a.status || '?'})` : '—';
  $('context').textContent = a && a.context !== undefined ? JSON.stringify(a.context, null, 2).slice(0, 20000) : '';
  $('recent').innerHTML = a
    ? a.recent.slice().reverse().map((ev) => `<div><span class="k">${fmtTime(ev.at)} ${esc(ev.kind)}</span> ${esc(describe(ev))}</div>`).join('')
    : '';
  $('sendBox').className = state.allowSend && a ? 'on' : '';
}

function describe(ev) {
  switch (ev.kind) {
    case 'actor.event': return ev.event && ev.event.type ? ev.event.type : '';
    case 'actor.snapshot': return leaves(ev.value, '').join(', ');
    case 'actor.spawned': return `${ev.actorType}${ev.parent ? ` under ${ev.parent}` : ''}`;
    case 'actor.stopped': return ev.reason;
    case 'actor.failed': return ev.error;
    case 'supervision.directive': return `${ev.directive}: ${ev.reason}`;
    default: return '';
  }
}

function renderSequence() {
  const nodeF = $('nodeFilter').value;
  const typeF = $('typeFilter').value;
  const m = state.model;
  const typeOf = (addr) => (m.actors.get(addr) || {}).actorType;
  const keep = (addr) => !addr || ((!nodeF || addr.startsWith(`${nodeF}/`)) && (!typeF || typeOf(addr) === typeF));
  const msgs = [];
  for (let i = m.messages.length - 1; i >= 0 && msgs.length < SEQ_MESSAGES; i--) {
    const ev = m.messages[i];
    if (keep(ev.from) || keep(ev.to)) msgs.push(ev);
  }
  msgs.reverse();
  const lanes = [];
  const laneOf = (addr) => {
    // an ask from outside any actor: its reply goes back to `node/(caller)`
    const name = !addr || addr.endsWith('/(caller)') ? '(outside)' : addr;
    let i = lanes.indexOf(name);
    if (i < 0) {
      if (lanes.length >= SEQ_LANES) return SEQ_LANES - 1;
      lanes.push(name);
      i = lanes.length - 1;
    }
    return i;
  };
  for (const ev of msgs) { laneOf(ev.from); laneOf(ev.to); }
  const W = 150;
  const H = 30 + msgs.length * 18 + 10;
  const x = (i) => 20 + i * W + W / 2;
  const parts = [];
  lanes.forEach((name, i) => {
    parts.push(`<line class="lane" x1="${x(i)}" y1="24" x2="${x(i)}" y2="${H}"/>`);
    parts.push(`<text class="lanehead" x="${x(i)}" y="14" text-anchor="middle">${esc(name.length > 22 ? `…${name.slice(-21)}` : name)}</text>`);
  });
  msgs.forEach((ev, k) => {
    const y = 34 + k * 18;
    const a = laneOf(ev.from);
    const b = laneOf(ev.to);
    const kind = ev.kind === 'message.dead' ? 'dead' : ev.reply ? 'reply' : ev.ask ? 'ask' : 'tell';
    const label = ev.kind === 'message.dead' ? `✕ ${ev.messageType || '?'} (${ev.reason})` : `${ev.messageType}${kind === 'tell' ? '' : ` · ${kind}`}`;
    const x1 = x(a);
    const x2 = a === b ? x(a) + 30 : x(b);
    parts.push(`<g class="msg ${kind}"><line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" marker-end="url(#seqarrow)"/>`
      + `<text x="${Math.min(x1, x2) + 4}" y="${y - 3}">${esc(label)}</text></g>`);
  });
  const svg = $('seq');
  svg.setAttribute('width', String(40 + Math.max(1, lanes.length) * W));
  svg.setAttribute('height', String(H));
  svg.innerHTML = '<defs><marker id="seqarrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0 0L10 5L0 10z" fill="#334e68"/></marker></defs>' + parts.join('');
}

function renderHeader() {
  const m = state.model;
  let live = 0;
  for (const a of m.actors.values()) if (!a.stopped) live++;
  const down = [...state.nodesLive.values()].filter((n) => !n.up).length;
  $('counts').textContent = `${m.nodes.size} nodes${down ? ` (${down} down)` : ''} · ${live} actors · ${state.events.length} events`;
  const slider = $('slider');
  slider.max = String(Math.max(0, state.events.length - 1));
  if (state.cursor === null) slider.value = slider.max;
  const at = state.cursor === null ? m.lastAt : (state.events[state.cursor] || {}).at;
  $('cursorLabel').textContent = `${state.cursor === null ? 'live' : `event ${state.cursor + 1}/${state.events.length}`} · ${at ? fmtTime(at) : ''}`;
  $('live').className = state.cursor === null ? 'on' : '';
}

let frameQueued = false;
function render() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    buildRows();
    renderFilters();
    renderTree();
    showChart();
    renderDetail();
    renderSequence();
    renderHeader();
  });
}

// ---------------------------------------------------------------------------------------------
// Wiring

function ingest(events, bytes) {
  const selected = state.selected;
  const each = events.length ? Math.ceil(bytes / events.length) : 0;
  for (const ev of events) {
    state.events.push(ev);
    state.sizes.push(each);
    state.bytes += each;
    state.nodeTime.set(ev.node, [ev.at, performance.now()]);
    if (state.cursor === null) {
      const a = apply(state.model, ev);
      // re-highlight at once for the selected actor: every state it passes through is drawn
      if (a && a.actor === selected && ev.kind === 'actor.snapshot') highlight();
      if (a && a.actor === selected && ev.kind === 'actor.spawned') showChart();
    } else if (ev.kind === 'actor.spawned' && ev.machine && ev.machineKey) {
      state.graphs.set(ev.machineKey, ev.machine);
    }
  }
  if (state.events.length > MAX_EVENTS || state.bytes > MAX_EVENT_BYTES) {
    let drop = Math.max(0, state.events.length - MAX_EVENTS);
    let bytes = state.bytes;
    for (let i = 0; i < drop; i++) bytes -= state.sizes[i];
    while (bytes > MAX_EVENT_BYTES * 0.8 && drop < state.events.length) bytes -= state.sizes[drop++];
    state.events.splice(0, drop);
    state.sizes.splice(0, drop);
    state.bytes = bytes;
    if (state.cursor !== null) state.cursor = Math.max(0, state.cursor - drop);
  }
  render();
}

function setNodes(list) {
  for (const n of list) state.nodesLive.set(n.node, { up: n.up });
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws${tokenQs}`);
  ws.onopen = () => {
    state.connected = true;
    $('conn').textContent = 'connected';
    $('conn').className = 'stat';
  };
  ws.onclose = () => {
    state.connected = false;
    $('conn').textContent = 'disconnected — retrying';
    $('conn').className = 'stat down';
    window.setTimeout(connect, 1000);
  };
  ws.onmessage = (msg) => {
    const m = JSON.parse(msg.data);
    if (m.type === 'hello') {
      state.allowSend = m.allowSend;
      $('cluster').textContent = `cluster ${m.cluster}${m.allowSend ? ' · sending allowed' : ' · read-only'}`;
      for (const [k, g] of Object.entries(m.graphs)) state.graphs.set(k, g);
      setNodes(m.nodes);
      state.events = [];
      state.sizes = [];
      state.bytes = 0;
      state.model = emptyModel();
      ingest(m.events, msg.data.length);
    } else if (m.type === 'events') {
      if (m.nodes) setNodes(m.nodes);
      ingest(m.events, msg.data.length);
    } else if (m.type === 'error') {
      $('conn').textContent = m.message;
    }
  };
  state.ws = ws;
}

$('tree').addEventListener('scroll', () => renderTree());
$('tree').addEventListener('click', (e) => {
  const row = e.target.closest('.row.actor');
  if (!row) return;
  select(row.getAttribute('data-actor'));
});
for (const id of ['nodeFilter', 'typeFilter']) $(id).addEventListener('change', render);
$('textFilter').addEventListener('input', render);
$('slider').addEventListener('input', () => {
  const v = Number($('slider').value);
  state.cursor = v >= state.events.length - 1 ? null : v;
  rebuild(state.cursor === null ? state.events.length - 1 : v);
  state.chartKeyShown = null;
  render();
});
$('live').addEventListener('click', () => {
  state.cursor = null;
  rebuild(state.events.length - 1);
  state.chartKeyShown = null;
  render();
});
$('sendBtn').addEventListener('click', () => {
  let event;
  try {
    event = JSON.parse($('sendInput').value);
  } catch {
    $('sendInput').style.borderColor = 'red';
    return;
  }
  $('sendInput').style.borderColor = '';
  if (state.ws && state.selected) state.ws.send(JSON.stringify({ type: 'send', actor: state.selected, event }));
});

function select(address) {
  state.selected = address;
  state.chartKeyShown = null;
  const url = new URL(location.href);
  url.searchParams.set('select', address);
  window.history.replaceState(null, '', url);
  render();
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function cssEsc(s) {
  return String(s).replace(/["\\]/g, '\\$&');
}
function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.toISOString().slice(11, 23)}`;
}

setInterval(() => { if (state.selected) countdown(); }, 100);
connect();
