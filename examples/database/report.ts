/**
 * The database run's progress bar and final report: throughput, latency p50/p99 overall and over
 * time with the faults marked, errors by type, and per range the linearizability checker's verdict
 * on the recorded history.
 */
import { checkLinearizable } from '../../framework/sim/linearizability.ts';
import { registerModel } from '../../framework/sim/models.ts';
import type { Operation } from '../../framework/sim/history.ts';
import type { AppliedFault } from './faults.ts';
import { rangeOf, type Topology } from './topology.ts';
import type { OpSample } from './workload.ts';

/** The checker's verdict on one range's history. */
export interface RangeVerdict {
  readonly range: string;
  readonly valid: boolean | 'unknown';
  /** Operations searched (ok and info; fail operations are dropped). */
  readonly checked: number;
  /** Why not, when `valid` is false. */
  readonly message?: string;
}

/** One slice of the run's timeline. */
export interface TimelineRow {
  readonly fromMs: number;
  readonly ok: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Faults applied in this slice. */
  readonly faults: readonly string[];
}

export interface DatabaseReport {
  readonly title: string;
  readonly elapsedMs: number;
  readonly operations: number;
  readonly ok: number;
  /** Certainly not applied (open breaker, full bulkhead, failed read). */
  readonly failed: number;
  /** Writes without an answer: may or may not have been applied. */
  readonly indeterminate: number;
  /** Acknowledged operations per second. */
  readonly throughputPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly timeline: readonly TimelineRow[];
  readonly errors: Readonly<Record<string, number>>;
  readonly faults: readonly AppliedFault[];
  readonly ranges: readonly RangeVerdict[];
  /** Every range's history is linearizable. */
  readonly linearizable: boolean;
  readonly checked: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Check each range's history and summarise the samples. `maxSteps` bounds the checker's search per range. */
export function buildReport(input: {
  title: string; topology: Topology; samples: readonly OpSample[]; operations: readonly Operation[];
  faults: readonly AppliedFault[]; elapsedMs: number; maxSteps?: number;
}): DatabaseReport {
  const { samples, topology } = input;
  const okLatencies = samples.filter((s) => s.outcome === 'ok').map((s) => s.latencyMs).sort((a, b) => a - b);
  const errors: Record<string, number> = {};
  for (const s of samples) if (s.error !== undefined) errors[s.error] = (errors[s.error] ?? 0) + 1;
  const sliceMs = Math.max(250, Math.ceil(input.elapsedMs / 20 / 250) * 250);
  const timeline: TimelineRow[] = [];
  for (let from = 0; from < input.elapsedMs; from += sliceMs) {
    const inSlice = samples.filter((s) => s.atMs >= from && s.atMs < from + sliceMs);
    if (inSlice.length === 0 && from + sliceMs > input.elapsedMs) break; // an empty last sliver
    const lat = inSlice.filter((s) => s.outcome === 'ok').map((s) => s.latencyMs).sort((a, b) => a - b);
    timeline.push({
      fromMs: from, ok: lat.length, errors: inSlice.length - lat.length, p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99),
      faults: input.faults.filter((f) => f.atMs >= from && f.atMs < from + sliceMs).map((f) => `${f.kind} ${f.node}`),
    });
  }
  const ranges = topology.ranges.map((r): RangeVerdict => {
    const ops = input.operations.filter((o) => rangeOf(topology, o.key).id === r.id);
    const result = checkLinearizable(ops, registerModel(), { maxSteps: input.maxSteps ?? 5_000_000 });
    return { range: r.id, valid: result.valid, checked: result.checked, ...(result.valid === false ? { message: result.witness.message } : {}) };
  });
  const ok = okLatencies.length;
  return {
    title: input.title, elapsedMs: input.elapsedMs, operations: samples.length, ok,
    failed: samples.filter((s) => s.outcome === 'fail').length, indeterminate: samples.filter((s) => s.outcome === 'info').length,
    throughputPerSec: input.elapsedMs > 0 ? (ok * 1_000) / input.elapsedMs : 0,
    p50Ms: percentile(okLatencies, 0.5), p99Ms: percentile(okLatencies, 0.99), timeline, errors, faults: input.faults, ranges,
    linearizable: ranges.every((r) => r.valid === true), checked: ranges.reduce((n, r) => n + r.checked, 0),
  };
}

