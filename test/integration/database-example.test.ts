/**
 * The database case study end to end, embedded (one process, in-process bus, real clock), short:
 * a range leader killed, a node partitioned, a leader paused while 8 clients read and write. The
 * report's invariants: progress made, every fault applied, every range's history linearizable.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../examples/database/main.ts';
import type { InspectionEvent } from '../../framework/index.ts';
import { waitFor } from '../helpers/wait-for.ts';

describe('examples/database (embedded)', () => {
  it('makes progress through three faults and every range stays linearizable', async () => {
    let out = '';
    const dir = mkdtempSync(join(tmpdir(), 'troupe-db-test-'));
    const htmlReport = join(dir, 'report.html');
    const report = await main({ durationMs: 4_000, write: (s) => { out += s; }, tty: false, htmlReport });
    expect(report.faults.map((f) => f.kind)).toEqual(['kill-leader', 'partition', 'pause']);
    expect(report.ok).toBeGreaterThan(100);
    expect(report.ranges).toHaveLength(3);
    for (const r of report.ranges) {
      expect(r.valid).toBe(true);
      expect(r.checked).toBeGreaterThan(30);
    }
    expect(report.linearizable).toBe(true);
    expect(report.timeline.flatMap((t) => t.faults)).toHaveLength(3);
    expect(out).toMatch(/^progress /m);
    expect(out).toMatch(/⚡ .* killed n\d \(leader of r\d\)/);
    expect(out).toMatch(/throughput +\d+ ops\/s/);
    expect(out).toMatch(/latency +p50 [\d.]+ ms, p99 [\d.]+ ms/);
    expect(out).toMatch(/^linearizable: yes, \d+ operations checked$/m);
    const html = readFileSync(htmlReport, 'utf8');
    expect(html).toMatch(/linearizable: yes, \d+ operations checked/);
    expect(html.match(/<svg/g)).toHaveLength(2);
    expect(html).toContain('⚡ kill-leader');
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('stops early when aborted (as on Ctrl-C), drains, and reports what ran', async () => {
    const abort = new AbortController();
    let out = '';
    const running = main({ durationMs: 30_000, faults: [], write: (s) => { out += s; }, tty: false, signal: abort.signal, htmlReport: false });
    await waitFor(() => /progress .* [1-9]\d* ok/.test(out), { timeoutMs: 15_000, message: 'a progress line with acknowledged operations' });
    abort.abort();
    const report = await running;
    expect(report.elapsedMs).toBeLessThan(10_000);
    expect(report.ok).toBeGreaterThan(0);
    expect(report.linearizable).toBe(true);
  }, 60_000);

  it('takes --duration, --faults and --clients from the command line (troupe run database --duration 1500 --faults pause)', async () => {
    const report = await main({ argv: ['--duration', '1500', '--faults', 'pause', '--clients', '2'], write: () => {}, tty: false, htmlReport: false });
    expect(report.elapsedMs).toBeLessThan(5_000);
    expect(report.faults.map((f) => f.kind)).toEqual(['pause']);
    expect(report.linearizable).toBe(true);
    await expect(main({ argv: ['--faults', 'meteor'], write: () => {}, htmlReport: false })).rejects.toThrow(/unknown fault 'meteor'/);
    await expect(main({ argv: ['--duration', '-3'], write: () => {}, htmlReport: false })).rejects.toThrow(/--duration must be a positive whole number/);
  }, 60_000);

  it('feeds an inspection sink (troupe run database --inspect): every range\'s Raft charts and the per-range breakers and bulkheads', async () => {
    const events: InspectionEvent[] = [];
    const report = await main({ durationMs: 1_500, faults: ['kill-leader'], write: () => undefined, tty: false, htmlReport: false, inspect: (e) => events.push(e) });
    expect(report.linearizable).toBe(true);
    const spawned = new Set(events.filter((e) => e.kind === 'actor.spawned').map((e) => (e as { actor: string }).actor));
    for (const r of ['r0', 'r1', 'r2']) {
      expect(spawned).toContain(`client/breaker-${r}`);
      expect(spawned).toContain(`client/bulkhead-${r}`);
      expect([...spawned].filter((a) => a.endsWith(`/raft-${r}`))).toHaveLength(3);
    }
    const leaders = events.filter((e) => e.kind === 'actor.snapshot' && JSON.stringify((e as { value: unknown }).value).includes('"role":"leader"'));
    expect(leaders.length).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('troupe run database: Ctrl-C (SIGINT) drains, prints the report so far and exits 0', async () => {
    const cli = fileURLToPath(new URL('../../framework/cli.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), cli, 'run', 'database'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          out += `${line}\n`;
          if (/^progress .* [1-9]\d* ok/.test(line)) resolve();
        });
        void exited.then(() => reject(new Error(`exited before making progress:\n${out}`)));
      });
      child.kill('SIGINT');
      const [code] = (await Promise.race([
        exited,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no exit 15 s after SIGINT:\n${out}`)), 15_000).unref()),
      ])) as [number | null];
      expect(code).toBe(0);
      expect(out).toMatch(/Ctrl-C: draining the workload/);
      expect(out).toMatch(/^linearizable: yes, \d+ operations checked$/m);
      const html = /^HTML report \(charts\): (.+)$/m.exec(out)?.[1];
      expect(html).toBeDefined();
      rmSync(html!, { force: true });
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
