// The dashboard server against a stand-in upstream (the subject here is the proxy, not the API)
// and a real Redis for the BullMQ board.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { optionsFromEnv, startDashboardServer, type DashboardServer } from '../src/server.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('dashboard server', () => {
  const prefix = `stride-dash-test-${process.pid}-${Date.now()}`;
  let upstream: Server;
  let upstreamUrl: string;
  const seen: { method: string; url: string; authorization?: string; body: string }[] = [];
  /** The open SSE response, so the test can push events and check they arrive one by one. */
  let sse: ServerResponse | undefined;
  let dist: string;
  let server: DashboardServer;
  let queue: Queue;

  beforeAll(async () => {
    upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
        if (req.url === '/api/events') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.write(': connected\n\n');
          sse = res;
          return;
        }
        if (req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
          return;
        }
        if (req.url === '/api/jobs' && req.method === 'POST') {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'invalid_job_spec', message: 'batchSize: must be an integer in [1, 65536], got 0', field: 'batchSize' } }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.url }));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;

    dist = mkdtempSync(join(tmpdir(), 'stride-dash-dist-'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Stride</title><div id="app"></div>');
    mkdirSync(join(dist, 'assets'));
    writeFileSync(join(dist, 'assets', 'app.js'), 'console.log(1)');

    // A queue under the test prefix, as the coordinator would create it.
    queue = new Queue('shards', { connection: { url: REDIS_URL }, prefix });
    await queue.add('shard', { n: 1 });

    server = await startDashboardServer({ apiUrl: upstreamUrl, port: 0, distDir: dist, redisUrl: REDIS_URL, prefix, queueRefreshMs: 200 });
  });

  afterAll(async () => {
    sse?.end();
    await server?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dist, { recursive: true, force: true });
  });

  it('binds to 127.0.0.1 by default and reports its URL', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('serves the built app, and index.html for client-side routes', async () => {
    const root = await fetch(`${server.url}/`);
    expect(root.status).toBe(200);
    expect(await root.text()).toContain('<div id="app">');
    const route = await fetch(`${server.url}/jobs/j-123`);
    expect(route.status).toBe(200);
    expect(route.headers.get('content-type')).toMatch(/text\/html/);
    const asset = await fetch(`${server.url}/assets/app.js`);
    expect(await asset.text()).toBe('console.log(1)');
    const missing = await fetch(`${server.url}/assets/nope.js`);
    expect(missing.status).toBe(404);
  });

  it('proxies /api/* and /healthz with method, body and Authorization header', async () => {
    const list = await fetch(`${server.url}/api/jobs?limit=5`);
    expect(await list.json()).toEqual({ echo: '/api/jobs?limit=5' });
    const health = await fetch(`${server.url}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const post = await fetch(`${server.url}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret' },
      body: JSON.stringify({ batchSize: 0 }),
    });
    expect(post.status).toBe(400);
    expect(await post.json()).toEqual({ error: { code: 'invalid_job_spec', message: 'batchSize: must be an integer in [1, 65536], got 0', field: 'batchSize' } });
    const hit = seen.find((s) => s.method === 'POST' && s.url === '/api/jobs')!;
    expect(hit.authorization).toBe('Bearer s3cret');
    expect(JSON.parse(hit.body)).toEqual({ batchSize: 0 });
  });

  it('streams /api/events: each event arrives while the response stays open', async () => {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/api/events`, { signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const readUntil = async (needle: string): Promise<string> => {
      let text = '';
      const deadline = Date.now() + 5000;
      while (!text.includes(needle)) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(needle)} within 5 s; got ${JSON.stringify(text)}`);
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${JSON.stringify(needle)}`);
        text += value;
      }
      return text;
    };
    await readUntil(': connected');
    for (let i = 1; i <= 3; i++) {
      sse!.write(`event: step\ndata: {"step":${i}}\n\n`);
      expect(await readUntil(`{"step":${i}}`)).toContain('event: step');
    }
    // The browser leaving must end the upstream stream too (the coordinator drops its subscriber).
    const upstreamClosed = new Promise<void>((r) => sse!.on('close', () => r()));
    ac.abort();
    await expect(Promise.race([upstreamClosed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), 3000))])).resolves.toBe('closed');
  });

  it('mounts the BullMQ board at /queues with the queues found under the prefix', async () => {
    expect(server.queueNames()).toEqual(['shards']);
    const page = await fetch(`${server.url}/queues`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const api = await fetch(`${server.url}/queues/api/queues?activeQueue=shards`);
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(body.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([['shards', true]]);
  });

  it('finds queues created after it started', async () => {
    const late = new Queue('jobs', { connection: { url: REDIS_URL }, prefix });
    try {
      await late.add('train', {});
      const deadline = Date.now() + 5000;
      while (!server.queueNames().includes('jobs') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(server.queueNames()).toEqual(['shards', 'jobs']);
    } finally {
      await late.close();
    }
  });

  it('answers 502 in the API error shape when the coordinator is down', async () => {
    const down = await startDashboardServer({ apiUrl: 'http://127.0.0.1:9', port: 0, distDir: dist, redisUrl: REDIS_URL, prefix });
    try {
      for (const path of ['/api/jobs', '/api/events', '/healthz']) {
        const res = await fetch(`${down.url}${path}`);
        expect(res.status, path).toBe(502);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('coordinator_unreachable');
        expect(body.error.message).toMatch(/the coordinator at http:\/\/127\.0\.0\.1:9 did not answer: .*ECONNREFUSED/);
      }
    } finally {
      await down.close();
    }
  });

  it('serves the app while Redis is unreachable (the board stays empty)', async () => {
    // Nothing listens on port 9: starting must not wait for a Redis that never answers.
    const noRedis = await startDashboardServer({ apiUrl: upstreamUrl, port: 0, distDir: dist, redisUrl: 'redis://127.0.0.1:9', prefix });
    try {
      expect((await fetch(`${noRedis.url}/`)).status).toBe(200);
      expect((await fetch(`${noRedis.url}/queues`)).status).toBe(200);
      expect(noRedis.queueNames()).toEqual([]);
    } finally {
      await noRedis.close();
    }
  });

  it('reads its options from the environment and rejects a bad port', () => {
    expect(optionsFromEnv({ API_URL: 'http://c:4000', HOST: '0.0.0.0', DASHBOARD_PORT: '8080', STRIDE_QUEUE_PREFIX: 'p' })).toMatchObject({ apiUrl: 'http://c:4000', host: '0.0.0.0', port: 8080, prefix: 'p' });
    expect(() => optionsFromEnv({ DASHBOARD_PORT: 'eighty' })).toThrow(/DASHBOARD_PORT must be an integer in \[0, 65535\], got "eighty"/);
  });

  it('refuses to start without a built app, saying how to build it', async () => {
    await expect(startDashboardServer({ port: 0, distDir: join(dist, 'nope') })).rejects.toThrow(/no built app in .*nope.*npm run build/);
  });
});