const verdict = (valid: boolean | 'unknown'): string => (valid === true ? 'yes' : valid === false ? 'NO' : 'undecided (search budget exhausted)');
const ms = (v: number): string => `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;

/** The report as text. */
export function formatReport(r: DatabaseReport): string {
  const lines = [
    `── ${r.title} ──`,
    `operations  ${r.operations} in ${(r.elapsedMs / 1_000).toFixed(1)} s: ${r.ok} ok, ${r.failed} failed (not applied), ${r.indeterminate} indeterminate`,
    `throughput  ${r.throughputPerSec.toFixed(0)} ops/s acknowledged`,
    `latency     p50 ${ms(r.p50Ms)}, p99 ${ms(r.p99Ms)} (acknowledged operations)`,
    '',
    '    time    ok   err    p50    p99   fault',
    ...r.timeline.map((t) => `${(t.fromMs / 1_000).toFixed(1).padStart(6)} s ${String(t.ok).padStart(5)} ${String(t.errors).padStart(5)} ${ms(t.p50Ms).padStart(6)} ${ms(t.p99Ms).padStart(6)}   ${t.faults.map((f) => `⚡ ${f}`).join(', ')}`),
    '',
    `errors by type: ${Object.keys(r.errors).length === 0 ? 'none' : Object.entries(r.errors).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `faults: ${r.faults.length === 0 ? 'none' : ''}`,
    ...r.faults.map((f) => `  ${(f.atMs / 1_000).toFixed(1).padStart(5)} s  ${f.description}`),
    'linearizability, per range (each range is its own Raft group):',
    ...r.ranges.map((v) => `  ${v.range}: linearizable: ${verdict(v.valid)}, ${v.checked} operations checked${v.message ? `\n    ${v.message}` : ''}`),
    `linearizable: ${r.linearizable ? 'yes' : 'NO'}, ${r.checked} operations checked`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * A progress display: on a TTY one bar redrawn in place, otherwise a plain line every `everyMs`.
 * `update` takes the elapsed time and the counts so far; `finish` ends the bar's line.
 */
export function createProgress(options: { durationMs: number; write: (s: string) => void; tty: boolean; everyMs?: number }): {
  update(elapsedMs: number, counts: { ok: number; errors: number }, note?: string): void; finish(): void;
} {
  const everyMs = options.everyMs ?? 2_000;
  let lastLineMs = -everyMs;
  let drawn = false;
  return {
    update(elapsedMs, counts, note) {
      const frac = Math.min(1, elapsedMs / options.durationMs);
      const rate = elapsedMs > 0 ? Math.round((counts.ok * 1_000) / elapsedMs) : 0;
      const text = `${(elapsedMs / 1_000).toFixed(1)}/${(options.durationMs / 1_000).toFixed(0)} s  ${counts.ok} ok  ${counts.errors} errors  ${rate} ops/s${note ? `  ${note}` : ''}`;
      if (options.tty) {
        const width = 30;
        const filled = Math.round(frac * width);
        options.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(frac * 100)).padStart(3)}%  ${text}\x1b[K`);
        drawn = true;
      } else if (elapsedMs - lastLineMs >= everyMs) {
        lastLineMs = elapsedMs;
        options.write(`progress ${String(Math.round(frac * 100)).padStart(3)}%  ${text}\n`);
      }
    },
    finish() {
      if (drawn) options.write('\n');
      drawn = false;
    },
  };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One SVG line chart over the timeline, with a dashed red line at each fault. */
function svgChart(r: DatabaseReport, series: ReadonlyArray<{ label: string; color: string; value: (t: TimelineRow) => number }>, unit: string): string {
  const w = 720, h = 200, left = 50, bottom = 24, top = 10;
  const rows = r.timeline;
  const max = Math.max(1, ...rows.flatMap((t) => series.map((s) => s.value(t))));
  const span = Math.max(1, r.elapsedMs);
  const x = (ms: number): number => left + ((w - left - 10) * ms) / span;
  const y = (v: number): number => top + (h - top - bottom) * (1 - v / max);
  const lines = series.map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${rows.map((t) => `${x(t.fromMs).toFixed(1)},${y(s.value(t)).toFixed(1)}`).join(' ')}"/>`);
  const faults = r.faults.map((f) => `<line x1="${x(f.atMs)}" x2="${x(f.atMs)}" y1="${top}" y2="${h - bottom}" stroke="#c00" stroke-dasharray="4 3"/><text x="${x(f.atMs) + 3}" y="${top + 10}" fill="#c00">⚡ ${esc(f.kind)} ${esc(f.node)}</text>`);
  const legend = series.map((s, i) => `<text x="${left + 10 + i * 120}" y="${h - 4}" fill="${s.color}">■ ${esc(s.label)}</text>`);
  return `<svg width="${w}" height="${h}" font-family="monospace" font-size="11"><line x1="${left}" y1="${h - bottom}" x2="${w - 10}" y2="${h - bottom}" stroke="#888"/><line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="#888"/><text x="4" y="${top + 8}">${Math.round(max)} ${esc(unit)}</text><text x="${w - 60}" y="${h - bottom + 12}">${(span / 1_000).toFixed(1)} s</text>${lines.join('')}${faults.join('')}${legend.join('')}</svg>`;
}

/** The report as a self-contained HTML page: throughput and latency over time with the faults marked, and the tables. */
export function formatHtmlReport(r: DatabaseReport): string {
  const sliceS = r.timeline.length > 1 ? (r.timeline[1]!.fromMs - r.timeline[0]!.fromMs) / 1_000 : 1;
  const row = (cells: readonly (string | number)[]): string => `<tr>${cells.map((c) => `<td>${esc(String(c))}</td>`).join('')}</tr>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#1f2933}td,th{padding:2px 10px;text-align:left}table{border-collapse:collapse}tr:nth-child(even){background:#f3f4f6}.yes{color:#070}.no{color:#c00}</style></head><body>
<h1>${esc(r.title)}</h1>
<p>${r.operations} operations in ${(r.elapsedMs / 1_000).toFixed(1)} s: ${r.ok} ok, ${r.failed} failed (not applied), ${r.indeterminate} indeterminate —
throughput <b>${r.throughputPerSec.toFixed(0)} ops/s</b>, latency p50 <b>${ms(r.p50Ms)}</b>, p99 <b>${ms(r.p99Ms)}</b>.</p>
<p class="${r.linearizable ? 'yes' : 'no'}"><b>linearizable: ${r.linearizable ? 'yes' : 'NO'}, ${r.checked} operations checked</b></p>
<h2>Throughput</h2>${svgChart(r, [{ label: 'ok ops/s', color: '#2563eb', value: (t) => t.ok / sliceS }, { label: 'errors/s', color: '#d97706', value: (t) => t.errors / sliceS }], 'ops/s')}
<h2>Latency</h2>${svgChart(r, [{ label: 'p50', color: '#059669', value: (t) => t.p50Ms }, { label: 'p99', color: '#7c3aed', value: (t) => t.p99Ms }], 'ms')}
<h2>Linearizability per range</h2><table><tr><th>range</th><th>verdict</th><th>operations checked</th></tr>${r.ranges.map((v) => row([v.range, verdict(v.valid), v.checked])).join('')}</table>
<h2>Faults</h2><table><tr><th>at</th><th>fault</th></tr>${r.faults.map((f) => row([`${(f.atMs / 1_000).toFixed(1)} s`, f.description])).join('')}</table>
<h2>Errors by type</h2><table><tr><th>error</th><th>count</th></tr>${Object.entries(r.errors).map(([k, v]) => row([k, v])).join('')}</table>
</body></html>
`;
}
