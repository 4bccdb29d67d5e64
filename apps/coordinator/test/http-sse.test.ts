// The HTTP API over a real listening socket: server-sent events (framing, heartbeats, filters,
// cleanup on disconnect), raw paths that `inject` would normalise, and one real training run with
// a worker process: step events arrive, and cancel stops at a step boundary with a final checkpoint.
import { spawn, type ChildProcess } from 'node:child_process';
import { get as httpGet, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { StepEvent } from '../src/index.ts';
import { makeStack, SPEC, waitFor, type Stack } from './http-helpers.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

interface SseEvent {
  event: string;
  data: any;
}

/** An open `/api/events` stream: the events parsed so far, the raw text, and a way to hang up. */
interface Stream {
  events: SseEvent[];
  raw(): string;
  /** True once the server ended the response or the socket closed. */
  ended(): boolean;
  close(): void;
}

/** Opens a stream with node:http (no connection pool: hanging up closes the socket). */
async function openStream(url: string): Promise<Stream> {
  const events: SseEvent[] = [];
  let text = '';
  let pending = '';
  const { req, res } = await new Promise<{ req: ClientRequest; res: IncomingMessage }>((resolve, reject) => {
    const r = httpGet(url, { agent: false }, (response) => resolve({ req: r, res: response }));
    r.on('error', reject);
  });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
  expect(res.headers['cache-control']).toBe('no-cache, no-transform');
  res.setEncoding('utf8');
  let ended = false;
  res.on('error', () => undefined); // hung up by close()
  res.on('close', () => (ended = true));
  res.on('data', (s: string) => {
    text += s;
    pending += s;
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => !l.startsWith(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
      );
      if (fields.event) events.push({ event: fields.event, data: JSON.parse(fields.data) });
    }
  });
  return { events, raw: () => text, ended: () => ended, close: () => req.destroy() };
}

