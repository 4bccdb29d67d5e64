// Fuzz: random and mutated requests at every route of the coordinator API (the routes are read
// from Fastify, so a new route is fuzzed without touching this file). Every answer must be a 2xx
// or a 4xx with the JSON error shape — never a 5xx — the server must keep answering, nothing may
// reach Object.prototype, and memory must stay bounded. Twice: in this process through Fastify's
// inject (fast, heap measured), and against a real coordinator process over sockets (RSS measured,
// the process must still be alive at the end).
//
// Seeded and time-boxed (~9 s of fuzzing in `npm test`; `STRIDE_FUZZ_SECONDS=120` for a long run of each,
// `STRIDE_FUZZ_SEED=n` for another sequence). Real Redis, unique prefixes.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobPaths } from '@stride/engine';
import { listRoutes, type RouteInfo } from '../src/http/server.ts';
import { Rng, fuzzBodyText, fuzzBudgetMs, fuzzSeed, randomJson, validCheckpointBytes } from './fuzz-helpers.ts';
import { SPEC, deletePrefix, makeStack, testConfig, waitFor, type Stack } from './http-helpers.ts';

const IN_PROCESS_MS = fuzzBudgetMs(5_000);
const PROCESS_MS = fuzzBudgetMs(4_000);
const SEED = fuzzSeed();
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let stack: Stack;
let jobId: string;
let routes: readonly RouteInfo[];
beforeAll(async () => {
  stack = await makeStack('fuzz-http');
  routes = listRoutes(stack.app);
  const r = await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(SPEC) });
  jobId = r.json().id;
  await addCheckpoints(stack.dataDir, jobId);
});
afterAll(async () => {
  await stack?.close();
});

/** One good and one damaged checkpoint, so the download route has both to serve or refuse. */
async function addCheckpoints(dataDir: string, id: string): Promise<void> {
  const dir = jobPaths(dataDir, id).checkpoints;
  await mkdir(dir, { recursive: true });
  const good = validCheckpointBytes(id, 1);
  await writeFile(join(dir, 'step-00000001.ckpt'), good);
  const bad = good.slice();
  bad[bad.length - 3] ^= 0x40;
  await writeFile(join(dir, 'step-00000002.ckpt'), bad);
}

const ID_VALUES = (id: string) => [id, id, 'no-such-job', '..', '.', '%2e%2e%2f%2e%2e%2fetc', '..%2F..%2Fjob.json', '%00', 'a'.repeat(129), 'a'.repeat(300), '__proto__', 'constructor', '%E2%80%AE', '%C0%AE%C0%AE', '%', '%ZZ', 'job%20id', '-', '_'];
const NAME_VALUES = ['step-00000001.ckpt', 'step-00000002.ckpt', 'step-00000003.ckpt', '..', '%2e%2e', '..%2Fspec.json', 'step-00000001.ckpt%00', 'step-1.ckpt', '%2Fetc%2Fpasswd', '..%5C..%5Cx', 'x'.repeat(250), '%'];
const QUERIES = ['', '', '?job=', '?job=x', '?types=step,eval', '?types=', '?types=a&types=b', '?job=a&job=b', '?__proto__[x]=1', '?constructor[prototype][y]=2', '?job=..%2F..', '?%', '?a=%E0%A4%A', '?job[]=1'];
const CONTENT_TYPES = ['application/json', 'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=xyz', 'application/jsonx', undefined];
const OTHER_METHODS = ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'GET', 'POST'] as const;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS' | 'HEAD';
interface FuzzRequest {
  method: Method;
  url: string;
  headers: Record<string, string>;
  payload?: string;
  what: string;
}

