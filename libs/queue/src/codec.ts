// The wire formats of the transport, and their validation.
//
// Binary blobs (parameter versions, shard inputs, shard gradients) are msgpack with typed arrays
// (msgpackr `moreTypes`): a Float32Array travels as its raw bytes, so every bit survives (NaN
// payloads, -0). BullMQ job data and return values are small JSON objects that BullMQ itself
// (de)serializes. Everything read back from Redis is untrusted: sizes are checked before decoding,
// only plain data is accepted (no Map/Set/Date/RegExp/Error/class instances, no structured-clone
// references), and each message is checked field by field against its schema. A failure throws a
// `MessageError` whose `field` is the path of the offending field.
import { Packr } from 'msgpackr';
import { DETECTION_EVAL, type ShardTargets, type TaskName } from '@stride/engine';
import { MessageError } from './errors.ts';
import { isJobId, parseShardJobId, type ShardKind } from './keys.ts';

// `useRecords: false` keeps plain msgpack maps (no msgpackr record extension); `structuredClone:
// false` makes the decoder refuse reference/cycle extensions outright.
const packr = new Packr({ moreTypes: true, useRecords: false, structuredClone: false });

/** Largest number of samples in one shard we accept from Redis (a shard of the whole of ImageNet is 1.3 M). */
export const MAX_SHARD_SAMPLES = 1 << 21;
/** Largest step / version number accepted. */
const MAX_STEP = 2 ** 40;
/** A publication token: a few random hex characters (see `ParamsMessage.token`). */
const TOKEN = /^[0-9a-f]{8,64}$/;
/** Slack for a blob's header beside its arrays. */
const HEADER_SLACK = 64 * 1024;
/** Nesting limit of decoded values; our messages are at most two levels deep. */
const MAX_DEPTH = 8;
const FORBIDDEN_KEYS = new Set(['__proto__', '__proto_', 'constructor', 'prototype']);

/** Packs a message (plain objects, numbers, strings, typed arrays) into bytes. */
export function encodeMessage(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * Unpacks bytes read from Redis into plain data. Refuses messages larger than `maxBytes`, malformed
 * or trailing bytes, and any value that is not null, boolean, number, string, plain object, array,
 * Uint8Array, Uint32Array or Float32Array.
 */
export function decodeMessage(bytes: Uint8Array, schema: string, maxBytes: number): unknown {
  if (!(bytes instanceof Uint8Array)) throw new MessageError(schema, `expected bytes, got ${describe(bytes)}`);
  if (bytes.byteLength > maxBytes) throw new MessageError(schema, `message of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes} bytes`);
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (e) {
    throw new MessageError(schema, `not a valid message (${(e as Error).message})`);
  }
  checkPlain(value, schema, 0);
  return value;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v === 'number' ? `number ${v}` : typeof v;
  if (Array.isArray(v)) return `array of ${v.length}`;
  const ctor = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name;
  return ctor ? `${ctor}` : 'object';
}

function checkPlain(v: unknown, path: string, depth: number): void {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return;
  if (depth > MAX_DEPTH) throw new MessageError(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (v instanceof Uint8Array || v instanceof Float32Array || v instanceof Uint32Array) return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkPlain(v[i], `${path}[${i}]`, depth + 1);
    return;
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) throw new MessageError(path, `unexpected ${describe(v)}; only plain data is accepted`);
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) throw new MessageError(`${path}.${key}`, 'forbidden key');
      checkPlain((v as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
    }
    return;
  }
  throw new MessageError(path, `unexpected ${describe(v)}; only plain data is accepted`);
}

/**
 * Field-by-field reader of one decoded message. Every getter checks type and range and names the
 * field on failure; `done()` refuses fields the schema does not know.
 */
export class Fields {
  private readonly seen = new Set<string>();
  private readonly obj: Record<string, unknown>;

