// `stride coordinator`: takes training jobs from the jobs queue, runs them over the BullMQ executor,
// and serves the HTTP API (HOST, PORT, STRIDE_TOKEN, ... as in apps/coordinator/src/main.ts).
import type { Command } from 'commander';
import { apiOptionsFromEnv, runCoordinator } from '@stride/coordinator';
import { intArg } from '../parse.ts';

interface CoordinatorFlags {
  concurrency?: number;
  dataDir?: string;
  verbose?: boolean;
  api: boolean;
  host?: string;
  port?: number;
}

export function registerCoordinator(program: Command): void {
  program
    .command('coordinator')
    .description('run training jobs from the queue and serve the HTTP API (REDIS_URL, STRIDE_QUEUE_PREFIX; resumes unfinished jobs on start)')
    .option('--concurrency <n>', 'training jobs run at once (default 2)', intArg(1, 64))
    .option('--data-dir <dir>', 'job records, checkpoints and metrics (default: STRIDE_DATA_DIR or ./data)')
    .option('--host <host>', 'interface the API binds to (default: HOST or 127.0.0.1)')
    .option('--port <n>', 'port of the API (default: PORT or 4000)', intArg(0, 65535))
    .option('--no-api', 'run jobs only, without the HTTP API')
    .option('--verbose', 'log every step')
    .action((o: CoordinatorFlags) => {
      const api = apiOptionsFromEnv(process.env);
      return runCoordinator({
        concurrency: o.concurrency,
        dataDir: o.dataDir,
        verbose: o.verbose,
        api: o.api ? { ...api, ...(o.host !== undefined && { host: o.host }), ...(o.port !== undefined && { port: o.port }) } : false,
      });
    });
}
