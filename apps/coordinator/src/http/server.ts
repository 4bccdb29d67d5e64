// The coordinator's HTTP API (Fastify).
//
//   POST /api/jobs                          submit a job spec          201 + job
//   GET  /api/jobs                          list jobs
//   GET  /api/jobs/:id                      one job
//   POST /api/jobs/:id/cancel|pause|resume  state changes (cancel stops at a step boundary and
//                                           writes a final checkpoint)
//   GET  /api/jobs/:id/metrics              step and eval metrics
//   GET  /api/jobs/:id/checkpoints          checkpoint list
//   GET  /api/jobs/:id/checkpoints/:name    checkpoint download (its SHA-256 verified first: 409 if corrupt)
//   GET  /api/workers                       workers and their heartbeats
//   GET  /api/queues                        waiting / active / failed per queue
//   GET  /api/events                        server-sent events: job, step, eval, checkpoint,
//                                           workers, log (?job=<id> and ?types=step,eval filter)
//   GET  /api/zoo, /api/config              what the submit form offers
//   GET  /healthz                           Redis reachable?
//   GET  /metrics                           Prometheus text format
//
// Every error is `{ error: { code, message, field? } }`. Bad input is rejected here, before
// anything reaches Redis; a call that needs Redis while it is down gets a 503 instead of hanging.
import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import cors from '@fastify/cors';
import { verifyCheckpointBytes } from '@stride/engine';
import { checkAuth } from './auth.ts';
import { parseJsonBody } from './body.ts';
import { HttpError, ServiceUnavailableError, badRequest, notFound, toHttpError } from './errors.ts';
import type { ApiEvent, CoordinatorPort } from './port.ts';
import { PROMETHEUS_CONTENT_TYPE, formatPrometheus, type MetricFamily } from './prometheus.ts';
import { EventStreams } from './sse.ts';

export interface HttpServerOptions {
  /** The coordinator behind the API (see `adapter.ts` for the real one). */
  coordinator: CoordinatorPort;
  /** When set, every state-changing call needs `Authorization: Bearer <writeToken>`. Default: unset. */
  writeToken?: string;
  /** When set, every read needs a bearer token too (this one or the write token). Default: unset. */
  readToken?: string;
  /** Origins allowed by CORS. Default: none (no CORS headers at all). `*` allows any. */
  corsOrigin?: string | readonly string[];
  /** Largest accepted request body, bytes; larger → 413. Default 1 MiB. */
  bodyLimit?: number;
  /** A Redis-backed call slower than this gets a 503, ms. Default 5 000. */
  redisTimeoutMs?: number;
  /** Interval of SSE heartbeat comments, ms. Default 15 000. */
  sseHeartbeatMs?: number;
  /** Fastify's logger option. Default false. */
  logger?: FastifyServerOptions['logger'];
}

const defaults = {
  bodyLimit: 1024 * 1024,
  redisTimeoutMs: 5_000,
  sseHeartbeatMs: 15_000,
  logger: false as FastifyServerOptions['logger'],
};

/** Job ids reach file paths and Redis keys: the engine's rule, 1-128 of [A-Za-z0-9_.-], no leading dot. */
const JOB_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

function checkJobId(id: string): string {
  if (!JOB_ID.test(id)) {
    throw badRequest('invalid_job_id', `job id ${JSON.stringify(id)} is not valid: expected 1-128 characters of [A-Za-z0-9_.-], not starting with "."`, 'id');
  }
  return id;
}

/** Map coordinator errors for state changes and unknown ids to 404 / 409 by their names. */
function coordinatorError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof HttpError) return err;
  if (/NotFound/i.test(err.name)) return new HttpError(404, 'not_found', err.message);
  if (/(State|Transition|Conflict)Error$/.test(err.name)) return new HttpError(409, 'invalid_state', err.message);
  return err;
}

/** Whether an event belongs in a stream filtered to one job (worker and global events always do). */
function concernsJob(event: ApiEvent, job: string): boolean {
  switch (event.type) {
    case 'job':
      return event.data.id === job;
    case 'workers':
      return true;
    case 'log':
      return event.data.jobId === undefined || event.data.jobId === job;
    default:
      return event.data.jobId === job;
  }
}

/**
 * Counters that only the live event stream knows: steps completed since this process started
 * and the latest throughput of each job. Everything else `/metrics` shows is read on demand.
 */
class EventCounters {
  stepsTotal = 0;
  evalsTotal = 0;
  /** jobId → images/s of its latest step. */
  readonly imagesPerSec = new Map<string, number>();

