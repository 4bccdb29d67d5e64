// The dashboard's small server: serves the built web app, proxies the coordinator's HTTP API
// (server-sent events included, streamed as they come) and mounts BullMQ's own board at /queues.
//
//   API_URL          coordinator base URL              default http://127.0.0.1:4000
//   HOST             interface to bind                 default 127.0.0.1 (secure by default)
//   DASHBOARD_PORT   port                              default 5173
//   DASHBOARD_DIST   folder of the built app           default apps/dashboard/dist
//   REDIS_URL        Redis holding the BullMQ queues   default redis://127.0.0.1:6379
//   STRIDE_QUEUE_PREFIX  BullMQ key prefix (libs/queue)  default stride
//
// The browser talks only to this server, so the API needs no CORS.
//
// Authentication: this server holds no token and adds none. The coordinator is the one authority:
//   - /api/* and /healthz: the browser sends its own `Authorization: Bearer <token>` (the token
//     dialog asks for it on the first 401) and the proxy passes it on. The event stream is read
//     with fetch, not EventSource, so it carries the header too. A dashboard reachable from
//     elsewhere thus hands out no right the visitor does not already have, and since no cookie is
//     involved a third-party page cannot make the browser act on the API (no CSRF).
//   - /queues (BullMQ's board, which reads Redis directly): a page the browser navigates to, so it
//     cannot carry a bearer header. It answers with an HTTP Basic challenge instead (any user name,
//     the API token as password; the browser asks once and resends it for /queues only), and lets
//     the request through only if the coordinator accepts that token for `GET /api/queues` — the
//     same read the board shows. With no STRIDE_READ_TOKEN on the coordinator the board is as open
//     as the API; with the coordinator unreachable it is closed (502).

import { createHash } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import httpProxy from '@fastify/http-proxy';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';

export interface DashboardServerOptions {
  /** Coordinator base URL that `/api/*` and `/healthz` are forwarded to. Default `http://127.0.0.1:4000`. */
  apiUrl?: string;
  /** Interface to bind. Default `127.0.0.1`; set `0.0.0.0` (env `HOST`) to serve other machines. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 5173. */
  port?: number;
  /** Folder holding the built app (`vite build` output). Default `apps/dashboard/dist`. */
  distDir?: string;
  /** Redis URL of the BullMQ queues shown at `/queues`. Default `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** BullMQ key prefix of Stride's queues. Default `stride`. */
  prefix?: string;
  /** How often the board looks for queues created since (ms). Default 5000. */
  queueRefreshMs?: number;
  /** Fastify's logger. Default false. */
  logger?: boolean;
  /** How long the coordinator's "yes" to a /queues visitor's token is remembered (ms). Default 5000. */
  boardAuthCacheMs?: number;
}

export interface DashboardServer {
  /** `http://host:port` the server listens on. */
  readonly url: string;
  readonly app: FastifyInstance;
  /** Names of the queues the board currently shows. */
  queueNames(): string[];
  /** Stops listening, closes the queue connections. Idempotent. */
  close(): Promise<void>;
}

const defaultDist = fileURLToPath(new URL('../dist', import.meta.url));

const defaults: Required<DashboardServerOptions> = {
  apiUrl: 'http://127.0.0.1:4000',
  host: '127.0.0.1',
  port: 5173,
  distDir: defaultDist,
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: 'stride',
  queueRefreshMs: 5000,
  logger: false,
  boardAuthCacheMs: 5000,
};

/** Reads the options from the environment variables listed at the top of this file. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): DashboardServerOptions {
  const port = env.DASHBOARD_PORT === undefined ? undefined : Number(env.DASHBOARD_PORT);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
    throw new Error(`DASHBOARD_PORT must be an integer in [0, 65535], got ${JSON.stringify(env.DASHBOARD_PORT)}`);
  }
  return {
    apiUrl: env.API_URL,
    host: env.HOST,
    port,
    distDir: env.DASHBOARD_DIST,
    redisUrl: env.REDIS_URL,
    prefix: env.STRIDE_QUEUE_PREFIX,
  };
}

/** The URL with its password masked, for logs. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

/** Drops undefined fields so that one spread applies the defaults. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Escapes Redis glob characters, so a prefix such as `{stride}` or `a*b` matches only itself. */
const globEscape = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Finds the BullMQ queues under `prefix` by their `<prefix>:<name>:meta` hash, which BullMQ
 * writes when a queue is first used. Reading Redis keeps the dashboard free of the queue
 * library (its browser tag forbids it) and also shows queues created after start.
 */
