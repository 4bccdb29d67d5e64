// Fuzz: random and mutated bytes at every decoder of untrusted input — the queue codec (parameter
// versions, shard inputs, gradients, BullMQ job data and return values, job contexts, worker
// heartbeats), checkpoints (raw, and with a re-computed checksum so the payload checks run),
// named-array blobs, optimizer state and IDX files. Only named validation errors may come out (no
// TypeError, RangeError or stack overflow), the valid input still decodes, and the heap stays bounded.
//
// Seeded and time-boxed: ~0.6 s per decoder in `npm test`; `STRIDE_FUZZ_SECONDS=60` for a long run,
// `STRIDE_FUZZ_SEED=n` for another sequence.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createOptimizer, decodeNamedArrays, encodeNamedArrays, type Param } from '@stride/cnn';
import { encodeIdx, parseIdx } from '@stride/data';
import { CHECKPOINT_HEADER_BYTES, decodeCheckpoint } from '@stride/engine';
import {
  decodeGradient,
  decodeMessage,
  decodeParams,
  decodeShardInput,
  encodeGradient,
  encodeParams,
  encodeShardInput,
  parseJobContext,
  parseShardJobData,
  parseShardReturn,
  parseTrainJobData,
  parseWorkerInfo,
} from '@stride/queue';
import { Rng, fuzzBudgetMs, fuzzDecoder, fuzzSeed, mutateBytes, mutateJson, randomJson, validCheckpointBytes } from './fuzz-helpers.ts';

const BUDGET_MS = fuzzBudgetMs(8_000);
const SEED = fuzzSeed();

/** Valid inputs of each decoder, the starting points of the mutations. */
const identity = { jobId: 'job-1', kind: 'train' as const, step: 7, shard: 2, paramsVersion: 7, paramsToken: 'a1b2c3d4e5f6', count: 4 };
const GRADIENT = encodeGradient({ ...identity, gradient: Float32Array.from({ length: 24 }, (_, i) => i - 3.5), buffers: Float32Array.from([1, 2, 3]) });
const PARAMS = encodeParams({ jobId: 'job-1', version: 3, token: 'a1b2c3d4', state: new Uint8Array(64).map((_, i) => i) });
const INPUT = encodeShardInput({ jobId: 'job-1', kind: 'train', step: 7, shard: 2, count: 4, images: new Uint8Array(4 * 9).fill(200), labels: Uint8Array.from([1, 2, 3, 9]) });
const CONTEXT = new TextEncoder().encode(
  JSON.stringify({ jobId: 'job-1', modelSpec: { input: [1, 3, 3], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }] }, task: 'classification', normalization: { mean: [0.1], std: [0.3] }, seed: 1, stateLength: 100, gradientLength: 100, bufferLength: 0 }),
);
const NAMED = encodeNamedArrays(
  [
    { name: 'a', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    { name: 'b', shape: [], data: Float32Array.from([7]) },
    { name: 'c', shape: [0, 4], data: new Float32Array(0) },
  ],
  { step: 3, tags: ['x', 'y'], nested: { ok: true } },
);
const IDX = encodeIdx([3, 2, 2], Uint8Array.from({ length: 12 }, (_, i) => i * 20));
const CHECKPOINT = validCheckpointBytes();
const SHARD_JOB_DATA = { ...identity, enqueuedAt: 1_700_000_000_000 };
const SHARD_RETURN = { ...identity, lossSum: 8.5, correct: 3, computeMs: 12.5, queueMs: 3, workerId: 'host:123:abcdef' };
const WORKER_INFO = { id: 'host:123:abcdef', host: 'host', pid: 123, threads: 2, shardsDone: 10, shardsFailed: 0, busyMs: 100, active: 1, state: 'running', startedAt: 1, lastSeen: 2 };
const TRAIN_JOB_DATA = { jobId: 'job-1', spec: { model: 'lenet5', dataset: 'mnist', steps: 3, batchSize: 8, shards: 2, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9 } }, submittedAt: 1 };

/** A checkpoint with `payload` in place of its own, and a header checksum that matches it. */
function withChecksum(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHECKPOINT_HEADER_BYTES + payload.length);
  out.set(CHECKPOINT.subarray(0, 16));
  out.set(createHash('sha256').update(payload).digest(), 16);
  out.set(payload, CHECKPOINT_HEADER_BYTES);
  return out;
}

/** The optimizer a resumed job would load the checkpoint's state into (Adam over its two params). */
function loadOptimizerState(bytes: Uint8Array): void {
  const ckpt = decodeCheckpoint(bytes, 'fuzz.ckpt');
  const params: Param[] = [
    { name: 'conv1.weight', shape: [2, 3], data: new Float32Array(6), grad: new Float32Array(6) },
    { name: 'conv1.bias', shape: [2], data: new Float32Array(2), grad: new Float32Array(2) },
  ];
  createOptimizer({ type: 'adam', lr: 1e-3 }, params).loadStateArrays(ckpt.optimizerState, ckpt.meta.optimizerStepCount);
}

