// Every name the transport puts in Redis: queue names, BullMQ job ids, and our own binary keys.
//
// All keys start with the same prefix as BullMQ's (its `prefix` option), so a hash-tag prefix such
// as `{stride}` puts every key of a deployment (BullMQ's and ours) in one Redis Cluster slot, which
// BullMQ's multi-key Lua scripts need and our pipelines rely on.

/** Default key prefix (BullMQ's `prefix` option and our own keys). */
export const DEFAULT_PREFIX = 'stride';

/** Queue of training jobs submitted to the coordinator: a job submitted while it is busy or down waits here. */
export const JOBS_QUEUE = 'jobs';

/**
 * Queue of shard tasks for workers. One queue for every training job: a worker needs one BullMQ
 * Worker (one blocking connection) whatever the number of jobs, and jobs interleave fairly since
 * each keeps at most one step's shards in it at a time. Per-job queues would make workers discover
 * queues and hold a connection per job for no gain.
 */
export const SHARDS_QUEUE = 'shards';

/** The engine's job id rule: 1-128 of `A-Z a-z 0-9 _ . -`, not starting with a dot (ids name directories). */
const JOB_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

/** Throws unless `prefix` can prefix BullMQ keys: 1-100 printable characters, no spaces. */
export function checkPrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !/^[\x21-\x7e]{1,100}$/.test(prefix)) {
    throw new RangeError(`queue prefix must be 1-100 printable ASCII characters without spaces, got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

/** Throws unless `jobId` is a valid training job id: 1-128 of `A-Z a-z 0-9 _ . -`, no leading dot (and no `:`, which BullMQ refuses in ids). */
export function checkJobId(jobId: string): string {
  if (typeof jobId !== 'string' || !JOB_ID.test(jobId)) {
    throw new RangeError(`job id must be 1-128 characters of A-Z a-z 0-9 _ . - not starting with a dot, got ${JSON.stringify(jobId)}`);
  }
  return jobId;
}

/** True when `jobId` is a valid training job id (see `checkJobId`). */
export function isJobId(jobId: unknown): jobId is string {
  return typeof jobId === 'string' && JOB_ID.test(jobId);
}

export type ShardKind = 'train' | 'eval';

/**
 * The Redis keys of one deployment (one prefix). Binary keys of a training job all start with
 * `${prefix}:job:${jobId}:` so `jobPattern` finds them for cleanup.
 */
export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    checkPrefix(prefix);
  }

  /** Parameter version `version` of a job: the packed model state, published once per version. */
  params(jobId: string, version: number): string {
    return `${this.prefix}:job:${jobId}:params:${version}`;
  }

  /** The job's `JobContext` (JSON): what a worker needs to build the model. */
  context(jobId: string): string {
    return `${this.prefix}:job:${jobId}:context`;
  }

  /** A shard's input (images and labels), written by the coordinator before the shard job is enqueued. */
  input(jobId: string, kind: ShardKind, step: number, shard: number): string {
    return `${this.prefix}:job:${jobId}:input:${kind === 'train' ? 's' : 'e'}${step}:${shard}`;
  }

  /** A train shard's gradient (and buffers), written by the worker that computed it. */
  grad(jobId: string, step: number, shard: number): string {
    return `${this.prefix}:job:${jobId}:grad:${step}:${shard}`;
  }

  /** Lease of the coordinator currently running a job: at most one runner per job. */
  lease(jobId: string): string {
    return `${this.prefix}:job:${jobId}:lease`;
  }

  /** Control requests for a running job (`pause` / `cancel`), set by whoever asks, read by the runner. */
  control(jobId: string): string {
    return `${this.prefix}:job:${jobId}:control`;
  }

  /**
   * Pub/Sub channel on which a parameter version is announced once it is in Redis (JSON
   * `ParamsAnnouncement`), so workers that computed the job's last shards fetch it before their
   * next shard job arrives.
   */
  paramsChannel(): string {
    return `${this.prefix}:params-published`;
  }

  /**
   * Pub/Sub channel on which workers say that a shard job finished (JSON `ShardNews`: the return
   * value of a completed one), so the coordinator judges the result without reading the job back.
   */
  shardNewsChannel(): string {
    return `${this.prefix}:shard-news`;
  }

  /** Hash of worker heartbeats: field = worker id, value = JSON `WorkerInfo`. */
  workers(): string {
    return `${this.prefix}:workers`;
  }

  /** SCAN pattern matching every binary key of a job (not BullMQ's). */
  jobPattern(jobId: string): string {
    return `${this.prefix}:job:${jobId}:*`;
  }
}

/**
 * BullMQ job id of a shard: `${jobId}-s${step}-${shard}` (train) or `${jobId}-e${step}-${shard}`
 * (eval). Deterministic, so re-enqueueing after a coordinator crash finds the existing job
 * instead of duplicating work. BullMQ refuses `:` in custom ids, hence the dashes.
 */
export function shardJobId(jobId: string, kind: ShardKind, step: number, shard: number): string {
  return `${jobId}-${kind === 'train' ? 's' : 'e'}${step}-${shard}`;
}

const SHARD_JOB_ID = /^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,127})-([se])(\d{1,15})-(\d{1,9})$/;

/** Inverse of `shardJobId`; undefined for anything else. */
export function parseShardJobId(id: string): { jobId: string; kind: ShardKind; step: number; shard: number } | undefined {
  const m = SHARD_JOB_ID.exec(id);
  if (!m) return undefined;
  return { jobId: m[1], kind: m[2] === 's' ? 'train' : 'eval', step: Number(m[3]), shard: Number(m[4]) };
}
