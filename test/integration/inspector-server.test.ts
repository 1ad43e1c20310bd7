/**
 * The inspector server over HTTP and WebSocket on 127.0.0.1 (a free port), fed through a MemoryBus:
 * bad input on the stream is counted and ignored; tokens, hosts and sends are guarded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { setup } from 'xstate';
import { defineActor } from '../../framework/actor.ts';
import { InspectorConfigError } from '../../framework/errors.ts';
import { encodeBatch, type WireEvent } from '../../framework/inspector/events.ts';
import { createInspectionPublisher } from '../../framework/inspector/publisher.ts';
import { startInspectorServer, type InspectorServer } from '../../framework/inspector/server.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem } from '../../framework/system.ts';
import { createMemoryBus } from '../../framework/transport/memory.ts';
import { inspectionSubject } from '../../framework/transport/subjects.ts';
import { messages } from '../unit/fixtures/counter.pb.ts';
import { waitFor } from '../helpers/wait-for.ts';

const toggle = setup({}).createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { Inc: 'on' } }, on: { on: { Inc: 'off' } } } });
const Toggle = defineActor({ type: 'toggle', machine: toggle, messages });

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function serve(opts: { token?: string; allowSend?: boolean } = {}): Promise<{ server: InspectorServer; bus: ReturnType<typeof createMemoryBus> }> {
  const bus = createMemoryBus();
  const server = await startInspectorServer({ transport: bus.connect({ name: 'inspector' }), cluster: 'c', ...opts });
  cleanup.push(() => server.close());
  return { server, bus };
}

async function state(server: InspectorServer, token?: string): Promise<{ actors: { actor: string; value?: unknown }[]; malformed: number; received: number }> {
  const res = await fetch(new URL(`/api/state${token ? `?token=${token}` : ''}`, server.url));
  return res.json() as never;
}

describe('inspector server', () => {
  it('counts and ignores malformed events; the good ones in the same batch are kept', async () => {
    const { server, bus } = await serve();
    const pub = bus.connect({ name: 'evil' });
    const good: WireEvent = { v: 1, at: 1, node: 'n1', kind: 'actor.spawned', actor: 'n1/x', actorType: 't' };
    pub.publish(inspectionSubject('c', 'n1'), new TextEncoder().encode('this is not json'));
    pub.publish(inspectionSubject('c', 'n1'), new TextEncoder().encode(JSON.stringify({
      v: 1, node: 'n1', events: [good, { ...good, v: 99 }, { ...good, kind: 'actor.teleported' }, { v: 1, at: 1, node: 'n1', kind: 'actor.snapshot', actor: 5 }],
    })));
    pub.publish(inspectionSubject('c', 'n1'), encodeBatch({ v: 1, node: 'n1', events: [{ ...good, actor: 'n1/y' }] }));
    await waitFor(() => server.stats().received === 2 && server.stats().malformed === 4, { message: () => JSON.stringify(server.stats()) });
    const s = await state(server);
    expect(s.actors.map((a) => a.actor).sort()).toEqual(['n1/x', 'n1/y']);
  });

  it('keeps a bounded history: by count and by bytes, oldest dropped first', async () => {
    const bus = createMemoryBus();
    const server = await startInspectorServer({ transport: bus.connect({ name: 'inspector' }), cluster: 'c', historySize: 1_000, historyBytes: 50_000 });
    cleanup.push(() => server.close());
    const pub = bus.connect({ name: 'p' });
    const big = 'x'.repeat(900);
    for (let i = 0; i < 200; i++) {
      pub.publish(inspectionSubject('c', 'n1'), encodeBatch({ v: 1, node: 'n1', events: [{ v: 1, at: i, node: 'n1', kind: 'actor.stopped', actor: `n1/a${i}`, reason: big }] }));
    }
    await waitFor(() => server.stats().received === 200);
    // ≈ 1 KB per event: 50 KB keep at most ~50 of them (trimmed to 80 % when over)
    expect(server.stats().history).toBeLessThanOrEqual(50);
    expect(server.stats().history).toBeGreaterThanOrEqual(30);
  });

  it('follows a live system through a publisher: spawned, state changes, the chart as SVG', async () => {
    const { server, bus } = await serve();
    const publisher = createInspectionPublisher({ transport: bus.connect({ name: 'pub' }), cluster: 'c', flushIntervalMs: 5 });
    const system = createSystem({ cluster: 'c', node: 'n1', logger: silentLogger(), transport: bus.connect({ name: 'n1' }), inspect: publisher.sink });
    cleanup.push(() => system.shutdown(), () => publisher.close());
    const t = system.spawn(Toggle, { name: 't' });
    t.send({ type: 'Inc', by: 1 });
    await waitFor(async () => (await state(server)).actors.some((a) => a.actor === 'n1/t' && a.value === 'on'));
    const chart = await fetch(new URL('/api/chart/toggle%3Atoggle', server.url));
    expect(chart.status).toBe(200);
    const body = await chart.json() as { svg: string; graph: { id: string } };
    expect(body.graph.id).toBe('toggle');
    expect(body.svg).toContain('data-state="on"');
    expect((await fetch(new URL('/api/chart/nope', server.url))).status).toBe(404);
  });

  it('binds loopback by default; another host needs a token; a wrong or missing token is 401', async () => {
    const bus = createMemoryBus();
    await expect(startInspectorServer({ transport: bus.connect(), cluster: 'c', host: '0.0.0.0' })).rejects.toBeInstanceOf(InspectorConfigError);
    await expect(startInspectorServer({ transport: bus.connect(), cluster: 'c', token: 'short' })).rejects.toThrow(/at least 8/);
    const { server } = await serve({ token: 'open-sesame' });
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    const base = new URL(server.url);
    expect((await fetch(new URL('/?token=open-sesame', base))).status).toBe(200);
    expect((await fetch(new URL('/?token=open-sesamE', base))).status).toBe(401);
    expect((await fetch(new URL('/api/state', base))).status).toBe(401);
    expect((await fetch(new URL('/api/state', base), { headers: { authorization: 'Bearer open-sesame' } })).status).toBe(200);
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://${base.host}/ws?token=nope-nope`);
      ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
      ws.on('open', () => resolve('open'));
      ws.on('error', () => resolve('error'));
    });
    expect(refused).toBe('401');
  });

  it('read-only unless allowSend: a send request is refused; with allowSend it reaches an accepting system', async () => {
    for (const allowSend of [false, true]) {
      const { server, bus } = await serve({ allowSend });
      const publisher = createInspectionPublisher({ transport: bus.connect({ name: 'pub' }), cluster: 'c', flushIntervalMs: 5 });
      const system = createSystem({ cluster: 'c', node: 'n1', logger: silentLogger(), transport: bus.connect({ name: 'n1' }), inspect: publisher.sink });
      cleanup.push(() => system.shutdown(), () => publisher.close());
      publisher.acceptSends(system);
      const t = system.spawn(Toggle, { name: 't' });
      const ws = new WebSocket(`ws://${new URL(server.url).host}/ws`);
      cleanup.push(() => ws.close());
      const replies: { type: string; message?: string; allowSend?: boolean }[] = [];
      ws.on('message', (d) => replies.push(JSON.parse(String(d)) as never));
      await waitFor(() => replies.some((r) => r.type === 'hello'));
      expect(replies.find((r) => r.type === 'hello')!.allowSend).toBe(allowSend);
      ws.send(JSON.stringify({ type: 'send', actor: 'n1/t', event: { type: 'Inc', by: 1 } }));
      if (allowSend) {
        await waitFor(() => system.snapshotOf(t)?.value === 'on');
      } else {
        await waitFor(() => replies.some((r) => r.type === 'error'));
        expect(replies.find((r) => r.type === 'error')!.message).toMatch(/read-only/);
        expect(system.snapshotOf(t)?.value).toBe('off');
      }
    }
  });
});
