// The coordinator's HTTP API through Fastify's `inject`, against a real Coordinator on the real
// Redis (unique key prefix per test). The coordinator takes no jobs here (runJobs: false), so
// every job stays where the test puts it; http-sse.test.ts trains for real.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { jobPaths } from '@stride/engine';
import { Heartbeat, Keys } from '@stride/queue';
import { makeStack, SPEC, type Stack } from './http-helpers.ts';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const json = (body: unknown) => ({ headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

async function submit(s: Stack, body: unknown = SPEC, headers: Record<string, string> = {}) {
  return s.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'application/json', ...headers }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
}

async function jobsQueued(s: Stack): Promise<number> {
  const counts = await s.coordinator.queueCounts();
  return counts.jobs.waiting + counts.jobs.delayed + counts.jobs.active + counts.jobs.prioritized;
}

describe('jobs', () => {
  it('POST /api/jobs validates, records and enqueues: 201 with the job and its Location', async () => {
    stack = await makeStack('submit');
    const res = await submit(stack);
    expect(res.statusCode).toBe(201);
    const job = res.json();
    expect(job).toMatchObject({ id: expect.any(String), name: 'lenet5-mnist', state: { status: 'queued' } });
    expect(job.spec).toMatchObject({ model: 'lenet5', dataset: 'mnist', steps: 3, batchSize: 8, shards: 2, seed: 1 });
    expect(res.headers.location).toBe(`/api/jobs/${job.id}`);
    expect(await jobsQueued(stack)).toBe(1);
  });

  it('GET /api/jobs lists and GET /api/jobs/:id returns one job; unknown ids are 404, malformed ones 400', async () => {
    stack = await makeStack('list');
    const a = (await submit(stack, { ...SPEC, name: 'first' })).json();
    const b = (await submit(stack, { ...SPEC, name: 'second' })).json();
    const list = await stack.app.inject({ url: '/api/jobs' });
    expect(list.statusCode).toBe(200);
    expect(
      list
        .json()
        .jobs.map((j: { id: string }) => j.id)
        .sort(),
    ).toEqual([a.id, b.id].sort());
    const one = await stack.app.inject({ url: `/api/jobs/${b.id}` });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ id: b.id, name: 'second' });

    const missing = await stack.app.inject({ url: '/api/jobs/no-such-job' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'not_found', message: 'job "no-such-job" does not exist' } });
    for (const bad of ['.hidden', 'a%2Fb', '..%2F..', 'x'.repeat(129)]) {
      const r = await stack.app.inject({ url: `/api/jobs/${bad}` });
      expect(r.statusCode, bad).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'invalid_job_id', field: 'id' });
    }
  });

  it('pause, resume and cancel move a queued job through its states; a wrong move is a 409', async () => {
    stack = await makeStack('control');
    const { id } = (await submit(stack)).json();
    const post = (action: string) => stack!.app.inject({ method: 'POST', url: `/api/jobs/${id}/${action}` });

    const paused = await post('pause');
    expect(paused.statusCode).toBe(200);
    expect(paused.json().state.status).toBe('paused');
    const again = await post('pause');
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({ code: 'invalid_state', message: expect.stringContaining(`job ${id} is paused`) });

    const resumed = await post('resume');
    expect(resumed.statusCode).toBe(200);
    expect(resumed.json().state.status).toBe('queued');

    const cancelled = await post('cancel');
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json().state.status).toBe('cancelled');
    expect(await jobsQueued(stack)).toBe(0);
    expect((await post('cancel')).statusCode).toBe(409);
    expect((await post('resume')).statusCode).toBe(409);

    for (const action of ['cancel', 'pause', 'resume']) {
      const r = await stack.app.inject({ method: 'POST', url: `/api/jobs/nope/${action}` });
      expect(r.statusCode, action).toBe(404);
    }
  });

  it('a control POST accepts an empty JSON body', async () => {
    stack = await makeStack('empty-body');
    const { id } = (await submit(stack)).json();
    const r = await stack.app.inject({ method: 'POST', url: `/api/jobs/${id}/pause`, headers: { 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(200);
  });

  it('GET metrics returns the lines of metrics.jsonl; GET checkpoints lists the files by name, never by path', async () => {
    stack = await makeStack('files');
    const { id } = (await submit(stack)).json();
    const paths = jobPaths(stack.dataDir, id);
    const records = [
      { type: 'step', step: 0, loss: 2.3, accuracy: 0.1, imagesPerSec: 500 },
      { type: 'eval', step: 1, testLoss: 2.2, testAccuracy: 0.2 },
    ];
    await mkdir(paths.checkpoints, { recursive: true });
    // A damaged line (`null`) and a torn last line are skipped, each reported with its line number.
    await writeFile(paths.metrics, [JSON.stringify(records[0]), 'null', JSON.stringify(records[1]), '{"type":"st'].join('\n'));
    await writeFile(join(paths.checkpoints, 'step-00000001.ckpt'), Buffer.from([1, 2, 3, 4, 5]));
    await writeFile(join(paths.checkpoints, 'notes.txt'), 'not a checkpoint');
    const warnings: string[] = [];
    stack.coordinator.on('log', (e) => void (e.level === 'warn' && warnings.push(e.message)));

    const metrics = await stack.app.inject({ url: `/api/jobs/${id}/metrics` });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.json()).toEqual({ jobId: id, metrics: records });
    expect(warnings).toEqual([`job ${id}: metrics.jsonl line 2 skipped: expected a JSON object, got null`, expect.stringMatching(new RegExp(`^job ${id}: metrics\\.jsonl line 4 skipped: not valid JSON`))]);

    const list = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints` });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual({ jobId: id, checkpoints: [{ name: 'step-00000001.ckpt', step: 1, bytes: 5, createdAt: expect.any(String) }] });
    expect(list.body).not.toContain(stack.dataDir);

    // Five bytes are no checkpoint: the download verifies the file first and refuses it (a valid
    // and a tampered checkpoint are in hostile.test.ts).
    const download = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/step-00000001.ckpt` });
    expect(download.statusCode).toBe(409);
    expect(download.json().error).toMatchObject({ code: 'checkpoint_corrupt', message: expect.stringContaining('truncated: 5 bytes') });

    expect((await stack.app.inject({ url: '/api/jobs/nope/metrics' })).statusCode).toBe(404);
    expect((await stack.app.inject({ url: '/api/jobs/nope/checkpoints' })).statusCode).toBe(404);
  });

  it('checkpoint names: traversal and anything off the naming pattern is a 400, an unknown name a 404', async () => {
    stack = await makeStack('traversal');
    const { id } = (await submit(stack)).json();
    const paths = jobPaths(stack.dataDir, id);
    await mkdir(paths.checkpoints, { recursive: true });
    await writeFile(join(paths.checkpoints, 'step-00000001.ckpt'), 'x');
    // A file next to the job that a traversal would reach.
    await writeFile(join(paths.dir, 'secret.ckpt'), 'secret');

    const bad = [
      '..%2Fjob.json',
      '..%2F..%2F..%2Fetc%2Fpasswd',
      '%2Fetc%2Fpasswd',
      '..%5Csecret.ckpt',
      'step-00000001.ckpt%00',
      'secret.ckpt',
      'step-1.ckpt',
      'step-00000001.ckpt.tmp',
      '.step-00000001.ckpt.123.tmp',
      'step-00000001.ckpt.corrupt',
    ];
    for (const name of bad) {
      const r = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/${name}` });
      expect(r.statusCode, name).toBe(400);
      expect(r.json().error, name).toMatchObject({ code: 'invalid_checkpoint_name', field: 'name' });
    }
    const unknown = await stack.app.inject({ url: `/api/jobs/${id}/checkpoints/step-00000002.ckpt` });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toBe(`job ${id} has no checkpoint "step-00000002.ckpt"`);
    expect((await stack.app.inject({ url: '/api/jobs/nope/checkpoints/step-00000001.ckpt' })).statusCode).toBe(404);
  });
});

describe('validation: a bad body is a 400 naming the field, and nothing is enqueued', () => {
  const cases: [string, unknown, string | undefined, RegExp][] = [
    ['missing model', { dataset: 'mnist' }, 'model', /^model: /],
    ['missing dataset', { model: 'lenet5' }, 'dataset', /^dataset: must be one of mnist, fashion-mnist, mnist-localization, mnist-detection, mnist-segmentation\b.*, got undefined/],
    ['unknown field', { ...SPEC, learningRate: 0.1 }, 'learningRate', /^learningRate: unknown field/],
    ['unknown nested field', { ...SPEC, optimizer: { type: 'sgd', lr: 0.1, momentun: 0.9 } }, 'optimizer.momentun', /momentun/],
    ['wrong type: string steps', { ...SPEC, steps: '10' }, 'steps', /^steps: must be an integer .* got "10"/],
    ['wrong type: model number', { ...SPEC, model: 5 }, 'model', /^model: must be a zoo model name or a model spec/],
    ['wrong type: batchSize array', { ...SPEC, batchSize: [8] }, 'batchSize', /got an array/],
    ['unknown dataset', { ...SPEC, dataset: 'imagenet' }, 'dataset', /got "imagenet"/],
    ['unknown zoo model', { ...SPEC, model: 'resnet9000' }, 'model', /unknown zoo model "resnet9000"/],
    ['negative steps', { ...SPEC, steps: -1 }, 'steps', /got -1/],
    ['zero batchSize', { ...SPEC, batchSize: 0 }, 'batchSize', /got 0/],
    ['zero shards', { ...SPEC, shards: 0 }, 'shards', /got 0/],
    ['fractional seed', { ...SPEC, seed: 1.5 }, 'seed', /got 1.5/],
    ['negative learning rate', { ...SPEC, optimizer: { type: 'sgd', lr: -0.1 } }, 'optimizer.lr', /got -0.1/],
    ['zero learning rate', { ...SPEC, optimizer: { type: 'adam', lr: 0 } }, 'optimizer.lr', /got 0/],
    ['"NaN" as a learning rate', { ...SPEC, optimizer: { type: 'adam', lr: 'NaN' } }, 'optimizer.lr', /got "NaN"/],
    ['more shards than samples', { ...SPEC, batchSize: 4, shards: 8 }, 'shards', /\[1, 4\]/],
    ['both epochs and steps', { ...SPEC, epochs: 1 }, 'steps', /either epochs or steps/],
  ];
  it.each(cases)('%s', async (_title, body, field, message) => {
    stack = await makeStack('validation');
    const res = await submit(stack, body);
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error.code).toBe('invalid_job_spec');
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(await jobsQueued(stack)).toBe(0);
    expect((await stack.app.inject({ url: '/api/jobs' })).json().jobs).toEqual([]);
  });

  it('Infinity (1e999 in JSON) is rejected', async () => {
    stack = await makeStack('infinity');
    const res = await submit(stack, '{"model":"lenet5","dataset":"mnist","steps":1e999}');
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_job_spec', field: 'steps', message: expect.stringContaining('got Infinity') });
  });

  it.each([
    ['__proto__ at the top', '{"model":"lenet5","dataset":"mnist","__proto__":{"polluted":true}}', '__proto__'],
    ['__proto__ nested', '{"model":"lenet5","dataset":"mnist","optimizer":{"type":"sgd","lr":0.1,"__proto__":{"x":1}}}', 'optimizer.__proto__'],
    ['constructor.prototype', '{"model":"lenet5","dataset":"mnist","constructor":{"prototype":{"x":1}}}', 'constructor.prototype'],
    ['__proto__ inside an array', '{"model":{"input":[1,28,28],"layers":[{"__proto__":{}}]},"dataset":"mnist"}', 'model.layers[0].__proto__'],
  ])('%s: 400 naming the key, no prototype touched', async (_title, body, field) => {
    stack = await makeStack('proto');
    const res = await submit(stack, body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'forbidden_key', field });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await jobsQueued(stack)).toBe(0);
  });

  it.each([
    ['an array', '[1,2]', 'invalid_request', /request body must be object/],
    ['a string', '"lenet5"', 'invalid_request', /request body must be object/],
    ['null', 'null', 'invalid_request', /request body must be object/],
    ['empty', '', 'invalid_request', /request body must be object/],
    ['invalid JSON', '{"model":', 'invalid_json', /not valid JSON/],
    ['NaN literal', '{"model":"lenet5","dataset":"mnist","steps":NaN}', 'invalid_json', /not valid JSON/],
  ])('a body that is %s: 400', async (_title, body, code, message) => {
    stack = await makeStack('shape');
    const res = await submit(stack, body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe(code);
    expect(res.json().error.message).toMatch(message);
    expect(await jobsQueued(stack)).toBe(0);
  });

  it('a body that is not JSON is a 415', async () => {
    stack = await makeStack('media');
    const res = await stack.app.inject({ method: 'POST', url: '/api/jobs', headers: { 'content-type': 'text/plain' }, payload: 'model=lenet5' });
    expect(res.statusCode).toBe(415);
    expect(res.json().error).toEqual({ code: 'unsupported_media_type', message: 'Content-Type "text/plain" is not supported: send application/json' });
  });

  it('a body over the limit is a 413', async () => {
    stack = await makeStack('huge');
    const huge = JSON.stringify({ ...SPEC, name: 'x'.repeat(1024 * 1024) });
    const res = await submit(stack, huge);
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toEqual({ code: 'body_too_large', message: 'request body is larger than the 1048576 bytes allowed' });
    expect(await jobsQueued(stack)).toBe(0);
  });
});

describe('tokens, CORS, unknown routes', () => {
  it('with STRIDE_TOKEN every POST needs the bearer token; GETs stay open', async () => {
    stack = await makeStack('auth', { server: { writeToken: 's3cret-token' } });
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 's3cret-token' }, { authorization: 'Basic s3cret-token' }, { authorization: 'Bearer s3cret-token-and-more' }];
    for (const headers of attempts) {
      const r = await submit(stack, SPEC, headers);
      expect(r.statusCode, JSON.stringify(headers)).toBe(401);
      expect(r.json().error.code).toBe('unauthorized');
    }
    expect(await jobsQueued(stack)).toBe(0);
    const ok = await submit(stack, SPEC, { authorization: 'Bearer s3cret-token' });
    expect(ok.statusCode).toBe(201);
    const { id } = ok.json();
    expect((await stack.app.inject({ method: 'POST', url: `/api/jobs/${id}/cancel` })).statusCode).toBe(401);
    expect((await stack.app.inject({ method: 'POST', url: `/api/jobs/${id}/cancel`, headers: { authorization: 'bearer s3cret-token' } })).statusCode).toBe(200);
    expect((await stack.app.inject({ url: '/api/jobs' })).statusCode).toBe(200);
    // The 401 comes before the body is looked at: no validation detail leaks to the unauthenticated.
    const bad = await submit(stack, { model: 5 });
    expect(bad.statusCode).toBe(401);
  });

  it('with STRIDE_READ_TOKEN every GET needs a token (the read or the write one); /healthz stays open', async () => {
    stack = await makeStack('read-auth', { server: { writeToken: 'w-token', readToken: 'r-token' } });
    expect((await stack.app.inject({ url: '/api/jobs' })).statusCode).toBe(401);
    expect((await stack.app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await stack.app.inject({ url: '/api/jobs', headers: { authorization: 'Bearer r-token' } })).statusCode).toBe(200);
    expect((await stack.app.inject({ url: '/api/jobs', headers: { authorization: 'Bearer w-token' } })).statusCode).toBe(200);
    expect((await stack.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    // The read token does not allow writes.
    expect((await submit(stack, SPEC, { authorization: 'Bearer r-token' })).statusCode).toBe(401);
  });

  it('sends no CORS headers unless CORS_ORIGIN is set', async () => {
    stack = await makeStack('cors-closed');
    const r = await stack.app.inject({ url: '/api/jobs', headers: { origin: 'http://evil.example' } });
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    const pre = await stack.app.inject({ method: 'OPTIONS', url: '/api/jobs', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    await stack.close();

    stack = await makeStack('cors-open', { server: { corsOrigin: 'http://localhost:5173' } });
    const allowed = await stack.app.inject({ url: '/api/jobs', headers: { origin: 'http://localhost:5173' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    const other = await stack.app.inject({ url: '/api/jobs', headers: { origin: 'http://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('an unknown route is a JSON 404', async () => {
    stack = await makeStack('404');
    for (const [method, url] of [
      ['GET', '/api/nothing'],
      ['POST', '/api/jobs/x/explode'],
      ['DELETE', '/api/jobs'],
    ] as const) {
      const r = await stack.app.inject({ method, url });
      expect(r.statusCode).toBe(404);
      expect(r.json()).toEqual({ error: { code: 'not_found', message: `${method} ${url} does not exist` } });
    }
  });

  it('a fault in a handler is a JSON 500 and the server goes on', async () => {
    stack = await makeStack('fault');
    const { id } = (await submit(stack)).json();
    const original = stack.coordinator.metrics.bind(stack.coordinator);
    stack.coordinator.metrics = async () => {
      throw new TypeError('metrics exploded');
    };
    const r = await stack.app.inject({ url: `/api/jobs/${id}/metrics` });
    expect(r.statusCode).toBe(500);
    expect(r.json()).toEqual({ error: { code: 'internal_error', message: 'metrics exploded' } });
    stack.coordinator.metrics = original;
    expect((await stack.app.inject({ url: `/api/jobs/${id}/metrics` })).statusCode).toBe(200);
  });
});

describe('workers, queues, zoo, config, health, Prometheus', () => {
  it('GET /api/workers lists workers from their heartbeats', async () => {
    stack = await makeStack('workers');
    const redis = new Redis(stack.config.redisUrl);
    const beat = new Heartbeat(redis, new Keys(stack.config.prefix), {
      info: () => ({ id: 'host-a:42:abc', host: 'host-a', pid: 42, threads: 2, shardsDone: 7, shardsFailed: 0, busyMs: 10, active: 0, state: 'running', startedAt: Date.now() }),
    });
    try {
      await beat.start();
      const r = await stack.app.inject({ url: '/api/workers' });
      expect(r.statusCode).toBe(200);
      expect(r.json().workers).toEqual([expect.objectContaining({ id: 'host-a:42:abc', threads: 2, shardsDone: 7, alive: true })]);
      const m = await stack.app.inject({ url: '/metrics' });
      expect(m.body).toContain('\nstride_workers_alive 1\n');
    } finally {
      await beat.stop();
      redis.disconnect();
    }
  });

  it('GET /api/queues gives waiting, active and failed counts per queue', async () => {
    stack = await makeStack('queues');
    await submit(stack);
    await submit(stack);
    const r = await stack.app.inject({ url: '/api/queues' });
    expect(r.statusCode).toBe(200);
    const { queues } = r.json();
    expect(queues.jobs).toMatchObject({ waiting: 2, active: 0, failed: 0 });
    expect(queues.shards).toMatchObject({ waiting: 0, active: 0, failed: 0 });
  });

  it('GET /api/zoo and /api/config give what the form needs, defaults from the engine', async () => {
    stack = await makeStack('config');
    expect((await stack.app.inject({ url: '/api/zoo' })).json()).toEqual({ models: expect.arrayContaining(['lenet5']) });
    const config = (await stack.app.inject({ url: '/api/config' })).json();
    expect(config.datasets).toEqual(
      expect.arrayContaining([
        { name: 'mnist', input: [1, 28, 28], numClasses: 10, task: 'classification' },
        { name: 'mnist-detection', input: [1, 96, 96], numClasses: 10, task: 'detection', generated: { train: 5000, test: 1000 } },
      ]),
    );
    expect(config.optimizers).toEqual(['sgd', 'adam', 'adamw']);
    expect(config.models).toContain('lenet5');
    expect(config.defaults).toMatchObject({ batchSize: 64, shards: 4, optimizer: { type: 'adam' } });
    // The defaults are themselves a valid spec.
    expect((await submit(stack, config.defaults)).statusCode).toBe(201);
  });

  it('GET /metrics speaks the Prometheus text format', async () => {
    stack = await makeStack('prom');
    await submit(stack);
    const { id } = (await submit(stack)).json();
    await stack.app.inject({ method: 'POST', url: `/api/jobs/${id}/cancel` });
    const r = await stack.app.inject({ url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const lines = r.body.split('\n');
    for (const l of ['# TYPE stride_jobs gauge', 'stride_jobs{state="queued"} 1', 'stride_jobs{state="cancelled"} 1', 'stride_jobs{state="running"} 0', '# TYPE stride_steps_total counter', 'stride_steps_total 0', 'stride_workers_alive 0', 'stride_queue_jobs{queue="jobs",state="waiting"} 1', 'stride_queue_jobs{queue="shards",state="active"} 0', 'stride_images_per_second_total 0']) {
      expect(lines, l).toContain(l);
    }
    // Every sample line is `name{labels} value`.
    for (const l of lines.filter((x) => x && !x.startsWith('#'))) expect(l).toMatch(/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/);
  });

  it('GET /healthz says whether Redis answers', async () => {
    stack = await makeStack('health');
    const r = await stack.app.inject({ url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok', redis: 'up' });
  });

  it('with Redis down: /healthz and Redis-backed calls answer 503 without waiting for it, validation is still a 400', async () => {
    // A port nobody listens on stands for a Redis that is down.
    const deadPort = await new Promise<number>((res) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
    stack = await makeStack('down', { redisUrl: `redis://127.0.0.1:${deadPort}`, start: false });
    // Redis never comes back in this test: a call held until it does would never be answered.
    const health = await stack.app.inject({ url: '/healthz' });
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ status: 'unavailable', redis: 'down', error: { code: 'redis_unreachable' } });
    for (const [method, url] of [
      ['POST', '/api/jobs'],
      ['GET', '/api/jobs'],
      ['GET', '/api/workers'],
      ['GET', '/api/queues'],
      ['GET', '/metrics'],
    ] as const) {
      const r = await stack.app.inject({ method, url, ...(method === 'POST' ? json(SPEC) : {}) });
      expect(r.statusCode, url).toBe(503);
      expect(r.json().error.code).toBe('service_unavailable');
    }
    const bad = await submit(stack, { ...SPEC, steps: 0 });
    expect(bad.statusCode).toBe(400);
    // What lives on disk is still served.
    expect((await stack.app.inject({ url: '/api/zoo' })).statusCode).toBe(200);
  });
});