/** GET with the path sent exactly as written (no URL normalisation). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sseClients = async (s: Stack): Promise<number> => {
  const text = (await s.app.inject({ url: '/metrics' })).body;
  return Number(/^stride_sse_clients (\d+)$/m.exec(text)?.[1]);
};

let stack: Stack | undefined;
let worker: ChildProcess | undefined;
const streams: Stream[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    const exited = new Promise((r) => worker!.once('exit', r));
    worker.kill('SIGTERM');
    await exited;
  }
  worker = undefined;
  await stack?.close();
  stack = undefined;
});

async function listen(s: Stack): Promise<string> {
  return s.app.listen({ host: '127.0.0.1', port: 0 });
}

const step = (jobId: string, n: number): StepEvent =>
  ({
    type: 'step',
    jobId,
    step: n,
    totalSteps: 10,
    epoch: 0,
    epochProgress: 0.01,
    loss: 2.3,
    accuracy: 0.1,
    count: 8,
    lr: 0.01,
    imagesPerSec: 1234.5,
    stepMs: 6,
    queueMs: 1,
    computeMs: 4,
    computeMsTotal: 8,
    publishMs: 0.1,
    reduceMs: 0.2,
    optimizerMs: 0.3,
    time: new Date().toISOString(),
  }) as StepEvent;

describe('GET /api/events', () => {
  it('delivers step events as SSE, sends heartbeat comments, and unsubscribes on disconnect', async () => {
    stack = await makeStack('sse', { server: { sseHeartbeatMs: 50 } });
    const base = await listen(stack);
    const stream = await openStream(`${base}/api/events`);
    streams.push(stream);
    await waitFor(async () => (await sseClients(stack!)) === 1, 'the stream to be counted');

    stack.coordinator.emit('step', step('job-a', 0));
    await waitFor(() => stream.events.some((e) => e.event === 'step'), 'a step event');
    expect(stream.events.find((e) => e.event === 'step')!.data).toMatchObject({ jobId: 'job-a', step: 0, imagesPerSec: 1234.5, loss: 2.3 });
    expect(stream.raw()).toMatch(/^retry: \d+\n: connected\n\n/);
    expect(stream.raw()).toMatch(/\nid: \d+\nevent: step\ndata: \{.*\}\n\n/);
    await waitFor(() => /: heartbeat \d+\n\n/.test(stream.raw()), 'a heartbeat comment');

    // The step counted for Prometheus too.
    const prom = (await stack.app.inject({ url: '/metrics' })).body;
    expect(prom).toContain('\nstride_steps_total 1\n');
    expect(prom).toContain('\nstride_images_per_second{job="job-a"} 1234.5\n');

    stream.close();
    await waitFor(async () => (await sseClients(stack!)) === 0, 'the stream to be cleaned up after the disconnect');
  });

  it('?job= keeps one job\'s events (and the workers\' ones); ?types= keeps the named types', async () => {
    stack = await makeStack('sse-filter');
    const base = await listen(stack);
    const one = await openStream(`${base}/api/events?job=job-b`);
    const steps = await openStream(`${base}/api/events?types=step`);
    streams.push(one, steps);
    await waitFor(async () => (await sseClients(stack!)) === 2, 'both streams');

    stack.coordinator.emit('step', step('job-a', 0));
    stack.coordinator.emit('workers', []);
    stack.coordinator.emit('eval', { type: 'eval', jobId: 'job-b', step: 1, epochProgress: 0.1, testLoss: 1, testAccuracy: 0.5, count: 10, evalMs: 1, time: '' });
    stack.coordinator.emit('step', step('job-b', 1));
    await waitFor(() => one.events.length === 3 && steps.events.length === 2, 'the filtered events');
    expect(one.events.map((e) => `${e.event}:${e.data.jobId ?? '-'}`)).toEqual(['workers:-', 'eval:job-b', 'step:job-b']);
    expect(steps.events.map((e) => `${e.event}:${e.data.jobId}`)).toEqual(['step:job-a', 'step:job-b']);

    const bad = await rawGet(base, '/api/events?job=..%2Fx');
    expect(bad.status).toBe(400);
  });

  it('closing the server ends open streams', async () => {
    stack = await makeStack('sse-close');
    const base = await listen(stack);
    const stream = await openStream(`${base}/api/events`);
    streams.push(stream);
    await waitFor(async () => (await sseClients(stack!)) === 1, 'the stream');
    // A stream the server did not end itself would keep close() waiting for good (an open SSE
    // response is never idle): close() resolving at all is the check, whatever the machine's load.
    await stack.app.close();
    await waitFor(() => stream.ended(), 'the stream to end');
  });
});

describe('raw paths over a socket', () => {
  it('a checkpoint name of ".." or with an encoded slash is a 400, never a file', async () => {
    stack = await makeStack('raw');
    const base = await listen(stack);
    const { id } = (await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(SPEC) })).json();
    for (const path of [`/api/jobs/${id}/checkpoints/..`, `/api/jobs/${id}/checkpoints/%2E%2E`, `/api/jobs/${id}/checkpoints/..%2Fjob.json`, `/api/jobs/${id}/checkpoints/%2e%2e%2f%2e%2e%2fetc%2fpasswd`]) {
      const r = await rawGet(base, path);
      expect(r.status, path).toBe(400);
      expect(JSON.parse(r.body).error.code).toBe('invalid_checkpoint_name');
    }
    const r = await rawGet(base, '/api/jobs/../../etc/passwd');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.code).toBe('not_found');
  });
});

describe('a real run', () => {
  it('streams the steps of a job trained by a worker; cancel stops it at a step boundary with a final checkpoint', async () => {
    stack = await makeStack('train', { coordinator: { runJobs: true, workersPollMs: 200 } });
    const base = await listen(stack);
    worker = spawn(process.execPath, ['--import', 'tsx', 'apps/worker/src/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: stack.config.redisUrl, STRIDE_QUEUE_PREFIX: stack.config.prefix, STRIDE_THREADS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let workerLog = '';
    worker.stderr!.on('data', (c: Buffer) => (workerLog += c.toString()));
    const withLog = (what: string) => (): string => `${what} (worker log: ${workerLog || 'empty'})`;
    // Each stage waits for its own condition, so a slow machine only makes the test slower, and
    // a failure names the stage: the worker is up, then serves steps, then the cancel lands.
    await waitFor(
      () => {
        if (worker!.exitCode !== null) throw new Error(`the worker exited (code ${worker!.exitCode}) before it started: ${workerLog}`);
        return /worker \S+: \d+ threads/.test(workerLog);
      },
      withLog('the worker to start'),
      120_000,
    );

    const res = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...SPEC, steps: 100_000, checkpointEvery: 100_000 }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const stream = await openStream(`${base}/api/events?job=${id}`);
    streams.push(stream);

    await waitFor(() => stream.events.some((e) => e.event === 'step'), withLog('a step event'), 60_000);
    const first = stream.events.find((e) => e.event === 'step')!.data;
    expect(first).toMatchObject({ jobId: id, totalSteps: 100_000, count: 8 });
    expect(first.loss).toBeGreaterThan(0);
    await waitFor(() => stream.events.some((e) => e.event === 'workers' && e.data.length === 1), withLog('a workers heartbeat event'), 60_000);

    const cancel = await fetch(`${base}/api/jobs/${id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    await waitFor(() => stream.events.some((e) => e.event === 'job' && e.data.state.status === 'cancelled'), withLog('the cancelled state'), 60_000);

    const job = (await (await fetch(`${base}/api/jobs/${id}`)).json()) as {
      state: { status: string; step: number };
      spec: { shards: number; evalShards: number };
      workers?: { id: string; host?: string; shards: number; computeMs?: number; lastSeen: string }[];
    };
    expect(job.state.status).toBe('cancelled');
    const lastStep = stream.events.filter((e) => e.event === 'step').at(-1)!.data.step as number;
    // Stopped at a boundary: the state counts exactly the steps whose events went out.
    expect(job.state.step).toBe(lastStep + 1);
    // The one worker served every shard of every step applied (and of the evaluations, if any ran).
    const evals = stream.events.filter((e) => e.event === 'eval').length;
    expect(job.workers).toHaveLength(1);
    expect(job.workers![0]).toMatchObject({ shards: job.state.step * job.spec.shards + evals * job.spec.evalShards });
    expect(job.workers![0].id).toMatch(/:\d+:[0-9a-f]{6}$/);
    expect(job.workers![0].computeMs).toBeGreaterThan(0);
    const { checkpoints } = (await (await fetch(`${base}/api/jobs/${id}/checkpoints`)).json()) as { checkpoints: { name: string; step: number }[] };
    expect(checkpoints.at(-1)).toMatchObject({ step: job.state.step, name: `step-${String(job.state.step).padStart(8, '0')}.ckpt` });
    expect(stream.events.some((e) => e.event === 'checkpoint' && e.data.step === job.state.step)).toBe(true);

    const download = await fetch(`${base}/api/jobs/${id}/checkpoints/${checkpoints.at(-1)!.name}`);
    expect(download.status).toBe(200);
    expect((await download.arrayBuffer()).byteLength).toBeGreaterThan(1000);
  }, 240_000);
});
