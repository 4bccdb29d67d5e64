// `stride coordinator`: takes training jobs from the jobs queue and runs them over the BullMQ executor.
import type { Command } from 'commander';
import { runCoordinator } from '@stride/coordinator';
import { intArg } from '../parse.ts';

interface CoordinatorFlags {
  concurrency?: number;
  dataDir?: string;
  verbose?: boolean;
}

export function registerCoordinator(program: Command): void {
  program
    .command('coordinator')
    .description('run training jobs from the queue (REDIS_URL, STRIDE_QUEUE_PREFIX; resumes unfinished jobs on start)')
    .option('--concurrency <n>', 'training jobs run at once (default 2)', intArg(1, 64))
    .option('--data-dir <dir>', 'job records, checkpoints and metrics (default: STRIDE_DATA_DIR or ./data)')
    .option('--verbose', 'log every step')
    .action((o: CoordinatorFlags) => runCoordinator({ concurrency: o.concurrency, dataDir: o.dataDir, verbose: o.verbose }));
}