  observe(event: ApiEvent): void {
    if (event.type === 'step') {
      this.stepsTotal++;
      const ips = event.data.imagesPerSec;
      if (typeof ips === 'number' && Number.isFinite(ips)) this.imagesPerSec.set(event.data.jobId, ips);
    } else if (event.type === 'eval') {
      this.evalsTotal++;
    } else if (event.type === 'job' && event.data.state.status !== 'running') {
      this.imagesPerSec.delete(event.data.id);
    }
  }
}

/** One route of the API: its method and URL pattern (`/api/jobs/:id`). */
export interface RouteInfo {
  readonly method: string;
  readonly url: string;
}

const ROUTES = new WeakMap<FastifyInstance, RouteInfo[]>();

/**
 * Every route an app built by `buildHttpServer` serves (HEAD twins and CORS preflights included),
 * so tests can check a property of each route, including routes added later.
 */
export function listRoutes(app: FastifyInstance): readonly RouteInfo[] {
  return ROUTES.get(app) ?? [];
}

/** Builds the Fastify app (not listening). `app.close()` ends SSE streams and unsubscribes. */
export async function buildHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const o = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as HttpServerOptions & typeof defaults;
  const port = o.coordinator;
  const app = Fastify({
    logger: o.logger,
    bodyLimit: o.bodyLimit,
    // Validation is the engine's job; Ajv only checks the body's outer shape, without coercion.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
    // Long enough for any valid job id (128), so that a longer one gets our 400, not a bare 414.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // Errors the router raises before any hook runs (a malformed percent-encoding, an overlong
    // path parameter) get our error shape too, not Fastify's default body.
    frameworkErrors: (err, _req, reply) => {
      const e = toHttpError(err);
      void (reply as FastifyReply).code(e.statusCode).type('application/json; charset=utf-8').send(e.toBody());
    },
    // Ajv's first error, as our error shape, naming the field it is about.
    schemaErrorFormatter: (errors, dataVar) => {
      const e = errors[0];
      const path = (e?.instancePath ?? '').split('/').filter(Boolean).join('.');
      const where = path ? `${dataVar}.${path}` : dataVar === 'body' ? 'the request body' : dataVar;
      const hint = dataVar === 'body' && !path ? ' (a job spec: a JSON object)' : '';
      return badRequest('invalid_request', `${where} ${e?.message ?? 'is not valid'}${hint}`, path || undefined);
    },
  });

  const routes: RouteInfo[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method, url: r.url });
  });

  // One parser for every route: JSON only (anything else is a 415), strict, prototype-safe,
  // empty body allowed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    try {
      // The body is read as UTF-8: a body declared in another charset is refused, not misread.
      const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1];
      if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
        throw new HttpError(415, 'unsupported_media_type', `charset ${JSON.stringify(charset)} is not supported: send application/json in UTF-8`);
      }
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  if (o.corsOrigin !== undefined && o.corsOrigin.length > 0) {
    const origins = typeof o.corsOrigin === 'string' ? o.corsOrigin.split(',').map((s) => s.trim()).filter(Boolean) : [...o.corsOrigin];
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'POST'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Last-Event-ID'],
    });
  }

  app.addHook('onRequest', async (req) => {
    if (req.url === '/healthz' || req.url.startsWith('/healthz?')) return; // liveness probes carry no token
    if (req.method === 'OPTIONS') return; // CORS preflight carries no credentials
    checkAuth({ writeToken: o.writeToken, readToken: o.readToken }, req.method, req.headers.authorization);
  });

  app.setErrorHandler((err, req, reply) => {
    let e = toHttpError(err);
    // Fastify's own messages do not say what the limit or the accepted type is.
    if (e.code === 'body_too_large') e = new HttpError(413, e.code, `request body is larger than the ${o.bodyLimit} bytes allowed`);
    if (e.code === 'unsupported_media_type' && !(err instanceof HttpError)) e = new HttpError(415, e.code, `Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')} is not supported: send application/json`);
    if (e.statusCode >= 500) req.log.error({ err }, `${req.method} ${req.url} failed`);
    void reply.code(e.statusCode).type('application/json; charset=utf-8').send(e.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    void reply.code(404).send(notFound(`${req.method} ${path} does not exist`).toBody());
  });

  /**
   * Runs a Redis-backed call with a deadline, so a dead Redis yields a 503, not a hung request.
   * `needsRedis`: the call cannot work without Redis, so a known-down Redis fails it at once.
   */
  const withRedis = async <T>(what: string, call: () => Promise<T>, needsRedis = true): Promise<T> => {
    if (needsRedis && !port.redisReady()) throw new ServiceUnavailableError(`${what}: Redis is unreachable`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ServiceUnavailableError(`${what}: Redis did not answer within ${o.redisTimeoutMs} ms`)), o.redisTimeoutMs);
    });
    try {
      return await Promise.race([Promise.resolve().then(call), deadline]);
    } catch (err) {
      throw coordinatorError(err);
    } finally {
      clearTimeout(timer);
    }
  };

  const getJob = async (id: string) => {
    checkJobId(id);
    const job = await withRedis(`GET job ${id}`, () => port.get(id), false);
    if (job === undefined) throw notFound(`job ${JSON.stringify(id)} does not exist`);
    return job;
  };

  const counters = new EventCounters();
  const unsubscribeCounters = port.subscribe((event) => counters.observe(event));
  const streams = new EventStreams();
  app.addHook('preClose', async () => {
    streams.closeAll();
  });
  app.addHook('onClose', async () => {
    unsubscribeCounters();
  });

  type IdParams = { Params: { id: string } };

  app.post('/api/jobs', { schema: { body: { type: 'object' } } }, async (req, reply) => {
    if (req.body === undefined || req.body === null) throw badRequest('invalid_job_spec', 'the request body must be a job spec (a JSON object)');
    // The engine's validation, before anything touches Redis: a bad spec enqueues nothing.
    const spec = port.validate(req.body);
    const job = await withRedis('submit', () => port.submit(spec));
    return reply.code(201).header('location', `/api/jobs/${encodeURIComponent(job.id)}`).send(job);
  });

  app.get('/api/jobs', async () => ({ jobs: await withRedis('list jobs', () => port.list()) }));

  app.get<IdParams>('/api/jobs/:id', async (req) => getJob(req.params.id));

  for (const action of ['cancel', 'pause', 'resume'] as const) {
    app.post<IdParams>(`/api/jobs/:id/${action}`, async (req) => {
      const id = checkJobId(req.params.id);
      await getJob(id);
      return withRedis(`${action} job ${id}`, () => port[action](id));
    });
  }

  app.get<IdParams>('/api/jobs/:id/metrics', async (req) => {
    const id = (await getJob(req.params.id)).id;
    return { jobId: id, metrics: await withRedis(`metrics of job ${id}`, () => port.metrics(id), false) };
  });

  app.get<IdParams>('/api/jobs/:id/checkpoints', async (req) => {
    const id = (await getJob(req.params.id)).id;
    return { jobId: id, checkpoints: await withRedis(`checkpoints of job ${id}`, () => port.checkpoints(id), false) };
  });

  app.get<{ Params: { id: string; name: string } }>('/api/jobs/:id/checkpoints/:name', async (req, reply) => {
    const { name } = req.params;
    const id = checkJobId(req.params.id);
    if (name.includes('/') || name.includes('\\') || name.includes('..') || name.includes('\0') || !port.isCheckpointName(name)) {
      throw badRequest('invalid_checkpoint_name', `checkpoint name ${JSON.stringify(name)} is not valid: it must be a plain file name following the checkpoint naming pattern`, 'name');
    }
    await getJob(id);
    const listed = await withRedis(`checkpoints of job ${id}`, () => port.checkpoints(id), false);
    if (!listed.some((c) => c.name === name)) throw notFound(`job ${id} has no checkpoint ${JSON.stringify(name)}`);
    const file = port.checkpointPath(id, name);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      throw notFound(`checkpoint ${JSON.stringify(name)} of job ${id} is listed but its file is gone`);
    }
    // A file changed on disk (tampering, bit rot, a torn copy) is refused, never served: the
    // header's SHA-256 must match the payload, as the trainer checks before it resumes from it.
    try {
      verifyCheckpointBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), name);
    } catch (err) {
      throw new HttpError(409, 'checkpoint_corrupt', `checkpoint ${JSON.stringify(name)} of job ${id} fails verification and is not served: ${(err as Error).message}`);
    }
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', bytes.byteLength)
      .header('content-disposition', `attachment; filename="${id}-${name}"`)
      .send(bytes);
  });

  app.get('/api/workers', async () => ({ workers: await withRedis('list workers', () => port.workers()) }));

  app.get('/api/queues', async () => ({ queues: await withRedis('queue counts', () => port.queueCounts()) }));

  app.get('/api/zoo', async () => ({ models: port.zoo() }));
  app.get('/api/config', async () => port.config());

  // A repeated parameter (`?types=a&types=b`) arrives as an array: the schema turns it into a 400.
  const eventsQuery = { type: 'object', properties: { job: { type: 'string' }, types: { type: 'string' } } } as const;
  app.get<{ Querystring: { job?: string; types?: string } }>('/api/events', { schema: { querystring: eventsQuery } }, (req: FastifyRequest<{ Querystring: { job?: string; types?: string } }>, reply: FastifyReply) => {
    const job = req.query.job !== undefined ? checkJobId(req.query.job) : undefined;
    const types = req.query.types !== undefined ? new Set(req.query.types.split(',')) : undefined;
    // HEAD (Fastify's twin of this GET): the headers alone. A stream would never flush them (a HEAD
    // response has no body to write) and would hold a subscription open for nothing.
    if (req.method === 'HEAD') {
      void reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').send();
      return;
    }
    streams.start(
      req,
      reply,
      (send) =>
        port.subscribe((event) => {
          if (types !== undefined && !types.has(event.type)) return;
          if (job !== undefined && !concernsJob(event, job)) return;
          send(event.type, event.data);
        }),
      { heartbeatMs: o.sseHeartbeatMs },
    );
  });

  app.get('/healthz', async (_req, reply) => {
    try {
      await withRedis('ping', () => port.ping(), false);
      return { status: 'ok', redis: 'up' };
    } catch (err) {
      const e = toHttpError(err);
      return reply.code(503).send({ status: 'unavailable', redis: 'down', error: { code: 'redis_unreachable', message: e.message } });
    }
  });

  app.get('/metrics', async (_req, reply) => {
    const [jobs, workers, queues] = await Promise.all([
      withRedis('list jobs', () => port.list()),
      withRedis('list workers', () => port.workers()),
      withRedis('queue counts', () => port.queueCounts()),
    ]);
    const byState = new Map<string, number>();
    for (const s of ['queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled']) byState.set(s, 0);
    for (const j of jobs) byState.set(j.state.status, (byState.get(j.state.status) ?? 0) + 1);
    const families: MetricFamily[] = [
      { name: 'stride_jobs', help: 'Jobs by state.', type: 'gauge', samples: [...byState].map(([state, value]) => ({ labels: { state }, value })) },
      { name: 'stride_steps_total', help: 'Training steps completed since this coordinator started.', type: 'counter', samples: [{ value: counters.stepsTotal }] },
      { name: 'stride_evals_total', help: 'Evaluations completed since this coordinator started.', type: 'counter', samples: [{ value: counters.evalsTotal }] },
      {
        name: 'stride_images_per_second',
        help: 'Training throughput of the latest step, per running job.',
        type: 'gauge',
        samples: [...counters.imagesPerSec].map(([job, value]) => ({ labels: { job }, value })),
      },
      {
        name: 'stride_images_per_second_total',
        help: 'Sum of the latest training throughput over running jobs.',
        type: 'gauge',
        samples: [{ value: [...counters.imagesPerSec.values()].reduce((a, b) => a + b, 0) }],
      },
      { name: 'stride_workers_alive', help: 'Workers whose heartbeat is recent.', type: 'gauge', samples: [{ value: workers.filter((w) => w.alive).length }] },
      {
        name: 'stride_queue_jobs',
        help: 'BullMQ jobs per queue and state.',
        type: 'gauge',
        samples: Object.entries(queues).flatMap(([queue, counts]) => Object.entries(counts).map(([state, value]) => ({ labels: { queue, state }, value }))),
      },
      { name: 'stride_sse_clients', help: 'Open /api/events streams.', type: 'gauge', samples: [{ value: streams.size }] },
    ];
    return reply.type(PROMETHEUS_CONTENT_TYPE).send(formatPrometheus(families));
  });

  return app;
}

export interface StartedHttpServer {
  readonly app: FastifyInstance;
  /** `http://host:port` the API listens on. */
  readonly url: string;
  /** Stops listening and ends open event streams. Idempotent. */
  close(): Promise<void>;
}

/** Builds the app and listens. Binds to 127.0.0.1 unless `host` says otherwise. */
export async function startHttpServer(options: HttpServerOptions & { host?: string; port?: number }): Promise<StartedHttpServer> {
  const { host = '127.0.0.1', port = 4000, ...rest } = options;
  const app = await buildHttpServer(rest);
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  let closing: Promise<void> | undefined;
  return {
    app,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    close: () => (closing ??= app.close()),
  };
}