  constructor(
    readonly schema: string,
    value: unknown,
  ) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
      throw new MessageError(schema, `expected an object, got ${describe(value)}`);
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) throw new MessageError(schema, `expected a plain object, got ${describe(value)}`);
    this.obj = value as Record<string, unknown>;
  }

  private get(name: string): unknown {
    this.seen.add(name);
    return Object.prototype.hasOwnProperty.call(this.obj, name) ? this.obj[name] : undefined;
  }

  private fail(name: string, message: string): never {
    throw new MessageError(`${this.schema}.${name}`, message);
  }

  has(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.obj, name) && this.obj[name] !== undefined;
  }

  /** An integer in [min, max]. */
  int(name: string, min: number, max: number): number {
    const v = this.get(name);
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(name, `expected an integer, got ${describe(v)}`);
    if (v < min || v > max) this.fail(name, `${v} is out of range [${min}, ${max}]`);
    return v;
  }

  /** A finite number. */
  finite(name: string): number {
    const v = this.get(name);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(name, `expected a finite number, got ${describe(v)}`);
    return v;
  }

  /** A string of at most `maxLength` characters, matching `pattern` when given. */
  string(name: string, maxLength: number, pattern?: RegExp): string {
    const v = this.get(name);
    if (typeof v !== 'string') this.fail(name, `expected a string, got ${describe(v)}`);
    if (v.length > maxLength) this.fail(name, `string of ${v.length} characters exceeds ${maxLength}`);
    if (pattern && !pattern.test(v)) this.fail(name, `${JSON.stringify(v)} does not match ${pattern}`);
    return v;
  }

  /** A training job id (see `checkJobId`). */
  jobId(name: string): string {
    const v = this.get(name);
    if (!isJobId(v)) this.fail(name, `expected a job id (1-128 of A-Z a-z 0-9 _ . -), got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 120)) : describe(v)}`);
    return v;
  }

  /** One of `values`. */
  oneOf<T extends string>(name: string, values: readonly T[]): T {
    const v = this.get(name);
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) this.fail(name, `expected one of ${values.join(', ')}, got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : describe(v)}`);
    return v as T;
  }

  /** A Uint8Array of exactly `length` bytes. */
  bytes(name: string, length: number): Uint8Array {
    const v = this.get(name);
    if (!(v instanceof Uint8Array)) this.fail(name, `expected a Uint8Array, got ${describe(v)}`);
    if (v.length !== length) this.fail(name, `expected ${length} bytes, got ${v.length}`);
    return v;
  }

  /** A Float32Array of exactly `length` values. */
  float32(name: string, length: number): Float32Array {
    const v = this.get(name);
    if (!(v instanceof Float32Array)) this.fail(name, `expected a Float32Array, got ${describe(v)}`);
    if (v.length !== length) this.fail(name, `expected ${length} values, got ${v.length}`);
    return v;
  }

  /** A Uint32Array of exactly `length` values. */
  uint32(name: string, length: number): Uint32Array {
    const v = this.get(name);
    if (!(v instanceof Uint32Array)) this.fail(name, `expected a Uint32Array, got ${describe(v)}`);
    if (v.length !== length) this.fail(name, `expected ${length} values, got ${v.length}`);
    return v;
  }

  /** A Float32Array of exactly `length` values, each in [0, 1]. */
  unitFloat32(name: string, length: number): Float32Array {
    const v = this.float32(name, length);
    for (let i = 0; i < v.length; i++) if (!(v[i] >= 0 && v[i] <= 1)) this.fail(`${name}[${i}]`, `${v[i]} is not in [0, 1]`);
    return v;
  }

  /** Raw access for nested structures validated elsewhere. */
  value(name: string): unknown {
    return this.get(name);
  }

  /** Throws on any field the schema did not read. */
  done(): void {
    for (const key of Object.keys(this.obj)) {
      if (!this.seen.has(key)) this.fail(key, 'unexpected field');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Parameter versions

/** A published parameter version: the packed model state (`packState` bytes) of a job. */
export interface ParamsMessage {
  readonly jobId: string;
  readonly version: number;
  /**
   * Random per publication. Shard jobs and results carry it, so a result is only accepted if it
   * was computed from these very bytes: after a coordinator restart, version v is published again
   * under a new token and whatever the previous run left in the queue is stale.
   */
  readonly token: string;
  /** float32 little-endian, parameters then buffers, `stateLength * 4` bytes. */
  readonly state: Uint8Array;
}

export function encodeParams(m: ParamsMessage): Buffer {
  return encodeMessage({ jobId: m.jobId, version: m.version, token: m.token, state: m.state });
}

/** Decodes a parameter version and checks it is `expected.version` of `expected.jobId`, `stateLength` floats. */
export function decodeParams(bytes: Uint8Array, expected: { jobId: string; version: number; stateLength: number }): ParamsMessage {
  const f = new Fields('Params', decodeMessage(bytes, 'Params', expected.stateLength * 4 + HEADER_SLACK));
  const jobId = f.jobId('jobId');
  if (jobId !== expected.jobId) throw new MessageError('Params.jobId', `expected ${expected.jobId}, got ${jobId}`);
  const version = f.int('version', 0, MAX_STEP);
  if (version !== expected.version) throw new MessageError('Params.version', `expected version ${expected.version}, got ${version}`);
  const token = f.string('token', 64, TOKEN);
  const state = f.bytes('state', expected.stateLength * 4);
  f.done();
  return { jobId, version, token, state };
}

/** What the params channel says (see `Keys.paramsChannel`): version `version` of `jobId`, publication `token`, is in Redis. */
export interface ParamsAnnouncement {
  readonly jobId: string;
  readonly version: number;
  readonly token: string;
}

export function encodeParamsAnnouncement(a: ParamsAnnouncement): string {
  return JSON.stringify({ jobId: a.jobId, version: a.version, token: a.token });
}

/** The fields of a JSON message from a Pub/Sub channel (anyone with access to Redis can publish there), at most `limit` characters. */
function channelMessage(schema: string, text: string, limit: number): Fields {
  if (text.length > limit) throw new MessageError(schema, `${text.length} characters exceeds the limit of ${limit}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MessageError(schema, `not valid JSON (${(e as Error).message})`);
  }
  return new Fields(schema, value);
}

/** Parses an announcement from the params channel. */
export function parseParamsAnnouncement(text: string): ParamsAnnouncement {
  const f = channelMessage('ParamsAnnouncement', text, 512);
  const a = { jobId: f.jobId('jobId'), version: f.int('version', 0, MAX_STEP), token: f.string('token', 64, TOKEN) };
  f.done();
  return a;
}

/**
 * What the shard news channel says (see `Keys.shardNewsChannel`): shard job `id` completed with
 * `returnvalue` (a `ShardReturn`, judged by the coordinator like any message), or failed.
 */
export interface ShardNews {
  readonly id: string;
  readonly status: 'completed' | 'failed';
  readonly returnvalue?: unknown;
}

/** Characters of a news message: a shard's return value is small (its gradient is a blob of its own). */
export const MAX_SHARD_NEWS = 1 << 20;

export function encodeShardNews(n: ShardNews): string {
  return JSON.stringify(n.status === 'completed' ? { id: n.id, status: n.status, returnvalue: n.returnvalue } : { id: n.id, status: n.status });
}

/** Parses news from the shard news channel; the return value is left to `parseShardReturn`. */
export function parseShardNews(text: string): ShardNews {
  const f = channelMessage('ShardNews', text, MAX_SHARD_NEWS);
  const id = f.string('id', 300);
  if (!parseShardJobId(id)) throw new MessageError('ShardNews.id', `not a shard job id: ${JSON.stringify(id)}`);
  const status = f.oneOf('status', ['completed', 'failed'] as const);
  const returnvalue = status === 'completed' ? f.value('returnvalue') : undefined;
  f.done();
  return status === 'completed' ? { id, status, returnvalue } : { id, status };
}

// ---------------------------------------------------------------------------------------------
// Shard inputs

/** Images and labels of one shard, written by the coordinator next to the shard job. */
export interface ShardInputMessage {
  readonly jobId: string;
  readonly kind: ShardKind;
  readonly step: number;
  readonly shard: number;
  readonly count: number;
  /** uint8 pixels, `count × sampleBytes`. */
  readonly images: Uint8Array;
  /** One class index per sample. */
  readonly labels: Uint8Array;
  /** The task's targets (see `ShardTargets`); absent for classification. On the wire its fields sit beside `labels`. */
  readonly targets?: ShardTargets;
}

/** Largest number of objects one detection sample may carry on the wire. */
export const MAX_OBJECTS_PER_SAMPLE = 256;

/** Upper bound of the bytes a shard's targets take, per task, before decoding. */
function targetBytes(task: TaskName, count: number, pixels: number): number {
  switch (task) {
    case 'classification':
      return 0;
    case 'localization':
      return count * 16;
    case 'detection':
      return (count + 1) * 4 + count * MAX_OBJECTS_PER_SAMPLE * 17;
    case 'segmentation':
      return count * pixels;
  }
}

export function encodeShardInput(m: ShardInputMessage): Buffer {
  const out: Record<string, unknown> = { jobId: m.jobId, kind: m.kind, step: m.step, shard: m.shard, count: m.count, images: m.images, labels: m.labels };
  for (const key of ['boxes', 'boxLabels', 'boxOffsets', 'masks'] as const) if (m.targets?.[key] !== undefined) out[key] = m.targets[key];
  return encodeMessage(out);
}

/** Reads and checks the targets fields of a shard input for `task` (lengths against `count` and each other, ranges). */
function shardTargetFields(f: Fields, task: TaskName, count: number, pixels: number): ShardTargets | undefined {
  switch (task) {
    case 'classification':
      return undefined;
    case 'localization':
      return { boxes: f.unitFloat32('boxes', 4 * count) };
    case 'segmentation':
      return { masks: f.bytes('masks', count * pixels) };
    case 'detection': {
      const boxOffsets = f.uint32('boxOffsets', count + 1);
      if (boxOffsets[0] !== 0) throw new MessageError('ShardInput.boxOffsets[0]', `expected 0, got ${boxOffsets[0]}`);
      for (let i = 0; i < count; i++) {
        const objects = boxOffsets[i + 1] - boxOffsets[i];
        if (objects < 0 || objects > MAX_OBJECTS_PER_SAMPLE) {
          throw new MessageError(`ShardInput.boxOffsets[${i + 1}]`, `sample ${i} has ${objects} objects, expected 0 to ${MAX_OBJECTS_PER_SAMPLE}`);
        }
      }
      const objects = boxOffsets[count];
      const boxes = f.unitFloat32('boxes', 4 * objects);
      const boxLabels = f.bytes('boxLabels', objects);
      return { boxes, boxLabels, boxOffsets };
    }
  }
}

/**
 * Decodes a shard input and checks it is the one the shard job names, with `sampleBytes` pixels per
 * sample and the targets of `task` (default classification: none) for images of `pixels` = H × W.
 * The size limit is derived from the expected count before anything is decoded.
 */
export function decodeShardInput(
  bytes: Uint8Array,
  expected: { jobId: string; kind: ShardKind; step: number; shard: number; count: number; sampleBytes: number; task?: TaskName; pixels?: number },
): ShardInputMessage {
  const task = expected.task ?? 'classification';
  const pixels = expected.pixels ?? 0;
  const limit = expected.count * (expected.sampleBytes + 1) + targetBytes(task, expected.count, pixels) + HEADER_SLACK;
  const f = new Fields('ShardInput', decodeMessage(bytes, 'ShardInput', limit));
  const m = {
    jobId: f.jobId('jobId'),
    kind: f.oneOf('kind', ['train', 'eval'] as const),
    step: f.int('step', 0, MAX_STEP),
    shard: f.int('shard', 0, MAX_STEP),
    count: f.int('count', 1, MAX_SHARD_SAMPLES),
  };
  for (const k of ['jobId', 'kind', 'step', 'shard', 'count'] as const) {
    if (m[k] !== expected[k]) throw new MessageError(`ShardInput.${k}`, `expected ${expected[k]}, got ${m[k]}`);
  }
  const images = f.bytes('images', m.count * expected.sampleBytes);
  const labels = f.bytes('labels', m.count);
  const targets = shardTargetFields(f, task, m.count, pixels);
  f.done();
  return { ...m, images, labels, ...(targets ? { targets } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Shard gradients

/** The binary half of a train shard's result: its gradient sum (and buffers), with its identity. */
export interface GradientMessage {
  readonly jobId: string;
  readonly step: number;
  readonly shard: number;
  readonly paramsVersion: number;
  readonly paramsToken: string;
  readonly count: number;
  readonly gradient: Float32Array;
  readonly buffers?: Float32Array;
}

export function encodeGradient(m: GradientMessage): Buffer {
  const out: Record<string, unknown> = { jobId: m.jobId, step: m.step, shard: m.shard, paramsVersion: m.paramsVersion, paramsToken: m.paramsToken, count: m.count, gradient: m.gradient };
  if (m.buffers) out.buffers = m.buffers;
  return encodeMessage(out);
}

/**
 * Decodes a gradient blob. Checks its shape (gradient of `gradientLength` floats, buffers of
 * `bufferLength` when > 0); its identity is returned for the caller to compare with the task,
 * since a mismatch there is an accounting decision, not a format error.
 */
export function decodeGradient(bytes: Uint8Array, expected: { gradientLength: number; bufferLength: number }): GradientMessage {
  const f = new Fields('Gradient', decodeMessage(bytes, 'Gradient', (expected.gradientLength + expected.bufferLength) * 4 + HEADER_SLACK));
  const m = {
    jobId: f.jobId('jobId'),
    step: f.int('step', 0, MAX_STEP),
    shard: f.int('shard', 0, MAX_STEP),
    paramsVersion: f.int('paramsVersion', 0, MAX_STEP),
    paramsToken: f.string('paramsToken', 64, TOKEN),
    count: f.int('count', 1, MAX_SHARD_SAMPLES),
    gradient: f.float32('gradient', expected.gradientLength),
    buffers: expected.bufferLength > 0 ? f.float32('buffers', expected.bufferLength) : undefined,
  };
  f.done();
  return m;
}

// ---------------------------------------------------------------------------------------------
// BullMQ job data and return value (JSON)

/** The data of a shard job: ids and counts only; the bytes live in blobs whose keys derive from them. */
/** What names a shard computed from one parameter publication: shared by job data and return value. */
export interface ShardIdentity {
  readonly jobId: string;
  readonly kind: ShardKind;
  readonly step: number;
  readonly shard: number;
  readonly paramsVersion: number;
  /** Token of the publication of that version (see `ParamsMessage.token`). */
  readonly paramsToken: string;
  readonly count: number;
}

/** Reads the `ShardIdentity` fields of a message being parsed. */
function shardIdentity(f: Fields): ShardIdentity {
  return {
    jobId: f.jobId('jobId'),
    kind: f.oneOf('kind', ['train', 'eval'] as const),
    step: f.int('step', 0, MAX_STEP),
    shard: f.int('shard', 0, MAX_STEP),
    paramsVersion: f.int('paramsVersion', 0, MAX_STEP),
    paramsToken: f.string('paramsToken', 64, TOKEN),
    count: f.int('count', 1, MAX_SHARD_SAMPLES),
  };
}

export interface ShardJobData extends ShardIdentity {
  /** When the coordinator enqueued it (ms since epoch), for the queue-wait metric. */
  readonly enqueuedAt: number;
  /**
   * Shard jobs enqueued together with it (its step's, or those recomputed with it): workers take
   * shards ahead only when there are more than threads to compute them (absent: never).
   */
  readonly shards?: number;
}

export function parseShardJobData(value: unknown): ShardJobData {
  const f = new Fields('ShardJobData', value);
  const data: ShardJobData = {
    ...shardIdentity(f),
    enqueuedAt: f.finite('enqueuedAt'),
    ...(f.has('shards') ? { shards: f.int('shards', 1, MAX_SHARD_SAMPLES) } : {}),
  };
  f.done();
  return data;
}

/** What a worker returns for a shard job (BullMQ keeps it as JSON). The gradient is in the blob. */
export interface ShardReturn extends ShardIdentity {
  /** Sum of per-sample losses (float64; JSON keeps a double exactly). */
  readonly lossSum: number;
  readonly correct: number;
  readonly computeMs: number;
  readonly queueMs: number;
  readonly workerId: string;
  /** Eval of the vision tasks: the task's statistics (see `ShardResult.stats`); checked against the task by the engine. */
  readonly stats?: readonly number[];
  /** Where the worker's time went (see `ShardTiming`); absent from workers that do not report it. */
  readonly timing?: WorkerTiming;
}

/** The worker's part of a shard's timeline: `wallClock()` ms (@stride/engine). */
export interface WorkerTiming {
  readonly startedAt: number;
  readonly fetchMs: number;
  readonly uploadMs: number;
  readonly doneAt: number;
}

function workerTiming(value: unknown): WorkerTiming {
  const f = new Fields('ShardReturn.timing', value);
  const t = { startedAt: f.finite('startedAt'), fetchMs: f.finite('fetchMs'), uploadMs: f.finite('uploadMs'), doneAt: f.finite('doneAt') };
  f.done();
  return t;
}

/** Largest stats array of a shard of `count` samples: a confusion matrix of up to 256 classes, or the detections. */
function maxStats(count: number): number {
  return 65_536 + count * 7 * DETECTION_EVAL.maxDetections;
}

function statsField(v: unknown, count: number): number[] {
  if (!Array.isArray(v)) throw new MessageError('ShardReturn.stats', `expected an array of numbers, got ${describe(v)}`);
  if (v.length > maxStats(count)) throw new MessageError('ShardReturn.stats', `${v.length} values exceed the limit of ${maxStats(count)} for ${count} samples`);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== 'number' || !Number.isFinite(v[i])) throw new MessageError(`ShardReturn.stats[${i}]`, `expected a finite number, got ${describe(v[i])}`);
  }
  return v as number[];
}

/**
 * Checks a shard job's return value. `lossSum` must be a finite number: JSON turns NaN and
 * Infinity into null, which fails here with the field named.
 */
export function parseShardReturn(value: unknown): ShardReturn {
  const f = new Fields('ShardReturn', value);
  const r: ShardReturn = {
    ...shardIdentity(f),
    lossSum: f.finite('lossSum'),
    correct: f.int('correct', 0, MAX_SHARD_SAMPLES),
    computeMs: f.finite('computeMs'),
    queueMs: f.finite('queueMs'),
    workerId: f.string('workerId', 200),
    ...(f.has('stats') ? { stats: statsField(f.value('stats'), f.int('count', 1, MAX_SHARD_SAMPLES)) } : {}),
    ...(f.has('timing') ? { timing: workerTiming(f.value('timing')) } : {}),
  };
  f.done();
  if (r.correct > r.count) throw new MessageError('ShardReturn.correct', `${r.correct} correct out of ${r.count} samples`);
  if (r.lossSum < 0) throw new MessageError('ShardReturn.lossSum', `${r.lossSum} is negative; a sum of cross-entropy losses is >= 0`);
  return r;
}
