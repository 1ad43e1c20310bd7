/**
 * The case study's report: throughput and latency p50/p99 per time bucket with the faults marked,
 * errors by type, and availability against consistency (stale reads, oversold units, lost orders)
 * — as text and as a self-contained HTML page with SVG charts.
 */
import { inventorySettings, type ShopRun } from './topology.ts';

export interface Bucket { readonly startMs: number; readonly ops: number; readonly ok: number; readonly p50Ms: number; readonly p99Ms: number }

export interface ShopReport {
  readonly setting: string;
  readonly promisesNoOversell: boolean;
  readonly bucketMs: number;
  readonly buckets: readonly Bucket[];
  readonly faults: ShopRun['faults'];
  readonly totals: { readonly ops: number; readonly ok: number; readonly throughputPerS: number; readonly p50Ms: number; readonly p99Ms: number };
  readonly byOp: Readonly<Record<string, { ops: number; ok: number }>>;
  readonly errors: Readonly<Record<string, number>>;
  readonly availability: number;
  readonly ordersAcked: number;
  readonly ordersLost: number;
  readonly oversold: number;
  readonly oversoldSkus: number;
  readonly inventoryNegative: number;
  readonly staleReads: number;
  readonly readsChecked: number;
  readonly replication: { readonly copies: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number; readonly missing: number };
}

const quantile = (sorted: readonly number[], q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
const sortNum = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);

/** Business outcomes that are answers, not failures of the system. */
const BUSINESS = new Set(['ok', 'out-of-stock', 'cart-empty']);

export function summarize(run: ShopRun, bucketMs = Math.max(250, Math.round(run.durationMs / 20))): ShopReport {
  const buckets: Bucket[] = [];
  for (let t = 0; t < run.durationMs; t += bucketMs) {
    const inB = run.ops.filter((o) => o.atMs >= t && o.atMs < t + bucketMs);
    const lat = sortNum(inB.map((o) => o.latencyMs));
    buckets.push({ startMs: t, ops: inB.length, ok: inB.filter((o) => BUSINESS.has(o.outcome)).length, p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) });
  }
  const errors: Record<string, number> = {};
  const byOp: Record<string, { ops: number; ok: number }> = {};
  for (const o of run.ops) {
    const b = (byOp[o.op] ??= { ops: 0, ok: 0 });
    b.ops++;
    if (BUSINESS.has(o.outcome)) b.ok++;
    if (o.outcome !== 'ok') errors[`${o.op}: ${o.outcome}`] = (errors[`${o.op}: ${o.outcome}`] ?? 0) + 1;
  }
  const lat = sortNum(run.ops.map((o) => o.latencyMs));
  const ok = run.ops.filter((o) => BUSINESS.has(o.outcome)).length;
  const lags = sortNum(run.replicationLagsMs);
  return {
    setting: run.config.inventory, promisesNoOversell: inventorySettings(run.config.inventory).promisesNoOversell,
    bucketMs, buckets, faults: run.faults,
    totals: { ops: run.ops.length, ok, throughputPerS: Math.round((run.ops.length / run.durationMs) * 1_000), p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) },
    byOp, errors, availability: run.ops.length === 0 ? 0 : ok / run.ops.length,
    ordersAcked: run.ordersAcked, ordersLost: run.ordersLost.length, oversold: run.oversold, oversoldSkus: run.oversoldSkus,
    inventoryNegative: run.inventoryNegative, staleReads: run.staleReads, readsChecked: run.readsChecked,
    replication: { copies: lags.length, p50Ms: quantile(lags, 0.5), p99Ms: quantile(lags, 0.99), maxMs: lags.at(-1) ?? 0, missing: Math.max(0, run.cartsAddedHome - lags.length) },
  };
}

const fmtMs = (ms: number): string => `${Math.round(ms)} ms`;