type Case = { name: string; base: Uint8Array | unknown; decode: (input: never) => unknown; input: (rng: Rng) => Uint8Array | unknown };

const bytesCase = (name: string, base: Uint8Array, decode: (b: Uint8Array) => unknown): Case => ({
  name,
  base,
  decode: decode as (input: never) => unknown,
  // Mostly mutations of the valid bytes; one in ten wholly random (of a random length).
  input: (rng) => (rng.chance(0.1) ? rng.bytes(rng.int(200)) : mutateBytes(rng, base)),
});

const jsonCase = (name: string, base: unknown, decode: (v: unknown) => unknown): Case => ({
  name,
  base,
  decode: decode as (input: never) => unknown,
  input: (rng) => (rng.chance(0.1) ? randomJson(rng) : mutateJson(rng, base)),
});

const CASES: Case[] = [
  bytesCase('decodeGradient', GRADIENT, (b) => decodeGradient(b, { gradientLength: 24, bufferLength: 3 })),
  bytesCase('decodeParams', PARAMS, (b) => decodeParams(b, { jobId: 'job-1', version: 3, stateLength: 16 })),
  bytesCase('decodeShardInput', INPUT, (b) => decodeShardInput(b, { jobId: 'job-1', kind: 'train', step: 7, shard: 2, count: 4, sampleBytes: 9 })),
  bytesCase('decodeMessage (any plain data)', GRADIENT, (b) => decodeMessage(b, 'Any', 1 << 20)),
  bytesCase('parseJobContext', CONTEXT, (b) => parseJobContext(b, 'job-1')),
  bytesCase('decodeNamedArrays', NAMED, (b) => decodeNamedArrays(b)),
  bytesCase('parseIdx', IDX, (b) => parseIdx(b, 'fuzz.idx')),
  bytesCase('decodeCheckpoint (raw bytes)', CHECKPOINT, (b) => decodeCheckpoint(b, 'fuzz.ckpt')),
  {
    ...bytesCase('decodeCheckpoint (payload mutated, checksum recomputed)', CHECKPOINT, (b) => decodeCheckpoint(b, 'fuzz.ckpt')),
    input: (rng) => withChecksum(mutateBytes(rng, CHECKPOINT.subarray(CHECKPOINT_HEADER_BYTES))),
  },
  {
    ...bytesCase('optimizer state from a checkpoint (checksum recomputed)', CHECKPOINT, loadOptimizerState),
    input: (rng) => withChecksum(mutateBytes(rng, CHECKPOINT.subarray(CHECKPOINT_HEADER_BYTES))),
  },
  jsonCase('parseShardJobData', SHARD_JOB_DATA, parseShardJobData),
  jsonCase('parseShardReturn', SHARD_RETURN, parseShardReturn),
  jsonCase('parseWorkerInfo', WORKER_INFO, parseWorkerInfo),
  jsonCase('parseTrainJobData', TRAIN_JOB_DATA, parseTrainJobData),
];

describe(`fuzz: every decoder (seed ${SEED}, ${(BUDGET_MS / 1000).toFixed(1)} s in all)`, () => {
  it('the valid inputs decode (the fuzz starts from real messages)', () => {
    for (const c of CASES) expect(() => c.decode(c.base as never), c.name).not.toThrow();
  });

  // One seed per decoder, derived from the run's seed, so each reproduces on its own.
  it.each(CASES.map((c, i) => [c.name, i] as const))('%s: only named errors, never a crash', (_name, i) => {
    const c = CASES[i];
    const rng = new Rng(SEED * 131 + i);
    const heapBefore = process.memoryUsage().heapUsed;
    const r = fuzzDecoder(BUDGET_MS / CASES.length, () => c.input(rng), c.decode);
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    expect(r.crashes, `seed ${SEED}: inputs that crashed ${c.name}`).toEqual([]);
    // The fuzz did reach the decoder: many inputs, most of them refused with a named error.
    expect(r.runs).toBeGreaterThan(50);
    const refused = Object.values(r.refused).reduce((a, b) => a + b, 0);
    expect(refused + r.accepted).toBe(r.runs);
    expect(refused).toBeGreaterThan(r.runs / 4);
    // Nothing allocated per input survives it (a forged length allocates nothing at all).
    expect(heapGrowthMb).toBeLessThan(128);
  }, BUDGET_MS / CASES.length + 60_000);
});
