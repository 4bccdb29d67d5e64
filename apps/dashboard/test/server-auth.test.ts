// The dashboard server's security defaults, against a stand-in coordinator that enforces a read
// token: the server holds no token and adds none; /api passes the browser's own header (event
// stream included); /queues (BullMQ's board, which reads Redis itself) asks the coordinator
// whether the visitor's token may read, via HTTP Basic (browsers can send it on navigation).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboardServer, tokenFromAuthorization, type DashboardServer } from '../src/server.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const READ_TOKEN = 'r3ad-token';

describe('dashboard server: tokens', () => {
  const prefix = `stride-dash-auth-${process.pid}-${Date.now()}`;
  let upstream: Server;
  let upstreamUrl: string;
  let up = true;
  const seen: { url: string; authorization?: string }[] = [];
  let dist: string;
  let server: DashboardServer;

  beforeAll(async () => {
    // The coordinator's rule with STRIDE_READ_TOKEN set: every GET but /healthz needs the token.
    upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push({ url: req.url!, authorization: req.headers.authorization });
      if (!up) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"service_unavailable","message":"down"}}');
        return;
      }
      if (req.url !== '/healthz' && req.headers.authorization !== `Bearer ${READ_TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"GET needs a token"}}');
        return;
      }
      if (req.url?.startsWith('/api/events')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end('event: step\ndata: {"step":1}\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.url }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
    dist = mkdtempSync(join(tmpdir(), 'stride-dash-auth-'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Stride</title>');
    server = await startDashboardServer({ apiUrl: upstreamUrl, port: 0, distDir: dist, redisUrl: REDIS_URL, prefix, queueRefreshMs: 60_000, boardAuthCacheMs: 1_500 });
  });

  afterAll(async () => {
    await server?.close();
    await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dist, { recursive: true, force: true });
  });

  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  it('binds to 127.0.0.1 unless told otherwise', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((server.app.server.address() as { address: string }).address).toBe('127.0.0.1');
  });

  it('adds no token of its own: a visitor without one gets the coordinator\'s 401', async () => {
    seen.length = 0;
    const r = await fetch(`${server.url}/api/jobs`);
    expect(r.status).toBe(401);
    expect(seen.at(-1)).toEqual({ url: '/api/jobs', authorization: undefined });
  });

  it('passes the browser\'s bearer token on, for calls and for the event stream', async () => {
    const jobs = await fetch(`${server.url}/api/jobs`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    expect(jobs.status).toBe(200);
    const events = await fetch(`${server.url}/api/events?job=x`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    expect(events.status).toBe(200);
    expect(await events.text()).toContain('event: step');
    expect(seen.find((s) => s.url === '/api/events?job=x')?.authorization).toBe(`Bearer ${READ_TOKEN}`);
  });

  it('/queues without a token: a 401 with a Basic challenge, and the board is not shown', async () => {
    for (const path of ['/queues', '/queues/', '/queues/api/queues', '/queues/static/x.js']) {
      const r = await fetch(`${server.url}${path}`);
      expect(r.status, path).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Basic realm="Stride queues/);
      expect((await r.json()).error.code).toBe('unauthorized');
    }
    for (const authorization of [basic('me', 'wrong'), 'Bearer wrong', basic('me', ''), 'Basic !!!', `Token ${READ_TOKEN}`]) {
      const r = await fetch(`${server.url}/queues/api/queues`, { headers: { authorization } });
      expect(r.status, authorization).toBe(401);
    }
  });

  it('/queues with the read token, as Basic (any user name) or Bearer: the board answers', async () => {
    for (const authorization of [basic('anyone', READ_TOKEN), basic('', READ_TOKEN), `Bearer ${READ_TOKEN}`]) {
      const r = await fetch(`${server.url}/queues/api/queues`, { headers: { authorization } });
      expect(r.status, authorization).toBe(200);
      expect(await r.json()).toHaveProperty('queues');
    }
  });

  it('remembers the coordinator\'s yes briefly, then asks again', async () => {
    const auth = { authorization: basic('u', READ_TOKEN) };
    await new Promise((r) => setTimeout(r, 1_600));
    seen.length = 0;
    await fetch(`${server.url}/queues/api/queues`, { headers: auth });
    await fetch(`${server.url}/queues/api/queues`, { headers: auth });
    expect(seen.filter((s) => s.url === '/api/queues')).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1_600));
    await fetch(`${server.url}/queues/api/queues`, { headers: auth });
    expect(seen.filter((s) => s.url === '/api/queues')).toHaveLength(2);
  });

  it('/queues is closed (502) while the coordinator cannot check the token', async () => {
    await new Promise((r) => setTimeout(r, 1_600));
    up = false;
    try {
      const r = await fetch(`${server.url}/queues/api/queues`, { headers: { authorization: basic('u', READ_TOKEN) } });
      expect(r.status).toBe(502);
      expect((await r.json()).error.code).toBe('coordinator_unreachable');
    } finally {
      up = true;
    }
  });

  it('reads a token from Bearer and from Basic headers only', () => {
    expect(tokenFromAuthorization(`Bearer ${READ_TOKEN}`)).toBe(READ_TOKEN);
    expect(tokenFromAuthorization(basic('x', 'p:with:colons'))).toBe('p:with:colons');
    expect(tokenFromAuthorization(basic('x', ''))).toBeUndefined();
    expect(tokenFromAuthorization('Digest abc')).toBeUndefined();
    expect(tokenFromAuthorization(undefined)).toBeUndefined();
  });
});
