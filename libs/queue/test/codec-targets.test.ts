// The vision tasks on the wire: shard inputs carry the task's targets (boxes, object lists, masks)
// and eval returns carry the task's statistics; both are checked field by field, lengths against
// the shard's count, before anything reaches a computation.
import { describe, expect, it } from 'vitest';
import { decodeShardInput, encodeMessage, encodeShardInput, MAX_OBJECTS_PER_SAMPLE, MessageError, parseJobContext, parseShardReturn, type ShardInputMessage } from '../src/index.ts';

function expectMessageError(fn: () => unknown, field: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a MessageError on ${field}`).toBeInstanceOf(MessageError);
  expect((caught as MessageError).field).toBe(field);
  if (message) expect((caught as MessageError).message).toMatch(message);
}

const base = { jobId: 'j', kind: 'train' as const, step: 3, shard: 1, count: 2, images: new Uint8Array(2 * 16), labels: new Uint8Array([3, 7]) };
const expected = (task: 'classification' | 'localization' | 'detection' | 'segmentation') => ({ jobId: 'j', kind: 'train' as const, step: 3, shard: 1, count: 2, sampleBytes: 16, task, pixels: 16 });
/** Re-encodes a message with some raw fields replaced (or removed with undefined), bypassing encodeShardInput. */
function raw(m: ShardInputMessage, fields: Record<string, unknown>): Buffer {
  const out: Record<string, unknown> = { jobId: m.jobId, kind: m.kind, step: m.step, shard: m.shard, count: m.count, images: m.images, labels: m.labels, ...m.targets, ...fields };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return encodeMessage(out);
}

describe('shard input targets', () => {
  const loc: ShardInputMessage = { ...base, targets: { boxes: new Float32Array([0.5, 0.5, 0.25, 0.25, 0.1, 0.9, 0.2, 0.1]) } };
  const det: ShardInputMessage = {
    ...base,
    targets: { boxOffsets: new Uint32Array([0, 1, 3]), boxes: new Float32Array([0.5, 0.5, 0.25, 0.25, 0.1, 0.9, 0.2, 0.1, 0.3, 0.3, 0.1, 0.1]), boxLabels: new Uint8Array([3, 7, 1]) },
  };
  const seg: ShardInputMessage = { ...base, targets: { masks: new Uint8Array(32).map((_, i) => i % 11) } };

  it('round-trips each task bit for bit', () => {
    for (const [task, m] of [['localization', loc], ['detection', det], ['segmentation', seg]] as const) {
      const back = decodeShardInput(encodeShardInput(m), expected(task));
      expect(back.targets).toEqual(m.targets);
      for (const [k, v] of Object.entries(m.targets!)) expect((back.targets as Record<string, unknown>)[k]).toBeInstanceOf(v.constructor);
    }
    expect(decodeShardInput(encodeShardInput(base), expected('classification')).targets).toBeUndefined();
  });

  it('rejects missing, extra and mis-sized target fields, naming them', () => {
    expectMessageError(() => decodeShardInput(encodeShardInput(base), expected('localization')), 'ShardInput.boxes', /expected a Float32Array/);
    expectMessageError(() => decodeShardInput(encodeShardInput(loc), expected('classification')), 'ShardInput.boxes', /unexpected field/);
    expectMessageError(() => decodeShardInput(raw(loc, { boxes: new Float32Array(7) }), expected('localization')), 'ShardInput.boxes', /expected 8 values, got 7/);
    expectMessageError(() => decodeShardInput(raw(loc, { boxes: new Float32Array([0.5, 0.5, 1.5, 0.2, 0, 0, 0, 0]) }), expected('localization')), 'ShardInput.boxes[2]', /1.5 is not in \[0, 1\]/);
    expectMessageError(() => decodeShardInput(raw(loc, { boxes: new Float32Array([Number.NaN, 0, 0, 0, 0, 0, 0, 0]) }), expected('localization')), 'ShardInput.boxes[0]', /NaN/);
    expectMessageError(() => decodeShardInput(raw(seg, { masks: new Uint8Array(31) }), expected('segmentation')), 'ShardInput.masks', /expected 32 bytes, got 31/);
    expectMessageError(() => decodeShardInput(raw(seg, { masks: new Float32Array(32) }), expected('segmentation')), 'ShardInput.masks', /expected a Uint8Array/);
  });

  it('checks detection offsets before the boxes they size', () => {
    expectMessageError(() => decodeShardInput(raw(det, { boxOffsets: new Uint32Array([0, 1]) }), expected('detection')), 'ShardInput.boxOffsets', /expected 3 values, got 2/);
    expectMessageError(() => decodeShardInput(raw(det, { boxOffsets: new Uint32Array([1, 1, 3]) }), expected('detection')), 'ShardInput.boxOffsets[0]', /expected 0/);
    expectMessageError(() => decodeShardInput(raw(det, { boxOffsets: new Uint32Array([0, 3, 1]) }), expected('detection')), 'ShardInput.boxOffsets[2]', /sample 1 has -2 objects/);
    // A huge declared object count fails on the offsets, not by allocating for it.
    expectMessageError(() => decodeShardInput(raw(det, { boxOffsets: new Uint32Array([0, 1, 2 ** 31]) }), expected('detection')), 'ShardInput.boxOffsets[2]', new RegExp(`expected 0 to ${MAX_OBJECTS_PER_SAMPLE}`));
    expectMessageError(() => decodeShardInput(raw(det, { boxLabels: new Uint8Array(2) }), expected('detection')), 'ShardInput.boxLabels', /expected 3 bytes, got 2/);
    expectMessageError(() => decodeShardInput(raw(det, { boxes: new Float32Array(8) }), expected('detection')), 'ShardInput.boxes', /expected 12 values, got 8/);
    expectMessageError(() => decodeShardInput(raw(det, { boxOffsets: [0, 1, 3] }), expected('detection')), 'ShardInput.boxOffsets', /expected a Uint32Array/);
  });

  it('bounds the message size by the count and the task before decoding', () => {
    const big = raw(seg, { masks: new Uint8Array(32), padding: new Uint8Array(200_000) });
    expectMessageError(() => decodeShardInput(big, expected('segmentation')), 'ShardInput', /exceeds the limit/);
    // The same padding is refused for a classification shard too, before the unknown field is seen.
    expectMessageError(() => decodeShardInput(raw(base, { padding: new Uint8Array(200_000) }), expected('classification')), 'ShardInput', /exceeds the limit/);
  });
});

describe('eval return stats and vision job contexts', () => {
  const ret = { jobId: 'j', kind: 'eval', step: 1, shard: 0, paramsVersion: 1, paramsToken: '0123abcd', count: 4, lossSum: 3, correct: 0, computeMs: 1, queueMs: 0, workerId: 'w' };

  it('accepts an array of finite numbers and rejects anything else', () => {
    expect(parseShardReturn({ ...ret, stats: [1, 2.5, 0] }).stats).toEqual([1, 2.5, 0]);
    expect(parseShardReturn(ret).stats).toBeUndefined();
    expectMessageError(() => parseShardReturn({ ...ret, stats: 'x' }), 'ShardReturn.stats', /expected an array/);
    expectMessageError(() => parseShardReturn(JSON.parse(JSON.stringify({ ...ret, stats: [1, Number.NaN] }))), 'ShardReturn.stats[1]', /finite number, got null/);
    expectMessageError(() => parseShardReturn({ ...ret, stats: [1, '2'] }), 'ShardReturn.stats[1]', /finite number/);
    expectMessageError(() => parseShardReturn({ ...ret, stats: new Array(70_000).fill(0) }), 'ShardReturn.stats', /exceed the limit/);
  });

  it('parses the task and classes of a job context', () => {
    const ctx = { jobId: 'j', modelSpec: { input: [1, 96, 96], layers: [] }, task: 'detection', numClasses: 10, normalization: { mean: [0.05], std: [0.2] }, seed: 1, stateLength: 3, gradientLength: 3, bufferLength: 0 };
    const bytes = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
    expect(parseJobContext(bytes(ctx), 'j')).toMatchObject({ task: 'detection', numClasses: 10 });
    expectMessageError(() => parseJobContext(bytes({ ...ctx, numClasses: undefined }), 'j'), 'JobContext.numClasses', /integer/);
    expectMessageError(() => parseJobContext(bytes({ ...ctx, task: 'pose' }), 'j'), 'JobContext.task', /one of classification, localization, detection, segmentation/);
    expect(parseJobContext(bytes({ ...ctx, task: 'classification', numClasses: undefined }), 'j').numClasses).toBeUndefined();
    // Kernel numerics: 'fma' or absent ('exact').
    expect(parseJobContext(bytes({ ...ctx, numerics: 'fma' }), 'j').numerics).toBe('fma');
    expect('numerics' in parseJobContext(bytes(ctx), 'j')).toBe(false);
    expectMessageError(() => parseJobContext(bytes({ ...ctx, numerics: 'exact' }), 'j'), 'JobContext.numerics', /one of fma/);
  });
});
