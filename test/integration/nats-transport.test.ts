import { afterAll, describe, expect, it } from 'vitest';
import { ConnectionError, isConnectionError, isTroupeError } from '../../framework/errors.ts';
import { connectNats } from '../../framework/transport/nats.ts';
import type { Transport, TransportEvent, TransportMsg } from '../../framework/transport/transport.ts';
import { freePort, natsServerScope, requireNatsServer } from '../helpers/nats-server.ts';
import { transportConformance } from '../helpers/transport-conformance.ts';
import { waitFor } from '../helpers/wait-for.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

describe.skipIf(!requireNatsServer())('NATS transport on a real nats-server', () => {
  const servers = natsServerScope();
  const opened: Transport[] = [];
  afterAll(async () => {
    await Promise.allSettled(opened.splice(0).map((t) => t.close()));
    await servers.stopAll();
  });
  const open = async (url: string | string[], extra: Partial<Parameters<typeof connectNats>[0]> = {}): Promise<Transport> => {
    const t = await connectNats({ servers: url, reconnectTimeWaitMs: 50, ...extra });
    opened.push(t);
    return t;
  };

  transportConformance('nats', async () => {
    const srv = await servers.start();
    return { connect: () => connectNats({ servers: srv.url, name: 'conformance' }), cleanup: () => srv.stop() };
  });

  describe('credentials', () => {
    const password = 'S3cret-Pa55word!';
    const wrong = 'Wr0ng-Pa55word?';

    it('connects with the right user/password and never echoes a wrong one', async () => {
      const srv = await servers.start({ user: 'troupe', pass: password });
      const t = await open(srv.url, { user: 'troupe', pass: password });
      const got: string[] = [];
      t.subscribe('auth.ok', (m) => void got.push(dec(m.data)));
      await t.flush();
      t.publish('auth.ok', enc('in'));
      await waitFor(() => got.length === 1);

      const err = await connectNats({ servers: srv.url, user: 'troupe', pass: wrong, timeoutMs: 5_000 }).then(
        () => expect.fail('connected with a wrong password'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectionError);
      const ce = err as ConnectionError;
      expect(ce.message).toContain(srv.url);
      expect(ce.retryable).toBe(true);
      const everything = `${ce.message} ${ce.stack} ${JSON.stringify(ce.fields())} ${String((ce.cause as Error | undefined)?.message)}`;
      expect(everything).not.toContain(wrong);
      expect(everything).not.toContain(password);

      // credentials embedded in a server URL are redacted too
      const url = srv.url.replace('nats://', `nats://troupe:${wrong}@`);
      const err2 = await connectNats({ servers: url, timeoutMs: 5_000 }).then(
        () => expect.fail('connected with a wrong password'),
        (e: unknown) => e,
      );
      expect(isConnectionError(err2)).toBe(true);
      const all2 = `${(err2 as Error).message} ${(err2 as Error).stack} ${String(((err2 as Error).cause as Error | undefined)?.message)}`;
      expect(all2).not.toContain(wrong);
      expect(all2).toContain('***@127.0.0.1');
    });

    it('supports token auth', async () => {
      const token = 'tok-Very-Secret-123';
      const srv = await servers.start({ token });
      const t = await open(srv.url, { token });
      expect(t.status()).toBe('connected');
      const err = await connectNats({ servers: srv.url, token: 'tok-wrong-456', timeoutMs: 5_000 }).then(
        () => expect.fail('connected with a wrong token'),
        (e: unknown) => e,
      );
      expect(isConnectionError(err)).toBe(true);
      expect((err as Error).message).not.toContain('tok-wrong-456');
    });

    it('fails to connect to a port nobody listens on with ConnectionError', async () => {
      const port = await freePort();
      const started = performance.now();
      const err = await connectNats({ servers: `nats://127.0.0.1:${port}`, timeoutMs: 2_000 }).then(
        () => expect.fail('connected to nothing'),
        (e: unknown) => e,
      );
      expect(isConnectionError(err), String(err)).toBe(true);
      expect((err as Error).message).toContain(`127.0.0.1:${port}`);
      expect(performance.now() - started).toBeLessThan(5_000);
    });
  });

  it('survives the server being killed and restarted', async () => {
    const srv = await servers.start();
    const client = await open(srv.url);
    const service = await open(srv.url);
    const events: TransportEvent['type'][] = [];
    client.onEvent((ev) => void events.push(ev.type));

    const held: TransportMsg[] = [];
    service.subscribe('svc.*', (m) => {
      if (m.subject === 'svc.hold') held.push(m);
      else m.respond(enc(`re:${dec(m.data)}`));
    });
    const feed: string[] = [];
    service.subscribe('feed', (m) => void feed.push(dec(m.data)));
    await service.flush();
    expect(dec((await client.request('svc.echo', enc('1'), { timeoutMs: 2_000 })).data)).toBe('re:1');

    // a request in flight when the server dies fails fast with a retryable typed error
    const inflight = client.request('svc.hold', enc('?'), { timeoutMs: 15_000 }).then(
      () => expect.fail('held request was answered'),
      (e: unknown) => e,
    );
    await waitFor(() => held.length === 1);
    const killedAt = performance.now();
    await srv.kill('SIGKILL');
    const err = await inflight;
    expect(isTroupeError(err), String(err)).toBe(true);
    expect((err as ConnectionError).retryable).toBe(true);
    expect(performance.now() - killedAt).toBeLessThan(5_000);
    await waitFor(() => client.status() === 'reconnecting', { message: () => `status ${client.status()}` });

    // a request made while the server is down fails with a typed error too
    const downErr = await client.request('svc.echo', enc('2'), { timeoutMs: 300 }).then(
      () => expect.fail('answered while the server was down'),
      (e: unknown) => e,
    );
    expect(isTroupeError(downErr), String(downErr)).toBe(true);

    await srv.restart();
    await waitFor(() => client.status() === 'connected' && service.status() === 'connected', {
      timeoutMs: 10_000,
      message: () => `client ${client.status()}, service ${service.status()}`,
    });
    expect(events).toEqual(expect.arrayContaining(['disconnected', 'reconnecting', 'reconnected']));

    // subscriptions came back with the connection
    await service.flush();
    expect(dec((await client.request('svc.echo', enc('3'), { timeoutMs: 2_000 })).data)).toBe('re:3');
    client.publish('feed', enc('after'));
    await waitFor(() => feed.includes('after'));
  });

  it('runs on a 3-server cluster: pub/sub and request/reply across servers', async () => {
    const cluster = await servers.startCluster(3);
    expect(cluster.urls).toHaveLength(3);
    const [t0, t2] = [await open(cluster.urls[0]!), await open(cluster.urls[2]!)];
    const got: string[] = [];
    t2.subscribe('across.>', (m) => {
      if (m.reply) m.respond(enc(`from-s3:${dec(m.data)}`));
      else got.push(dec(m.data));
    });
    await t2.flush();
    // interest travels over the routes; wait until s1 knows about it
    await waitFor(
      async () => {
        try {
          await t0.request('across.ping', enc('p'), { timeoutMs: 500 });
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 10_000, message: 'interest propagated across the cluster' },
    );
    const res = await t0.request('across.ping', enc('hello'), { timeoutMs: 2_000 });
    expect(dec(res.data)).toBe('from-s3:hello');
    for (let i = 0; i < 100; i++) t0.publish('across.feed', enc(String(i)));
    await waitFor(() => got.length === 100);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));

    await cluster.kill(1);
    await cluster.restart(1);
    await cluster.stop();
    await cluster.stop();
  });
});