async function discoverQueues(redis: Redis, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  const head = `${prefix}:`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(head)}*:meta`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const name = key.slice(head.length, -':meta'.length);
      // A colon inside would be another prefix's queue seen through this pattern.
      if (name.length > 0 && !name.includes(':')) names.add(name);
    }
  } while (cursor !== '0');
  return [...names].sort();
}

/** The bearer token of an `Authorization` header: `Bearer <token>`, or the password of `Basic base64(user:token)`. */
export function tokenFromAuthorization(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const bearer = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  return password === '' ? undefined : password;
}

/**
 * Asks the coordinator whether a token may read (`GET /api/queues` with it): 'allowed', 'denied'
 * (a 401 or 403) or 'unreachable'. A yes is remembered for `cacheMs` per token (by its SHA-256),
 * so the board's polling does not turn into one API call per request.
 */
function boardGuard(upstream: string, cacheMs: number): (authorization: string | undefined) => Promise<'allowed' | 'denied' | 'unreachable'> {
  const allowedUntil = new Map<string, number>();
  return async (authorization) => {
    const token = tokenFromAuthorization(authorization);
    const key = createHash('sha256').update(token ?? '').digest('hex');
    const now = Date.now();
    if ((allowedUntil.get(key) ?? 0) > now) return 'allowed';
    let status: number;
    try {
      const res = await fetch(`${upstream}/api/queues`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      status = res.status;
    } catch {
      return 'unreachable';
    }
    if (status === 401 || status === 403) return 'denied';
    if (status < 200 || status >= 300) return 'unreachable';
    if (allowedUntil.size > 1000) allowedUntil.clear(); // many tokens: forget them all rather than grow
    allowedUntil.set(key, now + cacheMs);
    return 'allowed';
  };
}

export async function startDashboardServer(options: DashboardServerOptions = {}): Promise<DashboardServer> {
  const o: Required<DashboardServerOptions> = { ...defaults, ...defined(options) };
  try {
    new URL(o.apiUrl);
  } catch {
    throw new Error(`dashboard: API_URL must be an absolute URL such as http://127.0.0.1:4000, got ${JSON.stringify(o.apiUrl)}`);
  }
  if (!existsSync(join(o.distDir, 'index.html'))) {
    throw new Error(`dashboard: no built app in ${o.distDir} (index.html missing): run \`npm run build -w apps/dashboard\` first`);
  }

  const app = Fastify({ logger: o.logger });
  const upstream = o.apiUrl.replace(/\/+$/, '');

  // The coordinator down or unreachable: a 502 (504 on a timeout) in the API's own error shape,
  // so the browser shows one kind of message whatever failed.
  const onError = (reply: { code(status: number): { send(body: unknown): unknown } }, { error }: { error: Error }): void => {
    const cause = (error as Error & { cause?: Error }).cause;
    const timeout = /timeout/i.test(error.name) || /timeout/i.test(String((error as { code?: unknown }).code));
    reply.code(timeout ? 504 : 502).send({
      error: { code: 'coordinator_unreachable', message: `the coordinator at ${upstream} did not answer: ${cause?.message ?? error.message}` },
    });
  };

  // Server-sent events: a stream that stays open, so no body timeout; registered before the
  // general proxy so its more specific route wins.
  await app.register(httpProxy, {
    upstream,
    prefix: '/api/events',
    rewritePrefix: '/api/events',
    undici: { bodyTimeout: 0 },
    replyOptions: {
      onError,
      rewriteHeaders: (headers) => ({ ...headers, 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }),
    },
  });
  await app.register(httpProxy, { upstream, prefix: '/api', rewritePrefix: '/api', replyOptions: { onError } });
  await app.register(httpProxy, { upstream, prefix: '/healthz', rewritePrefix: '/healthz', replyOptions: { onError } });

  // The board's door (see the top of this file): the coordinator decides who may read.
  const boardAuth = boardGuard(upstream, o.boardAuthCacheMs);
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0];
    if (path !== '/queues' && !path.startsWith('/queues/')) return;
    const verdict = await boardAuth(req.headers.authorization);
    if (verdict === 'allowed') return;
    if (verdict === 'unreachable') {
      return reply.code(502).send({ error: { code: 'coordinator_unreachable', message: `/queues needs the coordinator at ${upstream} to check the token, and it did not answer` } });
    }
    return reply
      .code(401)
      .header('www-authenticate', 'Basic realm="Stride queues: any user name, the API token as password", charset="UTF-8"')
      .send({ error: { code: 'unauthorized', message: '/queues needs the API read token: HTTP Basic with the token as password, or Authorization: Bearer <token>' } });
  });

  // BullMQ's board, read-only: it is a window onto the queues, and Stride's queues are driven
  // by the coordinator alone (retrying or deleting a shard job by hand helps nobody).
  let refreshError: string | undefined;
  // Fail fast rather than queue commands while Redis is away: the page and the board must answer
  // (with an error) instead of hanging; ioredis reconnects in the background.
  const redis = new Redis(o.redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // Connection errors surface through the failed scans below; without a listener ioredis would
  // print each reconnection attempt.
  redis.on('error', (err: Error) => {
    refreshError ??= err.message;
  });
  const queues = new Map<string, Queue>();
  const boardAdapter = new FastifyAdapter();
  boardAdapter.setBasePath('/queues');
  const board = createBullBoard({
    queues: [],
    serverAdapter: boardAdapter,
    options: { uiConfig: { boardTitle: 'Stride queues' } },
  });
  const refreshQueues = async (): Promise<void> => {
    const names = await discoverQueues(redis, o.prefix);
    let changed = false;
    for (const name of names) {
      if (queues.has(name)) continue;
      queues.set(name, new Queue(name, { connection: redis, prefix: o.prefix }));
      changed = true;
    }
    if (changed) {
      board.replaceQueues([...queues.values()].map((q) => new BullMQAdapter(q, { readOnlyMode: true })));
    }
  };
  let refreshing = false;
  const refreshLoop = async (): Promise<void> => {
    if (refreshing) return; // a slow scan is still going
    refreshing = true;
    try {
      await refreshQueues();
      refreshError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== refreshError) console.warn(`dashboard: cannot list the BullMQ queues in Redis (${message}); retrying every ${o.queueRefreshMs} ms`);
      refreshError = message;
    } finally {
      refreshing = false;
    }
  };
  await redis.connect().catch((err: Error) => {
    refreshError = err.message;
    console.warn(`dashboard: Redis at ${redact(o.redisUrl)} unreachable (${err.message}); /queues stays empty until it answers`);
  });
  await refreshLoop();
  const timer = setInterval(() => void refreshLoop(), o.queueRefreshMs);
  timer.unref();
  await app.register(boardAdapter.registerPlugin(), { prefix: '/queues' });

  // The built app; unknown GET paths that are not API calls get index.html (client-side routes).
  await app.register(fastifyStatic, { root: o.distDir, prefix: '/', wildcard: true, index: ['index.html'] });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && !path.startsWith('/api/') && !/\.[a-z0-9]+$/i.test(path)) {
      return reply.type('text/html').sendFile('index.html');
    }
    return reply.code(404).send({ error: { code: 'not_found', message: `${req.method} ${path} does not exist` } });
  });

  await app.listen({ host: o.host, port: o.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    app,
    queueNames: () => [...queues.keys()],
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        try {
          await app.close();
        } catch (err) {
          console.error('dashboard: closing the HTTP server failed:', err);
        }
        for (const q of queues.values()) {
          try {
            await q.close();
          } catch (err) {
            console.error(`dashboard: closing queue ${q.name} failed:`, err);
          }
        }
        try {
          redis.disconnect();
        } catch (err) {
          console.error('dashboard: closing Redis failed:', err);
        }
      })();
      return closing;
    },
  };
}

async function main(): Promise<void> {
  const server = await startDashboardServer({ ...optionsFromEnv(), logger: false });
  const apiUrl = process.env.API_URL ?? defaults.apiUrl;
  console.log(`stride dashboard listening on ${server.url} (API ${apiUrl}, queues at ${server.url}/queues)`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
