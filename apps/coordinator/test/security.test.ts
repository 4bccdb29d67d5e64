// Security defaults of the coordinator API and the deployment (issue 7):
//   - servers bind to 127.0.0.1 unless configured otherwise;
//   - STRIDE_TOKEN guards every state-changing route and STRIDE_READ_TOKEN every read — checked on
//     the list of routes Fastify actually serves, so a route added later is checked too;
//   - CORS is closed by default, on every route;
//   - docker-compose.yml publishes neither Redis nor the coordinator.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { apiOptionsFromEnv } from '../src/env.ts';
import { listRoutes, startHttpServer, type StartedHttpServer } from '../src/http/server.ts';
import { SPEC, makeStack, type Stack } from './http-helpers.ts';

let stack: Stack | undefined;
let started: StartedHttpServer | undefined;
afterEach(async () => {
  await started?.close();
  started = undefined;
  await stack?.close();
  stack = undefined;
});

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A concrete URL for a route pattern: `:id` becomes a real job id, `:name` a checkpoint name. */
const concrete = (url: string, id: string): string => url.replace(':id', id).replace(':name', 'step-00000001.ckpt').replace('*', 'x');

describe('binding', () => {
  it('the API listens on 127.0.0.1 when no host is given, and HOST unset means 127.0.0.1', async () => {
    stack = await makeStack('bind', { start: false });
    started = await startHttpServer({ coordinator: stack.port, port: 0 });
    expect((started.app.server.address() as { address: string }).address).toBe('127.0.0.1');
    expect(started.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(apiOptionsFromEnv({}).host).toBe('127.0.0.1');
    expect(apiOptionsFromEnv({ HOST: '' }).host).toBe('127.0.0.1');
    expect(apiOptionsFromEnv({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
  });
});

describe('tokens on every route', () => {
  it('with STRIDE_TOKEN, every state-changing route answers 401 without the token, a wrong one or the read token', async () => {
    stack = await makeStack('auth-all', { server: { writeToken: 'w-token', readToken: 'r-token' } });
    const id = (await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json', authorization: 'Bearer w-token' }, payload: JSON.stringify(SPEC) })).json().id;
    const writes = listRoutes(stack.app).filter((r) => !READS.has(r.method));
    // The routes we know of are among them (a renamed route would otherwise escape this test).
    expect(writes.map((r) => `${r.method} ${r.url}`)).toEqual(expect.arrayContaining(['POST /api/jobs', 'POST /api/jobs/:id/cancel', 'POST /api/jobs/:id/pause', 'POST /api/jobs/:id/resume']));
    for (const route of writes) {
      for (const authorization of [undefined, 'Bearer nope', 'Bearer r-token', 'w-token', 'Basic dzp3LXRva2Vu']) {
        const r = await stack.app.inject({
          method: route.method as 'POST',
          url: concrete(route.url, id),
          headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
          payload: JSON.stringify(SPEC),
        });
        expect(r.statusCode, `${route.method} ${route.url} with ${authorization ?? 'no token'}`).toBe(401);
        expect(r.json().error.code).toBe('unauthorized');
      }
    }
    // Nothing was changed: the job is still queued, and it is the only one.
    const jobs = (await stack.app.inject({ url: '/api/jobs', headers: { authorization: 'Bearer r-token' } })).json().jobs;
    expect(jobs.map((j: { id: string; state: { status: string } }) => [j.id, j.state.status])).toEqual([[id, 'queued']]);
  });

  it('with STRIDE_READ_TOKEN, every read route but /healthz answers 401 without a token', async () => {
    stack = await makeStack('auth-reads', { server: { writeToken: 'w-token', readToken: 'r-token' } });
    const reads = listRoutes(stack.app).filter((r) => r.method === 'GET' || r.method === 'HEAD');
    expect(reads.length).toBeGreaterThanOrEqual(10);
    for (const route of reads) {
      const url = concrete(route.url, 'some-job');
      const r = await stack.app.inject({ method: route.method as 'GET', url });
      if (route.url === '/healthz') {
        expect(r.statusCode).toBe(200); // liveness probes carry no token
        continue;
      }
      expect(r.statusCode, `${route.method} ${route.url}`).toBe(401);
      const wrong = await stack.app.inject({ method: route.method as 'GET', url, headers: { authorization: 'Bearer nope' } });
      expect(wrong.statusCode, `${route.method} ${route.url} with a wrong token`).toBe(401);
    }
  });

  it('a route added to the app later is guarded as well (the check is global, not per route)', async () => {
    stack = await makeStack('auth-new', { server: { writeToken: 'w-token' } });
    stack.app.post('/api/something-new', async () => ({ changed: true }));
    expect(listRoutes(stack.app).some((r) => r.url === '/api/something-new')).toBe(true);
    expect((await stack.app.inject({ method: 'POST', url: '/api/something-new' })).statusCode).toBe(401);
    expect((await stack.app.inject({ method: 'POST', url: '/api/something-new', headers: { authorization: 'Bearer w-token' } })).json()).toEqual({ changed: true });
  });

  it('the 401 comes before any parsing: an unauthenticated body is never looked at', async () => {
    stack = await makeStack('auth-first', { server: { writeToken: 'w-token' } });
    for (const payload of ['{"model":', '[' .repeat(100_000), JSON.stringify({ ...SPEC, __proto__x: 1 })]) {
      const r = await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json' }, payload });
      expect(r.statusCode).toBe(401);
    }
    const wrongType = await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'text/plain' }, payload: 'x' });
    expect(wrongType.statusCode).toBe(401);
  });
});

describe('CORS', () => {
  it('closed by default: no route sends CORS headers and there is no preflight route', async () => {
    stack = await makeStack('cors-every');
    const id = (await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(SPEC) })).json().id;
    const origin = 'http://evil.example';
    const routes = listRoutes(stack.app);
    expect(routes.some((r) => r.method === 'OPTIONS')).toBe(false);
    for (const route of routes) {
      if (route.url === '/api/events') continue; // a stream that stays open; same hook, checked below
      const url = concrete(route.url, id);
      const r = await stack.app.inject({ method: route.method as 'GET', url, headers: { origin, 'content-type': 'application/json' }, payload: route.method === 'POST' ? '{}' : undefined });
      expect(r.headers['access-control-allow-origin'], `${route.method} ${route.url}`).toBeUndefined();
      expect(r.headers['access-control-allow-credentials']).toBeUndefined();
      const pre = await stack.app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': route.method, 'access-control-request-headers': 'authorization' } });
      expect(pre.headers['access-control-allow-origin'], `OPTIONS ${route.url}`).toBeUndefined();
      expect(pre.statusCode).toBe(404);
    }
    const events = await stack.app.inject({ url: '/api/events', headers: { origin }, payloadAsStream: true });
    expect(events.headers['access-control-allow-origin']).toBeUndefined();
    events.stream().destroy();
  });

  it('CORS_ORIGIN opens it to the listed origins only, never with credentials', async () => {
    stack = await makeStack('cors-listed', { server: { corsOrigin: 'http://a.example, http://b.example' } });
    for (const [origin, allowed] of [['http://a.example', true], ['http://b.example', true], ['http://evil.example', false], ['null', false]] as const) {
      const r = await stack.app.inject({ url: '/api/jobs', headers: { origin } });
      expect(r.headers['access-control-allow-origin'], origin).toBe(allowed ? origin : undefined);
      expect(r.headers['access-control-allow-credentials']).toBeUndefined();
    }
  });
});

