/**
 * The inspector in headless Chromium (Debian's `chromium`, driven by playwright-core):
 *  1. an embedded run — `troupe run resilience --inspect`: the breaker's chart is drawn and its
 *     highlighted state moves closed → open → half-open → closed as failures are injected; the time
 *     slider shows the chart as it was;
 *  2. a multi-process run over NATS — three Raft node processes publishing inspection events and
 *     `troupe inspect --nats`: one leader is highlighted; its process is SIGKILLed; another node
 *     becomes the highlighted leader.
 * Screenshots go to test-results/. Bad input: a wrong token gets 401.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineActor, defineSupervisor } from '../../framework/actor.ts';
import { createInspectionPublisher } from '../../framework/inspector/publisher.ts';
import { startInspectorServer } from '../../framework/inspector/server.ts';
import { silentLogger } from '../../framework/log.ts';
import { startNodeProcess } from '../../framework/node-process.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import { messages as benchMessages } from '../bench/bench.pb.ts';
import { counterMachine } from '../bench/fixtures.ts';
import { requireChromium } from '../helpers/chromium.ts';
import { natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'framework', 'cli.ts');
const shots = join(root, 'test-results');
const chromiumPath = requireChromium();

/** Start `troupe <args>` and resolve with the process and the inspector URL it prints. */
async function startCli(args: string[], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; url: string; lines: string[] }> {
  const proc = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), cli, ...args], {
    cwd: root, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      lines.push(line);
      const m = /^inspector: (http:\/\/\S+)/.exec(line);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`troupe ${args.join(' ')} exited (${code}) before serving:\n${lines.join('\n')}`)));
  });
  return { proc, url, lines };
}

const withParam = (url: string, key: string, value: string): string => {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
};

