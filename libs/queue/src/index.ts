// Public face of @stride/queue: the BullMQ transport of Stride.
export { MessageError, MissingBlobError, StaleJobError } from './errors.ts';
export { DEFAULT_PREFIX, JOBS_QUEUE, SHARDS_QUEUE, Keys, checkPrefix, checkJobId, isJobId, shardJobId, parseShardJobId } from './keys.ts';
export type { ShardKind } from './keys.ts';
export { DEFAULT_REDIS_URL, resolveTransportConfig, redactUrl, createRedis, checkRedis, checkRedisAtStart, RedisUnreachableError, bullConnection, connectionName, withDefaults } from './config.ts';
export type { TransportConfig } from './config.ts';
export {
  encodeMessage,
  decodeMessage,
  encodeParams,
  decodeParams,
  encodeShardInput,
  decodeShardInput,
  encodeGradient,
  decodeGradient,
  parseShardJobData,
  parseShardReturn,
  encodeParamsAnnouncement,
  parseParamsAnnouncement,
  encodeShardNews,
  parseShardNews,
  MAX_SHARD_NEWS,
  Fields,
  MAX_SHARD_SAMPLES,
  MAX_OBJECTS_PER_SAMPLE,
} from './codec.ts';
export type { ShardNews, ParamsAnnouncement, ParamsMessage, ShardInputMessage, GradientMessage, ShardJobData, ShardReturn } from './codec.ts';
export { BlobStore, parseJobContext } from './blob-store.ts';
export type { BlobStoreOptions } from './blob-store.ts';
export { Heartbeat, listWorkers, parseWorkerInfo, STALE_INTERVALS } from './heartbeat.ts';
export type { WorkerInfo, HeartbeatOptions } from './heartbeat.ts';
export { isTransientRedisError, retryTransient } from './retry.ts';
export type { RetryOptions } from './retry.ts';
export { SHARD_JOB_DEFAULTS, SHARD_WORKER_LOCKS, JOB_WORKER_LOCKS, SERVICE_NODE_OPTIONS, workerTuning } from './queues.ts';
export type { LockTuning } from './queues.ts';
export { ShardProcessor, asJobFailure, publishShardNews } from './processor.ts';
export type { ShardProcessorOptions, ProcessorStats } from './processor.ts';
export { BullmqExecutor } from './executor.ts';
export type { BullmqExecutorOptions, ExecutorLogEntry, ExecutorStats, RejectReason } from './executor.ts';
export { JobsClient, evalProgress, newJobId, parseTrainJobData, TRAIN_JOB_DEFAULTS, PAUSED_DELAY_MS } from './jobs.ts';
export type { TrainJobData, JobProgress, JobOutcome, FollowOutcome } from './jobs.ts';