/** A random request at one of `routes`: hostile path parameters, query strings, methods, content types and bodies. */
function nextRequest(rng: Rng, id: string): FuzzRequest {
  const route = rng.pick(routes);
  const url = route.url.replace(':id', () => rng.pick(ID_VALUES(id))).replace(':name', () => rng.pick(NAME_VALUES)) + (rng.chance(0.4) ? rng.pick(QUERIES) : '');
  const method = (rng.chance(0.85) ? route.method : rng.pick(OTHER_METHODS)) as Method;
  const headers: Record<string, string> = {};
  const ct = rng.pick(CONTENT_TYPES);
  if (ct !== undefined) headers['content-type'] = ct;
  let payload: string | undefined;
  if (method !== 'GET' && method !== 'HEAD' && (method === 'POST' || rng.chance(0.1))) {
    const r = rng.next();
    payload = r < 0.02 ? JSON.stringify({ ...SPEC, name: 'x'.repeat(1.1 * 2 ** 20) }) : r < 0.1 ? (JSON.stringify(randomJson(rng)) ?? '') : fuzzBodyText(rng, SPEC);
  }
  return { method, url, headers, payload, what: `${method} ${url} [${ct ?? 'no content-type'}] ${payload?.slice(0, 160) ?? ''}` };
}

/** Why an answer is wrong, or undefined: a 5xx, or a 4xx without `{ error: { code, message } }`. */
function judge(req: FuzzRequest, status: number, body: string): string | undefined {
  if (status >= 500) return `${status} for ${req.what}: ${body.slice(0, 300)}`;
  if (status < 400 || req.method === 'HEAD') return undefined;
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = JSON.parse(body).error;
  } catch {
    error = undefined;
  }
  return typeof error?.code === 'string' && typeof error.message === 'string' ? undefined : `${status} without the JSON error shape for ${req.what}: ${body.slice(0, 200)}`;
}

const tally = (statuses: Map<number, number>): string => JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])));