describe.skipIf(!chromiumPath)('inspector in the browser', () => {
  let browser: Browser;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    browser = await chromium.launch({ executablePath: chromiumPath!, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await browser?.close();
  });

  it('embedded resilience run: the breaker chart moves closed → open → halfOpen → closed, and the slider goes back in time', async () => {
    const run = await startCli(['run', 'resilience', '--inspect', '--wait', '--pace', '1500']);
    procs.push(run.proc);
    const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    // record every state of the breaker chart that becomes highlighted, in order
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { __highlighted: string[] }).__highlighted = seen;
      new MutationObserver((records) => {
        for (const r of records) {
          const el = r.target as Element;
          const path = el.getAttribute?.('data-state');
          if (!path || !['closed', 'open', 'halfOpen'].includes(path)) continue;
          // the UI toggles `active` only when it changes, so a record whose old value lacks it is an
          // activation (read the old value: several records may be delivered after the fact)
          if (!(r.oldValue ?? '').split(/\s+/).includes('active')) seen.push(path);
        }
      }).observe(document, { subtree: true, attributes: true, attributeFilter: ['class'], attributeOldValue: true });
    });
    await page.goto(withParam(run.url, 'select', 'shop/breaker-payments'));
    await page.locator('#chart svg g.state[data-state="closed"].active').waitFor({ timeout: 15_000 });
    expect(await page.locator('#chart svg g.edge[data-transition]').count()).toBeGreaterThan(5);
    await page.waitForFunction(() => {
      const seen = (window as unknown as { __highlighted: string[] }).__highlighted.join(' ');
      return /closed .*open .*halfOpen .*closed/.test(seen);
    }, undefined, { timeout: 20_000 }).catch(async (e: Error) => { throw new Error(`${e.message}; highlighted: ${(await page.evaluate(() => (window as unknown as { __highlighted: string[] }).__highlighted)).join(' ')}; log: ${run.lines.join(' / ')}`); });
    const seen = await page.evaluate(() => (window as unknown as { __highlighted: string[] }).__highlighted);
    expect(seen[0]).toBe('closed');
    expect(seen.join(' ')).toMatch(/closed open halfOpen closed/);
    await page.screenshot({ path: join(shots, 'inspector-resilience-closed.png') });
    // the tree shows the actors with their type and state
    await expect.poll(() => page.locator('.row.actor[data-actor="shop/payments"]').count()).toBe(1);
    expect(await page.locator('.row.actor[data-actor="shop/breaker-payments"] .type').textContent()).toBe('circuit-breaker');

    // time travel: put the slider on the breaker's snapshot that opened the circuit
    const openAt = await page.evaluate(() => {
      const s = (window as unknown as { __inspector: { events: { kind: string; actor?: string; value?: unknown }[] } }).__inspector;
      return s.events.findIndex((e) => e.kind === 'actor.snapshot' && e.actor === 'shop/breaker-payments' && e.value === 'open');
    });
    expect(openAt).toBeGreaterThan(0);
    await page.locator('#slider').evaluate((el, v) => {
      (el as HTMLInputElement).value = String(v);
      el.dispatchEvent(new Event('input'));
    }, openAt);
    await page.locator('#chart svg g.state[data-state="open"].active').waitFor({ timeout: 10_000 });
    expect(await page.locator('#cursorLabel').textContent()).toContain(`event ${openAt + 1}/`);
    expect(await page.locator('#chart svg g.state[data-state="closed"].active').count()).toBe(0);
    // the open period's after timer, as it was then: all 300 ms left on the arrow to halfOpen
    await expect.poll(() => page.locator('#chart svg text.countdown').textContent()).toBe('⏱ 300 ms');
    await page.screenshot({ path: join(shots, 'inspector-resilience-slider.png') });
    // a later moment of the open period: less time left
    const later = await page.evaluate((from) => {
      const evs = (window as unknown as { __inspector: { events: { kind: string; actor?: string; at: number }[] } }).__inspector.events;
      for (let i = from + 1; i < evs.length; i++) {
        if (evs[i]!.kind === 'actor.snapshot' && evs[i]!.actor === 'shop/breaker-payments') return -1; // left open first
        if (evs[i]!.at > evs[from]!.at) return i;
      }
      return -1;
    }, openAt);
    expect(later).toBeGreaterThan(openAt);
    await page.locator('#slider').evaluate((el, v) => {
      (el as HTMLInputElement).value = String(v);
      el.dispatchEvent(new Event('input'));
    }, later);
    await expect.poll(async () => Number(/(\d+) ms/.exec((await page.locator('#chart svg text.countdown').textContent()) ?? '')?.[1] ?? NaN))
      .toBeLessThan(300);
    await page.close();
    run.proc.kill('SIGINT');
  }, 60_000);

  it('a wrong token gets 401 on the page, the API and the WebSocket', async () => {
    const run = await startCli(['run', 'ping-pong', '--inspect', '--token', 'sesame-sesame']);
    procs.push(run.proc);
    await checkToken(run.url);
    run.proc.kill('SIGINT');
  }, 30_000);

  async function checkToken(url: string): Promise<void> {
    const good = new URL(url);
    expect(good.searchParams.get('token')).toBe('sesame-sesame');
    expect((await fetch(good)).status).toBe(200);
    const bad = withParam(url, 'token', 'not-the-token');
    expect((await fetch(bad)).status).toBe(401);
    const none = new URL(url);
    none.search = '';
    expect((await fetch(none)).status).toBe(401);
    expect((await fetch(new URL('/api/state', none))).status).toBe(401);
    expect((await fetch(new URL('/api/state', good).toString() + good.search)).status).toBe(200);
    const page = await browser.newPage();
    const ws = await page.evaluate(async (u) => {
      const attempt = (target: string): Promise<string> => new Promise((resolve) => {
        const s = new WebSocket(target);
        s.onopen = () => { s.close(); resolve('open'); };
        s.onerror = () => resolve('refused');
      });
      const base = new URL(u);
      const wsUrl = `ws://${base.host}/ws`;
      return [await attempt(`${wsUrl}?token=not-the-token`), await attempt(`${wsUrl}${base.search}`)];
    }, url);
    expect(ws).toEqual(['refused', 'open']);
    await page.close();
  }

  it('1,000 actors on 5 nodes: the tree stays virtualized, filters narrow it, a deep actor is selectable', async () => {
    const bus = createMemoryBus();
    const publisher = createInspectionPublisher({ transport: bus.connect({ name: 'publisher' }), cluster: 'scale' });
    const server = await startInspectorServer({ transport: bus.connect({ name: 'inspector' }), cluster: 'scale' });
    const Counter = defineActor({ type: 'counter', machine: counterMachine, messages: [benchMessages] });
    const Gauge = defineActor({ type: 'gauge', machine: counterMachine, messages: [benchMessages] });
    // per node: 19 supervisors, each with 5 counters and 4 gauges, + 10 lone gauges = 200 actors
    const Group = defineSupervisor({
      type: 'group', strategy: 'one-for-one',
      children: [...Array.from({ length: 5 }, (_, i) => ({ def: Counter, name: `c${i}` })), ...Array.from({ length: 4 }, (_, i) => ({ def: Gauge, name: `g${i}` }))],
    });
    const systems: ActorSystem[] = [];
    try {
      for (let n = 1; n <= 5; n++) {
        const system = createSystem({ cluster: 'scale', node: `n${n}`, logger: silentLogger(), transport: bus.connect({ name: `n${n}` }), inspect: publisher.sink });
        systems.push(system);
        for (let g = 0; g < 19; g++) system.spawn(Group, { name: `group${g}` });
        for (let g = 0; g < 10; g++) system.spawn(Gauge, { name: `lone${g}` });
      }
      expect(systems.reduce((k, s) => k + s.actors().length, 0)).toBe(1_000);
      const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
      await page.goto(server.url);
      await expect.poll(() => page.locator('#counts').textContent(), { timeout: 20_000 }).toMatch(/^5 nodes · 1005 actors/); // + 5 root guardians
      // virtualized: a screenful of rows in the DOM, not 1,005
      const inDom = await page.locator('#tree .row').count();
      expect(inDom).toBeGreaterThan(20);
      expect(inDom).toBeLessThan(120);
      const t0 = Date.now();
      await page.locator('#nodeFilter').selectOption('n3');
      await page.locator('#typeFilter').selectOption('counter');
      await expect.poll(() => page.locator('#tree .row.actor').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-actor')!)))
        .toSatisfy((list: string[]) => list.length > 10 && list.every((a) => /^n3\/group\d+\/c\d$/.test(a)));
      expect(Date.now() - t0).toBeLessThan(5_000);
      // the filtered list holds exactly n3's 95 counters and its node row
      expect(await page.evaluate(() => document.querySelector('#tree .spacer')!.getBoundingClientRect().height)).toBe(96 * 22);
      await page.locator('#tree').evaluate((el) => { el.scrollTop = el.scrollHeight; });
      await page.locator('.row.actor[data-actor="n3/group18/c4"]').click();
      await page.locator('#chart svg g.state.depth-0.active').waitFor({ timeout: 10_000 });
      expect(await page.locator('#chartTitle').textContent()).toContain('n3/group18/c4');
      await page.screenshot({ path: join(shots, 'inspector-1000-actors.png') });
      await page.close();
    } finally {
      await Promise.all(systems.map((s) => s.shutdown()));
      publisher.close();
      await server.close();
    }
  }, 60_000);

  describe.skipIf(!requireNatsServer())('over NATS', () => {
    const servers = natsServerScope();
    const data = mkdtempSync(join(tmpdir(), 'troupe-inspect-raft-'));
    afterAll(async () => {
      await servers.stopAll();
      rmSync(data, { recursive: true, force: true });
    });

    it('3 Raft node processes: one leader highlighted; kill it; another becomes the highlighted leader', async () => {
      const srv = await servers.start();
      const inspector = await startCli(['inspect', '--nats', srv.url, '--cluster', 'raftkv']);
      procs.push(inspector.proc);
      const nodes = ['a', 'b', 'c'];
      const byNode = new Map<string, ChildProcess>();
      await Promise.all(nodes.map(async (node) => {
        const p = await startNodeProcess({
          entry: join(root, 'examples', 'raft-cluster', 'node.ts'),
          env: { TROUPE_NATS_URL: srv.url, TROUPE_NODE: node, TROUPE_VOTERS: nodes.map((n) => `${n}/raft`).join(','), TROUPE_DATA: data, TROUPE_INSPECT: '1' },
        });
        byNode.set(node, p);
        procs.push(p);
      }));
      const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
      await page.goto(inspector.url);
      const leaders = (p: Page): Promise<string[]> => p.locator('.row.actor:not(.node-down):not(.stopped)').evaluateAll((rows) =>
        rows.filter((r) => (r.getAttribute('data-state') ?? '').split(' ').includes('role.leader')).map((r) => r.getAttribute('data-actor')!));
      await expect.poll(() => leaders(page), { timeout: 20_000 }).toHaveLength(1);
      const [first] = await leaders(page);
      expect(first).toMatch(/^[abc]\/raft$/);
      await page.locator(`.row.actor[data-actor="${first}"]`).click();
      await page.locator('#chart svg g.state[data-state="role.leader"].active').waitFor({ timeout: 15_000 });
      expect(await page.locator('#chart svg g.state.active[data-state^="role."]').evaluateAll((els) => els.map((e) => e.getAttribute('data-state'))))
        .toEqual(['role.leader']);
      await page.screenshot({ path: join(shots, 'inspector-raft-leader.png') });

      const victim = first!.slice(0, first!.indexOf('/'));
      byNode.get(victim)!.kill('SIGKILL');
      // the dead node is marked down; exactly one live node is the leader, and it is another one
      await page.locator(`.row.node.down[data-node="${victim}"]`).waitFor({ timeout: 20_000 });
      await waitFor(async () => {
        const now = await leaders(page);
        return now.length === 1 && now[0] !== first;
      }, { timeoutMs: 20_000, message: 'a new leader on a live node' });
      const [second] = await leaders(page);
      await page.locator(`.row.actor[data-actor="${second}"]`).click();
      await page.locator('#chart svg g.state[data-state="role.leader"].active').waitFor({ timeout: 15_000 });
      expect(await page.locator('#chartTitle').textContent()).toContain(second!);
      await page.screenshot({ path: join(shots, 'inspector-raft-new-leader.png') });
      await page.close();
      inspector.proc.kill('SIGINT');
    }, 90_000);
  });
});
