// Runs a worker until SIGTERM/SIGINT: shared by `stride worker` and apps/worker/src/main.ts.
import { checkRedisAtStart, redactUrl, resolveTransportConfig } from '@stride/queue';
import { ShardWorker } from './worker.ts';

/** Options of `runWorker`; unset fields come from the environment (REDIS_URL, STRIDE_QUEUE_PREFIX, STRIDE_THREADS, STRIDE_PREFETCH). */
export interface RunWorkerOptions {
  threads?: number;
  /** Shard jobs taken ahead (see `ShardWorkerOptions.prefetch`). */
  prefetch?: number;
  redisUrl?: string;
  prefix?: string;
}

/**
 * Starts a worker and resolves once a signal has closed it. The first SIGTERM/SIGINT closes it
 * cleanly (the shards in hand finish); a second one exits at once (nothing is lost either way: a
 * shard in hand goes back to the queue when its lock expires).
 */
export async function runWorker(options: RunWorkerOptions = {}): Promise<void> {
  const config = resolveTransportConfig({ redisUrl: options.redisUrl, prefix: options.prefix });
  const threads = options.threads ?? (process.env.STRIDE_THREADS ? Number(process.env.STRIDE_THREADS) : undefined);
  const prefetch = options.prefetch ?? (process.env.STRIDE_PREFETCH ? Number(process.env.STRIDE_PREFETCH) : undefined);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  await checkRedisAtStart(config, log);
  const worker = new ShardWorker({ config, threads, prefetch });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(130);
    log(`worker ${worker.id}: ${signal}, finishing the shards in hand`);
    void worker.close();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await worker.start();
    log(`worker ${worker.id}: ${worker.threads} threads, ${redactUrl(config.redisUrl)}, prefix ${config.prefix}`);
    await worker.closed;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  log(`worker ${worker.id}: closed`);
}

