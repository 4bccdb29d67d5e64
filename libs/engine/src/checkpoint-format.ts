// The checkpoint file format: a fixed header with a SHA-256 checksum, then a named-array blob.
//
// Layout (little-endian):
//   0   magic "STRDCKPT" (8 ASCII bytes)
//   8   format version, uint32 (= 1)
//   12  reserved, uint32 (= 0)
//   16  SHA-256 of bytes [48, end) (32 bytes)
//   48  payload: `encodeNamedArrays(arrays, meta)` of @stride/cnn
// The arrays are named `param/<name>`, `buffer/<name>` and `optim/<name>`; `meta` is a
// `CheckpointMeta`. To verify in a browser: `crypto.subtle.digest('SHA-256', bytes.subarray(48))`
// and compare with bytes [16, 48); then `decodeNamedArrays(bytes.subarray(48))`.
import { createHash } from 'node:crypto';
import { decodeNamedArrays, encodeNamedArrays, type NamedArray } from '@stride/cnn';
import type { CheckpointMeta, EvalMetrics } from '@stride/protocol';
import { CheckpointError } from './errors.ts';
import { normalizeJobSpec } from './spec.ts';

const MAGIC = 'STRDCKPT';
const FORMAT_VERSION = 1;
/** Byte length of the fixed header; the checksum covers everything after it. */
export const CHECKPOINT_HEADER_BYTES = 48;

export type { CheckpointMeta } from '@stride/protocol';

/** A decoded checkpoint. */
export interface Checkpoint {
  readonly meta: CheckpointMeta;
  readonly params: NamedArray[];
  readonly buffers: NamedArray[];
  readonly optimizerState: NamedArray[];
}

const PREFIX = { params: 'param/', buffers: 'buffer/', optimizerState: 'optim/' } as const;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Encodes a checkpoint into the bytes of one file. */
export function encodeCheckpoint(ckpt: Checkpoint): Uint8Array {
  const arrays: NamedArray[] = [];
  for (const key of ['params', 'buffers', 'optimizerState'] as const) {
    for (const a of ckpt[key]) arrays.push({ name: PREFIX[key] + a.name, shape: a.shape, data: a.data });
  }
  const payload = encodeNamedArrays(arrays, ckpt.meta as unknown as Record<string, unknown>);
  const out = new Uint8Array(CHECKPOINT_HEADER_BYTES + payload.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, 0, true);
  out.set(createHash('sha256').update(payload).digest(), 16);
  out.set(payload, CHECKPOINT_HEADER_BYTES);
  return out;
}

/** Checks the header and the checksum; returns the payload. Throws `CheckpointError` naming what is wrong. */
export function verifyCheckpointBytes(bytes: Uint8Array, source = '<bytes>'): Uint8Array {
  if (bytes.length < CHECKPOINT_HEADER_BYTES) {
    throw new CheckpointError(`truncated: ${bytes.length} bytes, the header alone needs ${CHECKPOINT_HEADER_BYTES}`, source);
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw new CheckpointError(`not a Stride checkpoint (magic ${JSON.stringify(magic)}, expected ${JSON.stringify(MAGIC)})`, source);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== FORMAT_VERSION) throw new CheckpointError(`unsupported checkpoint format version ${version} (expected ${FORMAT_VERSION})`, source);
  const payload = bytes.subarray(CHECKPOINT_HEADER_BYTES);
  const stored = Buffer.from(bytes.subarray(16, 48)).toString('hex');
  const actual = sha256Hex(payload);
  if (stored !== actual) {
    throw new CheckpointError(`checksum mismatch: header says sha256 ${stored}, the ${payload.length} payload bytes hash to ${actual} (corrupt or truncated file)`, source);
  }
  return payload;
}

/** Verifies and decodes the bytes of a checkpoint file. */
export function decodeCheckpoint(bytes: Uint8Array, source = '<bytes>'): Checkpoint {
  const payload = verifyCheckpointBytes(bytes, source);
  let decoded: ReturnType<typeof decodeNamedArrays>;
  try {
    decoded = decodeNamedArrays(payload, { maxBytes: Number.MAX_SAFE_INTEGER });
  } catch (err) {
    throw new CheckpointError(`payload: ${(err as Error).message}`, source);
  }
  const meta = decoded.meta as Partial<CheckpointMeta>;
  if (meta.kind !== 'stride-checkpoint') throw new CheckpointError(`meta.kind is ${JSON.stringify(meta.kind)}, expected "stride-checkpoint"`, source);
  for (const field of ['step', 'epoch', 'batchIndex', 'optimizerStepCount', 'totalSteps', 'stepsPerEpoch'] as const) {
    const v = meta[field];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new CheckpointError(`meta.${field} must be an integer >= 0, got ${JSON.stringify(v)}`, source);
  }
  for (const field of ['jobId', 'paramsSha256', 'createdAt'] as const) {
    if (typeof meta[field] !== 'string') throw new CheckpointError(`meta.${field} must be a string, got ${typeof meta[field]}`, source);
  }
  // Added to the run's wall time on resume: a string here would concatenate, NaN would spread.
  if (typeof meta.elapsedMs !== 'number' || !Number.isFinite(meta.elapsedMs) || meta.elapsedMs < 0) {
    throw new CheckpointError(`meta.elapsedMs must be a finite number >= 0, got ${JSON.stringify(meta.elapsedMs)}`, source);
  }
  try {
    normalizeJobSpec(meta.spec);
  } catch (err) {
    throw new CheckpointError(`meta.spec is not a valid job spec: ${(err as Error).message}`, source);
  }
  if (typeof meta.modelSpec !== 'object' || meta.modelSpec === null) throw new CheckpointError('meta.modelSpec is missing', source);
  if (!Array.isArray(meta.evals)) throw new CheckpointError('meta.evals must be an array', source);
  meta.evals.forEach((e: Partial<EvalMetrics>, i) => {
    const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
    const ok =
      typeof e === 'object' &&
      e !== null &&
      Number.isSafeInteger(e.step) &&
      finite(e.testLoss) &&
      finite(e.count) &&
      [e.testAccuracy, e.meanIoU, e.locAccuracy, e.mAP50, e.mIoU, e.pixelAccuracy].every((v) => v === undefined || finite(v));
    if (!ok) throw new CheckpointError(`meta.evals[${i}] must hold an integer step, finite testLoss and count, and finite task metrics`, source);
  });
  const out: Checkpoint = { meta: meta as CheckpointMeta, params: [], buffers: [], optimizerState: [] };
  for (const a of decoded.arrays) {
    const key = (Object.keys(PREFIX) as (keyof typeof PREFIX)[]).find((k) => a.name.startsWith(PREFIX[k]));
    if (!key) throw new CheckpointError(`array ${JSON.stringify(a.name)} has none of the prefixes ${Object.values(PREFIX).join(', ')}`, source);
    out[key].push({ name: a.name.slice(PREFIX[key].length), shape: a.shape, data: a.data });
  }
  return out;
}
