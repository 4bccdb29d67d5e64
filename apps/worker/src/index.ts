// Public face of @stride/worker: the shard worker process.
export { ShardWorker } from './worker.ts';
export type { ShardWorkerOptions } from './worker.ts';
export { runWorker } from './run.ts';
export type { RunWorkerOptions } from './run.ts';
