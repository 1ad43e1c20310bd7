/**
 * The actor runtime over a real nats-server: remote tell/ask/death watch between two systems, one
 * subscription per node however many actors it hosts, the server killed and restarted while actors
 * talk, credentials kept out of the logs, and the two-nodes example across OS processes.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ActorFailedError, AskTimeoutError, ConnectionError, NoRespondersError, SystemShutdownError, TransportClosedError,
} from '../../framework/errors.ts';
import { silentLogger } from '../../framework/log.ts';
import { createSystem, type ActorSystem } from '../../framework/system.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import { main as twoNodes } from '../../examples/two-nodes/main.ts';
import { Ponger } from '../../examples/ping-pong.ts';
import { messages as pingpongMessages, type Pong } from '../../examples/pingpong.pb.ts';
import { freePort, natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { waitFor } from '../helpers/wait-for.ts';
import { Counter, Silent } from '../unit/fixtures/actors.ts';
import type { Count } from '../unit/fixtures/counter.pb.ts';

describe.skipIf(!requireNatsServer())('actor systems over a real nats-server', () => {
  const servers = natsServerScope();
  const systems: ActorSystem[] = [];
  afterAll(async () => {
    await Promise.allSettled(systems.splice(0).map((s) => s.shutdown()));
    await servers.stopAll();
  });

  const system = async (url: string, node: string, extra: Parameters<typeof createSystem>[0] = {}): Promise<ActorSystem> => {
    const s = createSystem({
      cluster: 'it', node, logger: silentLogger(), transport: await connectNats({ servers: url, name: node, reconnectTimeWaitMs: 50 }),
      heartbeatIntervalMs: 100, heartbeatTimeoutMs: 200, ...extra,
    });
    systems.push(s);
    await s.ready();
    return s;
  };

  it('remote tell, ask and errors between two systems', async () => {
    const srv = await servers.start();
    const a = await system(srv.url, 'a');
    const b = await system(srv.url, 'b');
    a.spawn(Counter, { name: 'local' }); // a learns the counter schema
    const c = b.spawn(Counter, { name: 'c' });
    for (let i = 0; i < 100; i++) a.ref(c.address).send({ type: 'Inc', by: 1 });
    await waitFor(() => (b.snapshotOf(c)?.context as { n: number } | undefined)?.n === 100, { timeoutMs: 5_000 });
    const count = await a.ask<Count>(c.address, { type: 'Get' }, { timeoutMs: 2_000 });
    expect(count.n).toBe(100);

    await expect(a.ask('b/ghost', { type: 'Get' }, { timeoutMs: 2_000 })).rejects.toBeInstanceOf(NoRespondersError);
    const t0 = Date.now();
    await expect(a.ask('nobody/c', { type: 'Get' }, { timeoutMs: 5_000 })).rejects.toBeInstanceOf(NoRespondersError);
    expect(Date.now() - t0).toBeLessThan(2_000); // no-responders is fast, not a timeout
    await expect(a.ask(c.address, { type: 'Boom' }, { timeoutMs: 2_000 })).rejects.toBeInstanceOf(ActorFailedError);
  });

  it('death watch across nodes: on stop, and when the other node goes away', async () => {
    const srv = await servers.start();
    const a = await system(srv.url, 'wa', { messages: [pingpongMessages] });
    const b = await system(srv.url, 'wb');
    const p1 = b.spawn(Ponger, { name: 'p1' });
    b.spawn(Ponger, { name: 'p2' });
    const stopped = a.watch(p1.address);
    const gone = a.watch('wb/p2');
    const missing = a.watch('wb/never');
    expect(await missing).toMatchObject({ actor: 'wb/never', reason: 'not-found' });
    // a barrier: a's Watch messages and this ask go to b's one subscription in publish order
    await a.ask(p1.address, { type: 'Ping', n: 1 }, { timeoutMs: 2_000 });
    b.stop(p1);
    expect(await stopped).toMatchObject({ actor: 'wb/p1', reason: 'stopped' });
    await b.shutdown();
    // graceful shutdown notifies remote watchers directly
    expect(await gone).toMatchObject({ actor: 'wb/p2', reason: 'stopped' });
  });

  it('holds ONE subscription per node, however many actors it hosts', async () => {
    const http = await freePort();
    const srv = await servers.start({ config: `http: "127.0.0.1:${http}"` });
    const a = await system(srv.url, 'many');
    for (let i = 0; i < 500; i++) a.spawn(Ponger, { name: `p${i}` });
    await a.ready();
    const res = await fetch(`http://127.0.0.1:${http}/connz?subs=1`);
    const connz = (await res.json()) as { connections: Array<{ name?: string; subscriptions_list?: string[] }> };
    const mine = connz.connections.find((c) => c.name === 'many');
    expect(mine?.subscriptions_list?.filter((s) => s.startsWith('troupe.'))).toEqual(['troupe.it.many.>']);
    const pong = await a.ask<Pong>('many/p499', { type: 'Ping', n: 3 });
    expect(pong.n).toBe(3);
  });

  it('survives the server being killed and restarted while actors talk', async () => {
    const srv = await servers.start();
    const a = await system(srv.url, 'ka');
    const b = await system(srv.url, 'kb');
    a.spawn(Counter, { name: 'local' });
    const c = b.spawn(Counter, { name: 'c' });
    b.spawn(Silent, { name: 'silent' });
    const events: string[] = [];
    // asks in flight when the server dies (to an actor that never replies, so they are surely in
    // flight) fail with typed errors — never hang, never crash the process
    const inFlight = Array.from({ length: 20 }, () => a.ask('kb/silent', { type: 'Get' }, { timeoutMs: 3_000 }).then(
      () => 'ok', (e: unknown) => (e as Error).constructor.name,
    ));
    await a.ready();
    await srv.kill('SIGKILL');
    const outcomes = await Promise.all(inFlight);
    for (const o of outcomes) {
      expect([AskTimeoutError.name, ConnectionError.name, NoRespondersError.name, TransportClosedError.name]).toContain(o);
    }
    // tells while disconnected are buffered by the client or dead-lettered, never thrown
    a.ref(c.address).send({ type: 'Inc', by: 1 });
    await srv.restart();
    // after reconnect, tells and asks work again
    await waitFor(async () => {
      a.ref(c.address).send({ type: 'Inc', by: 1 });
      try {
        const r = await a.ask<Count>(c.address, { type: 'Get' }, { timeoutMs: 300 });
        events.push(`n=${r.n}`);
        return r.n >= 1;
      } catch {
        return false;
      }
    }, { timeoutMs: 15_000, intervalMs: 100 });
    expect(events.length).toBeGreaterThan(0);
  });

  it('shutdown fails pending remote asks with SystemShutdownError', async () => {
    const srv = await servers.start();
    const a = await system(srv.url, 'sa');
    const b = await system(srv.url, 'sb');
    a.spawn(Counter, { name: 'local' });
    b.spawn(Silent, { name: 'slow' }); // accepts Get, never replies
    const pending = a.ask('sb/slow', { type: 'Get' }, { timeoutMs: 5_000 }).catch((e: unknown) => e);
    await a.ready();
    await a.shutdown();
    expect(await pending).toBeInstanceOf(SystemShutdownError);
  });

  it('never logs credentials', async () => {
    const password = 'Very-S3cret-pw';
    const srv = await servers.start({ user: 'app', pass: password });
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const logger = pino({ level: 'trace' }, sink);
    const s = createSystem({
      cluster: 'it', node: 'cred', logger, transport: await connectNats({ servers: srv.url, user: 'app', pass: password }),
    });
    systems.push(s);
    s.spawn(Ponger, { name: 'p' });
    await s.ask('cred/p', { type: 'Ping', n: 1 });
    s.ref('cred/ghost').send({ type: 'Ping', n: 1 }); // a dead letter: logged
    await srv.kill('SIGKILL');
    await srv.restart();
    await waitFor(() => lines.some((l) => l.includes('reconnected')), { timeoutMs: 10_000 });
    await s.shutdown();
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.join('\n')).not.toContain(password);
  });

  it('two OS processes: remote tell, ask, and death watch when the other process is killed', async () => {
    const srv = await servers.start();
    const lines: string[] = [];
    const result = await twoNodes({ nats: srv.url, say: (l) => lines.push(l), rally: 50 });
    expect(result.rally).toBe(50);
    expect(result.askedN).toBe(7);
    expect(result.terminated).toMatchObject({ actor: 'node-b/ponger', reason: 'node-unreachable' });
    expect(result.detectMs).toBeLessThan(5_000);
    expect(lines.join('\n')).toMatch(/fails fast with NoRespondersError/);
  }, 60_000);
});
