// `stride worker`: computes shards for any coordinator, on worker threads.
import type { Command } from 'commander';
import { runWorker } from '@stride/worker';
import { intArg } from '../parse.ts';

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('compute shard gradients from the shards queue (REDIS_URL, STRIDE_QUEUE_PREFIX); stateless, start and stop at will')
    .option('--threads <n>', 'compute threads = shards at once (default: STRIDE_THREADS or available parallelism)', intArg(1, 1024))
    .action((o: { threads?: number }) => runWorker({ threads: o.threads }));
}
