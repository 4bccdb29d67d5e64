// Binary blobs of training jobs in Redis: parameter versions, shard inputs, shard gradients, and
// the job context. Each key has an expiry, so whatever a crashed coordinator leaves behind goes
// away by itself; the executor refreshes the keys of a running job.
import { TASKS, type JobContext } from '@stride/engine';
import type { Redis } from 'ioredis';
import {
  decodeGradient,
  decodeParams,
  decodeShardInput,
  encodeGradient,
  encodeParams,
  encodeParamsAnnouncement,
  encodeShardInput,
  Fields,
  type GradientMessage,
  type ParamsMessage,
  type ShardInputMessage,
} from './codec.ts';
import { withDefaults } from './config.ts';
import { MessageError, MissingBlobError, StaleJobError } from './errors.ts';
import type { Keys } from './keys.ts';

/** Options of a BlobStore. */
export interface BlobStoreOptions {
  /** Expiry of every key written (ms). Default: 3 600 000 (1 h); refreshed while the job runs. */
  ttlMs?: number;
}

const MAX_CONTEXT_BYTES = 4 << 20;

export class BlobStore {
  readonly ttlMs: number;

  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
    options: BlobStoreOptions = {},
  ) {
    const opts = withDefaults({ ttlMs: 3_600_000 }, options);
    if (!Number.isInteger(opts.ttlMs) || opts.ttlMs < 1000) throw new RangeError(`BlobStore: ttlMs must be an integer >= 1000, got ${opts.ttlMs}`);
    this.ttlMs = opts.ttlMs;
  }

  // -- job context ----------------------------------------------------------------------------

  async putContext(context: JobContext): Promise<void> {
    await this.redis.set(this.keys.context(context.jobId), JSON.stringify(context), 'PX', this.ttlMs);
  }

  /** The job's context, or a `MissingBlobError` when it is gone. */
  async getContext(jobId: string): Promise<JobContext> {
    const key = this.keys.context(jobId);
    const raw = await this.redis.getBuffer(key);
    if (!raw) throw new MissingBlobError(key, `context of job ${jobId} is not in Redis (job released, or expired while its coordinator was away)`);
    return parseJobContext(raw, jobId);
  }

  // -- parameter versions ---------------------------------------------------------------------

  /**
   * Writes parameter version `version` (the packed state) once, with the store's expiry, under
   * publication `token`; deletes the keys in `unlink` (the superseded version) and announces the
   * version on the params channel in the same round trip.
   */
  async putParams(jobId: string, version: number, token: string, state: Uint8Array, unlink: readonly string[] = []): Promise<void> {
    await execPipeline(this.paramsCommands(this.redis.pipeline(), { jobId, version, token, state, unlink }));
  }

  /**
   * Adds to `pipe` the commands that store a parameter version, delete `unlink` (superseded
   * versions) and announce it on the params channel, in that order on one connection: whoever
   * hears the announcement finds the version stored.
   */
  private paramsCommands(pipe: ReturnType<Redis['pipeline']>, params: ParamsMessage & { unlink?: readonly string[] }): ReturnType<Redis['pipeline']> {
    const key = this.keys.params(params.jobId, params.version);
    pipe.set(key, encodeParams(params), 'PX', this.ttlMs);
    const stale = (params.unlink ?? []).filter((k) => k !== key);
    if (stale.length > 0) pipe.unlink(...stale);
    return pipe.publish(this.keys.paramsChannel(), encodeParamsAnnouncement(params));
  }

  /**
   * Reads and checks parameter version `version`; `MissingBlobError` when it is gone,
   * `StaleJobError` when it was published again under another token than `token`.
   */
  async getParams(jobId: string, version: number, token: string, stateLength: number): Promise<Uint8Array> {
    const key = this.keys.params(jobId, version);
    const raw = await this.redis.getBuffer(key);
    if (!raw) throw new MissingBlobError(key, `parameter version ${version} of job ${jobId} is not in Redis (expired or superseded)`);
    const params = decodeParams(raw, { jobId, version, stateLength });
    if (params.token !== token) throw new StaleJobError(`parameter version ${version} of job ${jobId} was published again (token ${params.token}); this shard job was for token ${token}`);
    return params.state;
  }

  // -- shard inputs ---------------------------------------------------------------------------

  /**
   * Writes shard inputs in one round trip; with `params`, also that parameter version (see
   * `putParams`: stored, superseded ones deleted, announced) in the same round trip.
   */
  async putInputs(inputs: readonly ShardInputMessage[], params?: ParamsMessage & { unlink?: readonly string[] }): Promise<void> {
    if (inputs.length === 0 && !params) return;
    const pipe = this.redis.pipeline();
    for (const m of inputs) pipe.set(this.keys.input(m.jobId, m.kind, m.step, m.shard), encodeShardInput(m), 'PX', this.ttlMs);
    // The version last: its announcement must not reach a worker before the inputs are stored either.
    if (params) this.paramsCommands(pipe, params);
    await execPipeline(pipe);
  }

  async getInput(expected: Parameters<typeof decodeShardInput>[1]): Promise<ShardInputMessage> {
    const key = this.keys.input(expected.jobId, expected.kind, expected.step, expected.shard);
    const raw = await this.redis.getBuffer(key);
    if (!raw) throw new MissingBlobError(key, `input of ${expected.kind} shard ${expected.shard} of step ${expected.step} is not in Redis`);
    return decodeShardInput(raw, expected);
  }

  // -- shard gradients ------------------------------------------------------------------------

  async putGradient(m: GradientMessage): Promise<number> {
    const bytes = encodeGradient(m);
    await this.redis.set(this.keys.grad(m.jobId, m.step, m.shard), bytes, 'PX', this.ttlMs);
    return bytes.byteLength;
  }

  /** The gradient blob of a shard, or undefined when there is none. Throws `MessageError` when malformed. */
  async getGradient(jobId: string, step: number, shard: number, expected: { gradientLength: number; bufferLength: number }): Promise<GradientMessage | undefined> {
    const raw = await this.redis.getBuffer(this.keys.grad(jobId, step, shard));
    return raw ? decodeGradient(raw, expected) : undefined;
  }

  // -- housekeeping ---------------------------------------------------------------------------

  /** Pushes the expiry of existing keys `ttlMs` into the future (missing keys are ignored). */
  async refresh(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const k of keys) pipe.pexpire(k, this.ttlMs);
    await execPipeline(pipe);
  }

  /** Deletes keys (UNLINK: freed in the background). */
  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.unlink(...keys);
  }
}

