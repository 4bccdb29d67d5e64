// `npm start`: the whole Stride stack on this machine, in one command.
//
//   1. Redis: the one at REDIS_URL (default redis://127.0.0.1:6379); when none answers there and
//      REDIS_URL was not set, a `redis-server` of our own (AOF on, data under STRIDE_DATA_DIR/redis);
//      when that is not installed either, what to install.
//   2. The coordinator with its HTTP API (PORT, default 4000).
//   3. STRIDE_WORKERS workers (default 2).
//   4. The dashboard server (DASHBOARD_PORT, default 5173), built first if apps/dashboard/dist is
//      missing.
//
// Each child's output is prefixed with its name. Ctrl-C / SIGTERM stops everything in order
// (dashboard, coordinator, workers, Redis). A child that dies on its own is reported; a
// worker's death leaves the rest running, any other stops the stack with exit code 1.
//
// Environment: REDIS_URL, STRIDE_DATA_DIR (default ./data), HOST (default 127.0.0.1), PORT,
// DASHBOARD_PORT, STRIDE_WORKERS, STRIDE_THREADS (per worker; default: the cores shared among the
// workers), STRIDE_TOKEN / STRIDE_READ_TOKEN (passed on), and whatever the children read themselves.
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICE_NODE_OPTIONS } from '@stride/queue';
import { parseRedisUrl, probeRedis, waitForRedis } from './redis-probe.ts';
import { Supervisor, type ChildSpec } from './supervisor.ts';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** Process entries of the stack, relative to the repository root. */
export const ENTRIES = {
  coordinator: 'apps/coordinator/src/main.ts',
  worker: 'apps/worker/src/main.ts',
  dashboard: 'apps/dashboard/src/server.ts',
  dashboardDist: 'apps/dashboard/dist/index.html',
} as const;

const INSTALL_REDIS = [
  'No Redis answers and `redis-server` is not installed. Install one of:',
  '  Debian/Ubuntu:  sudo apt-get install redis-server',
  '  macOS:          brew install redis',
  '  Docker:         docker compose up        (runs the whole stack, Redis included)',
  'or point REDIS_URL at a running Redis 7 (redis://host:port).',
].join('\n');

function intEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

/** Resolves with true when `port` can be bound on `host` right now. */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => res(true)));
  });
}

/** A port the OS says is free on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Finds an executable on PATH. */
function which(cmd: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** Polls `url` until it answers with any HTTP status (or with 2xx when `ok2xx`), or the deadline. */
async function waitForHttp(url: string, timeoutMs: number, isAlive: () => boolean, ok2xx = false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && isAlive()) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await r.body?.cancel();
      if (!ok2xx || r.ok) return true;
    } catch {
      // Not listening yet.
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  return false;
}

/**
 * Stop order: the dashboard first (no new requests), then the coordinator (it checkpoints running
 * jobs at a step boundary while the workers can still finish the step in flight), then the
 * workers, Redis last.
 */
const STOP_GROUP = { redis: 0, worker: 1, coordinator: 2, dashboard: 3 } as const;

/**
 * `node [options] --import tsx <entry>`: one process per child, so signals reach the code itself.
 * The coordinator and the workers get `SERVICE_NODE_OPTIONS` (heap and JIT settings).
 */