export function formatText(r: ShopReport): string {
  const s = inventorySettings(r.setting as never);
  const lines = [
    `inventory: ${r.setting} (W=${s.w} R=${s.r} of N=3) — ${r.promisesNoOversell ? 'promises: never oversold, no acknowledged order lost' : 'promises nothing about overselling (availability first)'}`,
    `operations: ${r.totals.ops} in ${(r.buckets.length * r.bucketMs) / 1_000} s (${r.totals.throughputPerS}/s), answered ${(r.availability * 100).toFixed(1)}%; latency p50 ${fmtMs(r.totals.p50Ms)}, p99 ${fmtMs(r.totals.p99Ms)}`,
    `  ${Object.entries(r.byOp).map(([op, b]) => `${op} ${b.ok}/${b.ops}`).join(', ')}`,
    'faults:',
    ...(r.faults.length ? r.faults.map((f) => `  t=${(f.atMs / 1_000).toFixed(1)}s ${f.label}`) : ['  (none)']),
    'over time (t, ops, answered, p50, p99):',
    ...r.buckets.map((b) => {
      const marks = r.faults.filter((f) => f.atMs >= b.startMs && f.atMs < b.startMs + r.bucketMs).map((f) => ` ◀ ${f.label}`).join('');
      return `  ${(b.startMs / 1_000).toFixed(1).padStart(5)}s ${String(b.ops).padStart(5)} ${String(b.ok).padStart(5)} ${fmtMs(b.p50Ms).padStart(7)} ${fmtMs(b.p99Ms).padStart(8)} ${'█'.repeat(Math.round((b.ops / Math.max(1, ...r.buckets.map((x) => x.ops))) * 30))}${marks}`;
    }),
    'errors by type (and business refusals: out-of-stock, cart-empty):',
    ...(Object.keys(r.errors).length ? Object.entries(r.errors).sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${k}: ${n}`) : ['  (none)']),
    'availability vs consistency:',
    `  orders acknowledged ${r.ordersAcked}; acknowledged orders lost ${r.ordersLost}`,
    `  oversold units ${r.oversold} (on ${r.oversoldSkus} SKUs); inventory below zero ${r.inventoryNegative}`,
    `  stale stock reads ${r.staleReads} of ${r.readsChecked} checked`,
    `  cross-region cart replication (example-level, async): ${r.replication.copies} copies, lag p50 ${fmtMs(r.replication.p50Ms)} p99 ${fmtMs(r.replication.p99Ms)} max ${fmtMs(r.replication.maxMs)}; ${r.replication.missing} not confirmed`,
  ];
  return lines.join('\n');
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** An SVG line chart of `series` over the buckets, faults as vertical lines. */
function chart(r: ShopReport, title: string, series: { label: string; color: string; values: readonly number[] }[], unit: string): string {
  const W = 760, H = 220, L = 50, B = 30, T = 24;
  const total = r.buckets.length * r.bucketMs;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const x = (ms: number): number => L + ((W - L - 10) * ms) / total;
  const y = (v: number): number => H - B - ((H - B - T) * v) / max;
  const paths = series.map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.values.map((v, i) => `${x(r.buckets[i]!.startMs + r.bucketMs / 2).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
  const faults = r.faults.map((f) => `<line x1="${x(f.atMs)}" x2="${x(f.atMs)}" y1="${T}" y2="${H - B}" stroke="#c00" stroke-dasharray="4 3"/><text x="${x(f.atMs) + 3}" y="${T + 10}" font-size="10" fill="#c00">${esc(f.label)}</text>`);
  const legend = series.map((s, i) => `<text x="${L + i * 120}" y="14" font-size="12" fill="${s.color}">■ ${esc(s.label)}</text>`);
  const ticks = [0, 0.5, 1].map((f) => `<text x="${L - 4}" y="${y(max * f) + 4}" font-size="10" text-anchor="end">${Math.round(max * f)}${unit}</text>`);
  const xt = Array.from({ length: 6 }, (_, i) => (total * i) / 5).map((ms) => `<text x="${x(ms)}" y="${H - 12}" font-size="10" text-anchor="middle">${(ms / 1_000).toFixed(1)}s</text>`);
  return `<h2>${esc(title)}</h2><svg width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg"><rect x="${L}" y="${T}" width="${W - L - 10}" height="${H - B - T}" fill="#fafafa" stroke="#ddd"/>${ticks.join('')}${xt.join('')}${paths.join('')}${faults.join('')}${legend.join('')}</svg>`;
}

export function renderHtml(r: ShopReport, title = 'troupe — global e-commerce case study'): string {
  const rows = (o: Readonly<Record<string, number | string>>): string => Object.entries(o).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(String(v))}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:820px}td{padding:2px 12px;border-bottom:1px solid #eee}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>
<h1>${esc(title)}</h1>
${chart(r, 'Throughput (operations per bucket)', [{ label: 'all', color: '#36c', values: r.buckets.map((b) => b.ops) }, { label: 'answered', color: '#393', values: r.buckets.map((b) => b.ok) }], '')}
${chart(r, 'Latency', [{ label: 'p50', color: '#36c', values: r.buckets.map((b) => b.p50Ms) }, { label: 'p99', color: '#c63', values: r.buckets.map((b) => b.p99Ms) }], ' ms')}
<h2>Errors by type (and business refusals: out-of-stock, cart-empty)</h2><table>${rows(Object.fromEntries(Object.entries(r.errors).sort((a, b) => b[1] - a[1]))) || '<tr><td>none</td></tr>'}</table>
<h2>Availability vs consistency</h2><table>${rows({
    'inventory setting': r.setting, 'promises no oversell': r.promisesNoOversell ? 'yes' : 'no', 'answered': `${(r.availability * 100).toFixed(1)}%`,
    'orders acknowledged': r.ordersAcked, 'acknowledged orders lost': r.ordersLost, 'oversold units': r.oversold, 'inventory below zero': r.inventoryNegative,
    'stale stock reads': `${r.staleReads} of ${r.readsChecked}`, 'cart replication lag p50 / p99': `${r.replication.p50Ms} / ${r.replication.p99Ms} ms`,
  })}</table>
<h2>Text report</h2><pre>${esc(formatText(r))}</pre></body></html>`;
}