async function execPipeline(pipe: ReturnType<Redis['pipeline']>): Promise<void> {
  const results = (await pipe.exec()) ?? [];
  for (const [err] of results) if (err) throw err;
}

/**
 * Checks a job context read from Redis. The model spec is only checked for shape here; building
 * the model validates it in depth (and fails the shard with the builder's message).
 */
export function parseJobContext(raw: Uint8Array, expectedJobId: string): JobContext {
  if (raw.byteLength > MAX_CONTEXT_BYTES) throw new MessageError('JobContext', `${raw.byteLength} bytes exceeds the limit of ${MAX_CONTEXT_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch (e) {
    throw new MessageError('JobContext', `not valid JSON (${(e as Error).message})`);
  }
  const f = new Fields('JobContext', value);
  const jobId = f.jobId('jobId');
  if (jobId !== expectedJobId) throw new MessageError('JobContext.jobId', `expected ${expectedJobId}, got ${jobId}`);
  const modelSpec = f.value('modelSpec');
  const ms = new Fields('JobContext.modelSpec', modelSpec);
  const input = ms.value('input');
  if (!Array.isArray(input) || input.length !== 3 || !input.every((d) => Number.isInteger(d) && d >= 1 && d <= 65536)) {
    throw new MessageError('JobContext.modelSpec.input', `expected [channels, height, width] of positive integers, got ${JSON.stringify(input)}`);
  }
  if (!Array.isArray(ms.value('layers'))) throw new MessageError('JobContext.modelSpec.layers', 'expected an array');
  const task = f.oneOf('task', TASKS);
  const numClasses = f.has('numClasses') || task !== 'classification' ? f.int('numClasses', 1, 65_536) : undefined;
  const norm = new Fields('JobContext.normalization', f.value('normalization'));
  const channels = input[0] as number;
  const vec = (name: 'mean' | 'std'): number[] => {
    const v = norm.value(name);
    if (!Array.isArray(v) || v.length !== channels || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new MessageError(`JobContext.normalization.${name}`, `expected ${channels} finite numbers, got ${JSON.stringify(v)}`);
    }
    return v as number[];
  };
  const normalization = { mean: vec('mean'), std: vec('std') };
  norm.done();
  const context: JobContext = {
    jobId,
    modelSpec: modelSpec as JobContext['modelSpec'],
    task,
    ...(numClasses === undefined ? {} : { numClasses }),
    normalization,
    seed: f.int('seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    ...(f.has('numerics') ? { numerics: f.oneOf('numerics', ['fma'] as const) } : {}),
    stateLength: f.int('stateLength', 1, 2 ** 31 - 1),
    gradientLength: f.int('gradientLength', 1, 2 ** 31 - 1),
    bufferLength: f.int('bufferLength', 0, 2 ** 31 - 1),
  };
  f.done();
  if (context.gradientLength + context.bufferLength !== context.stateLength) {
    throw new MessageError('JobContext.stateLength', `${context.stateLength} != gradientLength ${context.gradientLength} + bufferLength ${context.bufferLength}`);
  }
  return context;
}
