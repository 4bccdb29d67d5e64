// `node --import tsx apps/coordinator/src/http/main.ts`: a coordinator process with its HTTP API.
// This is what `npm start` and docker-compose run.
//
//   HOST               interface to bind                      default 127.0.0.1
//   PORT               port of the API                        default 4000
//   STRIDE_TOKEN       bearer token every POST must carry     default: none (open)
//   STRIDE_READ_TOKEN  bearer token every GET must carry      default: none (open)
//   CORS_ORIGIN        comma-separated allowed origins, `*`   default: none (no CORS headers)
//   STRIDE_BODY_LIMIT  largest request body, bytes            default 1048576
//   REDIS_URL, STRIDE_QUEUE_PREFIX, STRIDE_DATA_DIR           see @stride/queue and the coordinator
//   STRIDE_CONCURRENCY training jobs run at once              default: the coordinator's (2)
//   STRIDE_RUN_JOBS    0: serve the API only, train nothing   default 1
//
// The first SIGTERM/SIGINT stops accepting requests, ends the event streams, checkpoints running
// jobs and hands them back to the queue; a second one exits at once.
import { redactUrl, resolveTransportConfig } from '@stride/queue';
import { Coordinator } from '../coordinator.ts';
import { coordinatorPort } from './adapter.ts';
import { startHttpServer } from './server.ts';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

function envInt(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

/** An unset variable and an empty one (docker-compose's `${STRIDE_TOKEN:-}`) both mean "none". */
const envText = (env: NodeJS.ProcessEnv, name: string): string | undefined => (env[name] === undefined || env[name] === '' ? undefined : env[name]);

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const host = envText(env, 'HOST') ?? '127.0.0.1';
  const port = envInt(env, 'PORT', 0, 65535) ?? 4000;
  const writeToken = envText(env, 'STRIDE_TOKEN');
  const readToken = envText(env, 'STRIDE_READ_TOKEN');
  const config = resolveTransportConfig({}, env);
  const runJobs = envText(env, 'STRIDE_RUN_JOBS') !== '0';

  const dataDir = envText(env, 'STRIDE_DATA_DIR');
  const concurrency = envInt(env, 'STRIDE_CONCURRENCY', 1, 64);
  // Only the options that are set: the coordinator applies its defaults to missing keys, not to undefined ones.
  const coordinator = new Coordinator({ config, runJobs, ...(dataDir !== undefined && { dataDir }), ...(concurrency !== undefined && { concurrency }) });
  coordinator.on('job', (r) => log(`job ${r.id} ${r.state.status}${r.state.status === 'failed' ? `: ${r.state.error}` : ''}`));
  coordinator.on('eval', (e) => log(`job ${e.jobId} eval at step ${e.step}: test accuracy ${(e.testAccuracy * 100).toFixed(2)}%, loss ${e.testLoss.toFixed(4)}`));
  coordinator.on('log', (e) => {
    if (e.level !== 'info') log(`${e.level}: ${e.message}`);
  });
  const api = coordinatorPort(coordinator, { config });

  // A fault in one request or one job must not take the API down with it.
  process.on('unhandledRejection', (reason) => log(`error: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`));

  const server = await startHttpServer({
    coordinator: api,
    host,
    port,
    writeToken,
    readToken,
    corsOrigin: envText(env, 'CORS_ORIGIN'),
    bodyLimit: envInt(env, 'STRIDE_BODY_LIMIT', 1, 1 << 30),
  });
  log(`coordinator ${coordinator.id}: API on ${server.url}, Redis ${redactUrl(config.redisUrl)}, prefix ${config.prefix}, data ${coordinator.dataDir}${runJobs ? '' : ' (API only: STRIDE_RUN_JOBS=0)'}`);
  if (!LOOPBACK.test(host) && writeToken === undefined) {
    log(`warning: the API listens on ${host} without STRIDE_TOKEN: anyone who reaches it can submit and cancel jobs`);
  }

  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting now (running jobs resume from their last checkpoint)`);
      process.exit(130);
    }
    log(`${signal}: closing the API, checkpointing running jobs and handing them back to the queue`);
    stopping = (async () => {
      for (const [what, step] of [
        ['HTTP server', () => server.close()],
        ['coordinator', () => coordinator.close()],
        ['health client', () => api.close()],
      ] as const) {
        try {
          await step();
        } catch (err) {
          log(`error: closing the ${what} failed: ${(err as Error).message}`);
        }
      }
    })();
    void stopping.then(() => {
      log(`coordinator ${coordinator.id}: closed`);
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  // After the API is up, so that /healthz can say what is wrong while Redis is still unreachable.
  await coordinator.start();
  log(`coordinator ${coordinator.id}: ${runJobs ? 'taking training jobs' : 'ready'}`);
}

main().catch((err: Error) => {
  process.stderr.write(`stride coordinator: ${err.message}\n`);
  process.exit(1);
});
