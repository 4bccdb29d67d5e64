// `node --import tsx apps/coordinator/src/main.ts [--concurrency N] [--data-dir D] [--verbose] [--no-api]`:
// a Stride coordinator with its HTTP API. `stride coordinator`, `npm start` and docker-compose run it.
//
//   HOST               interface the API binds to             default 127.0.0.1
//   PORT               port of the API                        default 4000
//   STRIDE_TOKEN       bearer token every POST must carry     default: none (open)
//   STRIDE_READ_TOKEN  bearer token every GET must carry      default: none (open)
//   CORS_ORIGIN        comma-separated allowed origins, `*`   default: none (no CORS headers)
//   STRIDE_BODY_LIMIT  largest request body, bytes            default 1048576
//   STRIDE_CONCURRENCY training jobs run at once              default 2
//   STRIDE_RUN_JOBS    0: serve the API only, train nothing   default 1
//   STRIDE_LEASE_MS    a job's runner lease (fencing)          default 10000
//   STRIDE_JOB_LOCK_MS lock of a running job in the jobs queue default 10000 (stall check every half of it)
//   REDIS_URL, STRIDE_QUEUE_PREFIX, STRIDE_DATA_DIR           see the README
import { parseArgs } from 'node:util';
import { apiOptionsFromEnv, envInt, envText } from './env.ts';
import { runCoordinator } from './run.ts';

try {
  const { values } = parseArgs({ options: { concurrency: { type: 'string' }, 'data-dir': { type: 'string' }, verbose: { type: 'boolean' }, 'no-api': { type: 'boolean' } }, strict: true });
  const concurrency = values.concurrency === undefined ? envInt(process.env, 'STRIDE_CONCURRENCY', 1, 64) : Number(values.concurrency);
  // How fast a dead coordinator's jobs are taken over: lower in the fault-injection runs.
  const lockMs = envInt(process.env, 'STRIDE_JOB_LOCK_MS', 1000, 3_600_000);
  await runCoordinator({
    concurrency,
    leaseMs: envInt(process.env, 'STRIDE_LEASE_MS', 1000, 3_600_000),
    locks: lockMs === undefined ? undefined : { lockDurationMs: lockMs, stalledIntervalMs: Math.floor(lockMs / 2) },
    dataDir: values['data-dir'] ?? envText(process.env, 'STRIDE_DATA_DIR'),
    verbose: values.verbose,
    runJobs: envText(process.env, 'STRIDE_RUN_JOBS') !== '0',
    api: values['no-api'] ? false : apiOptionsFromEnv(process.env),
  });
} catch (err) {
  process.stderr.write(`stride coordinator: ${(err as Error).message}\n`);
  process.exit(1);
}