describe('docker-compose.yml', () => {
  /** Each service's block of lines (two-space indented names under `services:`). */
  function services(yaml: string): Map<string, string> {
    const out = new Map<string, string>();
    const body = yaml.slice(yaml.indexOf('\nservices:\n'));
    const re = /^ {2}([A-Za-z0-9_-]+):\s*$/gm;
    const starts = [...body.matchAll(re)];
    starts.forEach((m, i) => {
      const end = i + 1 < starts.length ? starts[i + 1].index : body.search(/^\S/m) > m.index! ? body.search(/^\S/m) : body.length;
      out.set(m[1], body.slice(m.index, end));
    });
    return out;
  }
  const yaml = readFileSync(fileURLToPath(new URL('../../../docker-compose.yml', import.meta.url)), 'utf8');
  const s = services(yaml);

  it('has the four services', () => {
    expect([...s.keys()]).toEqual(expect.arrayContaining(['redis', 'coordinator', 'worker', 'dashboard']));
  });

  it('publishes neither Redis nor the coordinator nor the workers, and no host networking', () => {
    for (const name of ['redis', 'coordinator', 'worker']) {
      const block = s.get(name)!;
      expect(block, name).not.toMatch(/^\s+ports:/m);
      expect(block, name).not.toMatch(/network_mode:\s*"?host/);
    }
    // The only `ports:` in the file is the dashboard's.
    expect(yaml.match(/^\s+ports:/gm)).toHaveLength(1);
  });

  it('publishes the dashboard on the host\'s loopback only', () => {
    const ports = [...s.get('dashboard')!.matchAll(/^\s+-\s+"?([^"\n]+)"?\s*$/gm)].map((m) => m[1]).filter((p) => /^\S*:\d+(:\d+)?$/.test(p));
    expect(ports.length).toBeGreaterThan(0);
    for (const p of ports) expect(p, p).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
  });

  it('passes STRIDE_TOKEN and STRIDE_READ_TOKEN through to the coordinator', () => {
    expect(s.get('coordinator')).toMatch(/STRIDE_TOKEN: \$\{STRIDE_TOKEN:-\}/);
    expect(s.get('coordinator')).toMatch(/STRIDE_READ_TOKEN: \$\{STRIDE_READ_TOKEN:-\}/);
  });
});