function tsxChild(name: string, entry: string, env: NodeJS.ProcessEnv, stopGroup: number, critical = true, nodeOptions: readonly string[] = []): ChildSpec {
  return { name, command: process.execPath, args: [...nodeOptions, '--import', 'tsx', join(ROOT, entry)], env, cwd: ROOT, critical, stopGroup };
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const host = env.HOST || '127.0.0.1';
  const apiPort = intEnv(env, 'PORT', 4000, 1, 65535);
  const dashboardPort = intEnv(env, 'DASHBOARD_PORT', 5173, 1, 65535);
  const workers = intEnv(env, 'STRIDE_WORKERS', 2, 0, 64);
  // Workers share this machine's cores unless told otherwise (STRIDE_THREADS per worker).
  const workerThreads = env.STRIDE_THREADS || String(Math.max(1, Math.floor(availableParallelism() / Math.max(1, workers))));
  const dataDir = resolve(env.STRIDE_DATA_DIR || join(ROOT, 'data'));
  const redisUrlSet = Boolean(env.REDIS_URL);
  let redisUrl = env.REDIS_URL || 'redis://127.0.0.1:6379';
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const apiUrl = `http://${local.includes(':') ? `[${local}]` : local}:${apiPort}`;
  const dashboardUrl = `http://${local.includes(':') ? `[${local}]` : local}:${dashboardPort}`;

  const names = ['redis', 'build', 'coordinator', ...Array.from({ length: workers }, (_, i) => `worker-${i + 1}`), 'dashboard'];
  // Resolves when a critical child dies on its own (the supervisor is then already stopping).
  let critical = false;
  let criticalExit!: () => void;
  const critical$ = new Promise<void>((res) => (criticalExit = res));
  const sup = new Supervisor(names, {
    onCriticalExit: () => {
      critical = true;
      criticalExit();
    },
  });
  const stopAll = async (code: number): Promise<number> => {
    await sup.stop();
    return code;
  };

  // Stop on Ctrl-C / SIGTERM / terminal hang-up; a second one kills at once. Under `npm start`
  // one Ctrl-C arrives twice (from the terminal and forwarded by npm), hence the 1 s window.
  let signals = 0;
  let firstSignalAt = 0;
  let signalled!: () => void;
  const signalled$ = new Promise<void>((res) => (signalled = res));
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signals > 0 && Date.now() - firstSignalAt < 1_000) return;
    firstSignalAt ||= Date.now();
    if (++signals > 1) {
      sup.log(`${sig} again: killing everything`, true);
      sup.killNow();
      process.exit(130);
    }
    sup.log(`${sig}: stopping (press Ctrl-C again to kill)`);
    signalled();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  process.on('exit', () => sup.killNow());
  /** During start-up: a signal means stop quietly (exit 0), anything else is a failure. */
  const giveUp = (message: string): Promise<number> => {
    if (signals > 0) return stopAll(0);
    sup.log(message, true);
    return stopAll(1);
  };

  // 0. Ports and data directory.
  mkdirSync(dataDir, { recursive: true });
  for (const [what, port, variable] of [
    ['coordinator API', apiPort, 'PORT'],
    ['dashboard', dashboardPort, 'DASHBOARD_PORT'],
  ] as const) {
    if (!(await portFree(host, port))) {
      sup.log(`port ${port} on ${host} (${what}) is already in use: stop what uses it or set ${variable}`, true);
      return 1;
    }
  }

  // 1. Redis.
  const address = parseRedisUrl(redisUrl);
  const probe = await probeRedis(address);
  if (probe.ok) {
    sup.log(`Redis: ${redisUrl.replace(/:[^:@/]*@/, ':***@')} answers`);
  } else if (redisUrlSet) {
    sup.log(`REDIS_URL=${redisUrl.replace(/:[^:@/]*@/, ':***@')} does not answer (${probe.reason}). Start that Redis, or unset REDIS_URL to let npm start run one.`, true);
    return 1;
  } else {
    const redisServer = which('redis-server', env);
    if (!redisServer) {
      sup.log(`no Redis at ${redisUrl} (${probe.reason}).`, true);
      for (const line of INSTALL_REDIS.split('\n')) sup.log(line, true);
      return 1;
    }
    const port = (await portFree('127.0.0.1', 6379)) ? 6379 : await freePort();
    const redisDir = join(dataDir, 'redis');
    mkdirSync(redisDir, { recursive: true });
    redisUrl = `redis://127.0.0.1:${port}`;
    sup.log(`no Redis at ${env.REDIS_URL || 'redis://127.0.0.1:6379'} (${probe.reason}): starting ${redisServer} on port ${port}, data in ${redisDir}`);
    void sup.start({
      name: 'redis',
      stopGroup: STOP_GROUP.redis,
      command: redisServer,
      // The settings docker-compose uses: AOF fsynced every second, never evict queue keys.
      args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', ''],
      env,
    });
    const up = await waitForRedis({ host: '127.0.0.1', port }, 10_000);
    if (!up.ok) return giveUp(`redis-server did not answer on port ${port} within 10 s (${up.reason})`);
  }

  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    REDIS_URL: redisUrl,
    STRIDE_DATA_DIR: dataDir,
    HOST: host,
    PORT: String(apiPort),
    API_URL: apiUrl,
    DASHBOARD_PORT: String(dashboardPort),
  };

  // 2. Dashboard build, when missing.
  if (!existsSync(join(ROOT, ENTRIES.dashboardDist))) {
    sup.log('apps/dashboard/dist is missing: building the dashboard first (npm run build -w @stride/dashboard)');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const built = await sup.start({ name: 'build', command: npm, args: ['run', 'build', '-w', '@stride/dashboard'], env: childEnv, cwd: ROOT, oneShot: true });
    if (built.code !== 0) return giveUp(`building the dashboard failed (exit code ${built.code}${built.signal ? `, ${built.signal}` : ''})`);
  }

  for (const [what, entry] of [
    ['coordinator', ENTRIES.coordinator],
    ['worker', ENTRIES.worker],
    ['dashboard', ENTRIES.dashboard],
  ] as const) {
    if (!existsSync(join(ROOT, entry))) return giveUp(`the ${what} entry ${entry} does not exist`);
  }

  // 3. Coordinator, then workers, then the dashboard.
  void sup.start(tsxChild('coordinator', ENTRIES.coordinator, childEnv, STOP_GROUP.coordinator, true, SERVICE_NODE_OPTIONS));
  if (!(await waitForHttp(`${apiUrl}/healthz`, 60_000, () => sup.isRunning('coordinator') && signals === 0))) {
    return giveUp(sup.isRunning('coordinator') ? `the coordinator did not answer on ${apiUrl}/healthz within 60 s` : 'the coordinator exited during start-up');
  }
  for (let i = 1; i <= workers; i++) {
    void sup.start(tsxChild(`worker-${i}`, ENTRIES.worker, { ...childEnv, STRIDE_THREADS: workerThreads }, STOP_GROUP.worker, false, SERVICE_NODE_OPTIONS));
  }
  void sup.start(tsxChild('dashboard', ENTRIES.dashboard, childEnv, STOP_GROUP.dashboard));
  if (!(await waitForHttp(`${dashboardUrl}/`, 60_000, () => sup.isRunning('dashboard') && signals === 0))) {
    return giveUp(sup.isRunning('dashboard') ? `the dashboard did not answer on ${dashboardUrl} within 60 s` : 'the dashboard exited during start-up');
  }

  sup.log(`API:       ${apiUrl}  (health ${apiUrl}/healthz, Prometheus ${apiUrl}/metrics)`);
  sup.log(`Dashboard: ${dashboardUrl}`);
  sup.log('Ctrl-C stops everything.');

  await Promise.race([signalled$, critical$]);
  const failed = signals === 0 || critical;
  await sup.stop();
  sup.log(failed ? 'stopped after a failure' : 'stopped');
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`start: ${err.message}`);
      process.exit(1);
    },
  );
}
