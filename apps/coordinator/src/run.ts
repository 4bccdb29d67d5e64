// Runs a coordinator (and, unless told otherwise, its HTTP API) until SIGTERM/SIGINT.
// Shared by `stride coordinator`, apps/coordinator/src/main.ts, `npm start` and docker-compose.
import { formatEvalMetrics } from '@stride/engine';
import { checkRedisAtStart, redactUrl, resolveTransportConfig } from '@stride/queue';
import { Coordinator, type CoordinatorOptions } from './coordinator.ts';
import { coordinatorPort } from './http/adapter.ts';
import { startHttpServer } from './http/server.ts';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** The HTTP API's settings; see apps/coordinator/src/main.ts for the environment variables. */
export interface ApiOptions {
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 4000; 0 picks a free one). */
  port?: number;
  /** Bearer token every state-changing call must carry (default: none). */
  writeToken?: string;
  /** Bearer token every read must carry (default: none). */
  readToken?: string;
  /** Comma-separated allowed CORS origins (default: none, no CORS headers). */
  corsOrigin?: string;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
}

/** Options of `runCoordinator`; unset fields come from the environment (REDIS_URL, STRIDE_QUEUE_PREFIX, STRIDE_DATA_DIR). */
export interface RunCoordinatorOptions extends Partial<Omit<CoordinatorOptions, 'config'>> {
  redisUrl?: string;
  prefix?: string;
  /** Print every step (default: steps every 10 s, evaluations, state changes, warnings). */
  verbose?: boolean;
  /** The HTTP API, or `false` for none (default: the API on 127.0.0.1:4000). */
  api?: ApiOptions | false;
}

/**
 * Starts a coordinator, logs what it does to stderr, and resolves once a signal has closed it.
 * The first SIGTERM/SIGINT closes the API, stops running jobs at a step boundary, checkpoints them
 * and hands them back to the queue; a second one exits at once (the jobs are resumed from their
 * last checkpoint anyway).
 */
export async function runCoordinator(options: RunCoordinatorOptions = {}): Promise<void> {
  const { redisUrl, prefix, verbose, api: apiOptions = {}, ...rest } = options;
  const config = resolveTransportConfig({ redisUrl, prefix });
  await checkRedisAtStart(config, (line) => void process.stderr.write(`${line}\n`));
  // Only the options that are set: the coordinator applies its defaults to missing keys, not to undefined ones.
  const set = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<CoordinatorOptions>;
  const coordinator = new Coordinator({ config, ...set });
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let lastStepLog = 0;
  coordinator.on('job', (r) => log(`job ${r.id} ${r.state.status}${r.state.status === 'failed' ? `: ${r.state.error}` : ''}`));
  coordinator.on('step', (e) => {
    if (!verbose && Date.now() - lastStepLog < 10_000) return;
    lastStepLog = Date.now();
    log(`job ${e.jobId} step ${e.step + 1}/${e.totalSteps} loss ${e.loss.toFixed(4)} ${e.accuracy === undefined ? '' : `acc ${(e.accuracy * 100).toFixed(1)}% `}${e.imagesPerSec.toFixed(0)} img/s`);
  });
  coordinator.on('eval', (e) => log(`job ${e.jobId} eval at step ${e.step}: ${formatEvalMetrics(e.task, e)} loss ${e.testLoss.toFixed(4)}`));
  coordinator.on('log', (e) => {
    if (e.level !== 'info' || verbose) log(`${e.level}: ${e.message}`);
  });
  // A fault in one request or one job must not take the coordinator down with it.
  const onRejection = (reason: unknown): void => log(`error: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  process.on('unhandledRejection', onRejection);

  const port = apiOptions === false ? undefined : coordinatorPort(coordinator, { config });
  const server =
    apiOptions === false || port === undefined
      ? undefined
      : await startHttpServer({ coordinator: port, host: apiOptions.host ?? '127.0.0.1', port: apiOptions.port ?? 4000, writeToken: apiOptions.writeToken, readToken: apiOptions.readToken, corsOrigin: apiOptions.corsOrigin, bodyLimit: apiOptions.bodyLimit });
  if (server !== undefined && apiOptions !== false) {
    log(`coordinator ${coordinator.id}: API on ${server.url}`);
    if (!LOOPBACK.test(apiOptions.host ?? '127.0.0.1') && apiOptions.writeToken === undefined) {
      log(`warning: the API listens on ${apiOptions.host} without STRIDE_TOKEN: anyone who reaches it can submit and cancel jobs`);
    }
  }

  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting now (running jobs resume from their last checkpoint)`);
      process.exit(130);
    }
    log(`coordinator ${coordinator.id}: ${signal}, checkpointing running jobs and handing them back`);
    stopping = (async () => {
      for (const [what, step] of [
        ['HTTP server', () => server?.close()],
        ['coordinator', () => coordinator.close()],
        ['health client', () => port?.close()],
      ] as const) {
        try {
          await step();
        } catch (err) {
          log(`error: closing the ${what} failed: ${(err as Error).message}`);
        }
      }
    })();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    // After the API is up, so that /healthz can say what is wrong while Redis is still unreachable.
    await coordinator.start();
    log(`coordinator ${coordinator.id}: ${redactUrl(config.redisUrl)}, prefix ${config.prefix}, data ${coordinator.dataDir}`);
    log(`coordinator ${coordinator.id}: ${rest.runJobs === false ? 'ready (API only: STRIDE_RUN_JOBS=0)' : 'taking training jobs'}`);
    await coordinator.closed;
    await stopping;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('unhandledRejection', onRejection);
  }
  log(`coordinator ${coordinator.id}: closed`);
}