describe(`fuzz: every HTTP route (seed ${SEED})`, () => {
  it(`in process, ${(IN_PROCESS_MS / 1000).toFixed(1)} s: a 2xx or a JSON 4xx, never a 5xx; the server keeps answering`, async () => {
    expect(routes.length).toBeGreaterThan(10);
    const rng = new Rng(SEED);
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    const heapBefore = process.memoryUsage().heapUsed;
    const end = Date.now() + IN_PROCESS_MS;
    let requests = 0;
    while (Date.now() < end && failures.length < 5) {
      const req = nextRequest(rng, jobId);
      // inject cannot hang up on an event stream (the server never sees the client go), so streams
      // would pile up here and inflate the heap: the process test below fuzzes that route.
      if (req.method === 'GET' && req.url.startsWith('/api/events')) continue;
      requests++;
      const res = await stack.app.inject({ method: req.method, url: req.url, headers: req.headers, payload: req.payload, payloadAsStream: true });
      const stream = res.stream();
      let body = '';
      for await (const chunk of stream) body += chunk;
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const wrong = judge(req, res.statusCode, body);
      if (wrong) failures.push(wrong);
    }
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    const summary = `seed ${SEED}, ${requests} requests, statuses ${tally(statuses)}, heap +${heapGrowthMb.toFixed(1)} MB`;
    if (process.env.STRIDE_FUZZ_SECONDS) process.stdout.write(`fuzz-http in process: ${summary}\n`);
    expect(failures, summary).toEqual([]);
    // The fuzz reached both sides: accepted requests and several kinds of refusal.
    expect(requests).toBeGreaterThan(50);
    expect([...statuses.keys()].some((s) => s < 300), summary).toBe(true);
    expect([400, 404, 415].every((s) => statuses.has(s)), summary).toBe(true);
    expect(({} as Record<string, unknown>).x, 'Object.prototype polluted').toBeUndefined();
    expect(({} as Record<string, unknown>).y, 'Object.prototype polluted').toBeUndefined();
    expect(heapGrowthMb, summary).toBeLessThan(200);
    // Still up and still right.
    expect((await stack.app.inject({ url: `/api/jobs/${jobId}` })).json().id).toBe(jobId);
    expect((await stack.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await stack.app.inject({ url: '/metrics' })).body).toMatch(/^stride_sse_clients 0$/m);
  }, IN_PROCESS_MS + 60_000);

  it(`a coordinator process over sockets, ${(PROCESS_MS / 1000).toFixed(1)} s: the same answers, still alive, RSS bounded`, async () => {
    const config = testConfig('fuzz-proc');
    const dataDir = await mkdtemp(join(tmpdir(), 'stride-fuzz-proc-'));
    let child: ChildProcess | undefined;
    let log = '';
    try {
      child = spawn(process.execPath, ['--import', 'tsx', 'apps/coordinator/src/main.ts'], {
        cwd: ROOT,
        env: { ...process.env, REDIS_URL: config.redisUrl, STRIDE_QUEUE_PREFIX: config.prefix, STRIDE_DATA_DIR: dataDir, STRIDE_RUN_JOBS: '0', HOST: '127.0.0.1', PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      await waitFor(() => /API on http:\/\/127\.0\.0\.1:\d+/.test(log), `the coordinator's API (log: ${log})`, 60_000);
      const base = /API on (http:\/\/127\.0\.0\.1:\d+)/.exec(log)![1];
      const submitted = await fetch(`${base}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC) });
      expect(submitted.status).toBe(201);
      const id = ((await submitted.json()) as { id: string }).id;
      await addCheckpoints(dataDir, id);
      const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${child!.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

      const rng = new Rng(SEED + 1);
      const statuses = new Map<number, number>();
      const failures: string[] = [];
      const send = async (req: FuzzRequest): Promise<void> => {
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(new Error('no answer within 10 s')), 10_000);
        let status: number;
        let body = '';
        try {
          const res = await fetch(`${base}${req.url}`, { method: req.method, headers: req.headers, body: req.payload, signal: abort.signal });
          status = res.status;
          if (res.headers.get('content-type')?.startsWith('text/event-stream')) abort.abort();
          else body = await res.text();
        } catch (err) {
          // A request the client itself refuses to send (an invalid header or URL) is not the server's doing.
          if (err instanceof TypeError && !/fetch failed/.test(err.message)) return;
          failures.push(`no answer to ${req.what}: ${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`);
          return;
        } finally {
          clearTimeout(timer);
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const wrong = judge(req, status, body);
        if (wrong) failures.push(wrong);
      };
      for (let i = 0; i < 30; i++) await send(nextRequest(rng, id)); // warm up before measuring
      const rssBefore = await rss();
      const end = Date.now() + PROCESS_MS;
      let requests = 0;
      while (Date.now() < end && failures.length < 5) {
        requests++;
        await send(nextRequest(rng, id));
      }
      const rssGrowthMb = (await rss()) - rssBefore;
      const summary = `seed ${SEED + 1}, ${requests} requests, statuses ${tally(statuses)}, RSS ${rssBefore.toFixed(0)} MB +${rssGrowthMb.toFixed(1)} MB`;
      if (process.env.STRIDE_FUZZ_SECONDS) process.stdout.write(`fuzz-http process: ${summary}\n`);
      expect(failures, `${summary}\n${log.slice(-2000)}`).toEqual([]);
      expect(requests).toBeGreaterThan(10);
      expect(child.exitCode, log).toBeNull();
      expect(log).not.toMatch(/unhandled rejection|uncaught/i);
      expect(rssGrowthMb, summary).toBeLessThan(200);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(((await (await fetch(`${base}/api/jobs/${id}`)).json()) as { id: string }).id).toBe(id);
      // Every event stream the fuzz opened and dropped was let go.
      await waitFor(async () => /^stride_sse_clients 0$/m.test(await (await fetch(`${base}/metrics`)).text()), 'the dropped event streams to close', 10_000);
    } finally {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await deletePrefix(config);
      await rm(dataDir, { recursive: true, force: true });
    }
  }, PROCESS_MS + 120_000);
});
