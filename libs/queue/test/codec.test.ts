import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeGradient,
  decodeMessage,
  decodeParams,
  decodeShardInput,
  encodeGradient,
  encodeMessage,
  encodeParams,
  encodeShardInput,
  MessageError,
  parseShardJobData,
  parseShardReturn,
  parseShardNews,
  encodeShardNews,
  MAX_SHARD_NEWS,
  parseShardJobId,
  shardJobId,
  Keys,
  checkJobId,
} from '../src/index.ts';

/** Asserts `fn` throws a MessageError whose field is `field` and whose message matches `message`. */
function expectMessageError(fn: () => unknown, field: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a MessageError on ${field}`).toBeInstanceOf(MessageError);
  const err = caught as MessageError;
  expect(err.name).toBe('MessageError');
  expect(err.field).toBe(field);
  if (message) expect(err.message).toMatch(message);
}

/** Float32Array whose bytes hold every awkward value: NaN payloads, -0, infinities, denormals. */
function awkwardFloats(): Float32Array {
  const bits = [0x7fc00000, 0x7fc12345, 0xffc00001, 0x7f800001, 0x80000000, 0x00000000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff, 0x3f800000, 0xc2f6e979];
  return new Float32Array(new Uint32Array(bits).buffer);
}

const bitsOf = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe('codec: round trips', () => {
  it('a Float32Array survives bit for bit (NaN payloads, -0, infinities, denormals)', () => {
    const f = awkwardFloats();
    const out = decodeMessage(encodeMessage({ f }), 'Test', 1 << 20) as { f: Float32Array };
    expect(out.f).toBeInstanceOf(Float32Array);
    expect(bitsOf(out.f)).toEqual(bitsOf(f));
    expect(Object.is(out.f[4], -0)).toBe(true);
    // The decoded array owns an aligned buffer of its own (safe to transfer to a thread).
    expect(out.f.byteOffset).toBe(0);
    expect(out.f.buffer.byteLength).toBe(f.byteLength);
  });

  it('a gradient blob round-trips with its identity, gradient and buffers', () => {
    const gradient = awkwardFloats();
    const buffers = new Float32Array([1, -0, 3]);
    const bytes = encodeGradient({ jobId: 'job-1', step: 7, shard: 2, paramsVersion: 7, paramsToken: 'a1b2c3d4e5f6', count: 16, gradient, buffers });
    const m = decodeGradient(bytes, { gradientLength: gradient.length, bufferLength: 3 });
    expect(m).toMatchObject({ jobId: 'job-1', step: 7, shard: 2, paramsVersion: 7, paramsToken: 'a1b2c3d4e5f6', count: 16 });
    expect(bitsOf(m.gradient)).toEqual(bitsOf(gradient));
    expect(bitsOf(m.buffers!)).toEqual(bitsOf(buffers));
  });

  it('a parameter version round-trips byte for byte', () => {
    const state = new Uint8Array(new Float32Array([0.1, -0, NaN, 3e-42]).buffer);
    const m = decodeParams(encodeParams({ jobId: 'j', version: 3, token: '0123abcd', state }), { jobId: 'j', version: 3, stateLength: 4 });
    expect(m.token).toBe('0123abcd');
    expect(Array.from(m.state)).toEqual(Array.from(state));
  });

  it('a shard input round-trips', () => {
    const images = Uint8Array.from({ length: 2 * 4 }, (_, i) => i * 30);
    const labels = new Uint8Array([3, 9]);
    const bytes = encodeShardInput({ jobId: 'j', kind: 'eval', step: 4, shard: 1, count: 2, images, labels });
    const m = decodeShardInput(bytes, { jobId: 'j', kind: 'eval', step: 4, shard: 1, count: 2, sampleBytes: 4 });
    expect(Array.from(m.images)).toEqual(Array.from(images));
    expect(Array.from(m.labels)).toEqual([3, 9]);
  });

  it('shard job ids are deterministic, BullMQ-safe (no colon) and parse back', () => {
    expect(shardJobId('j-abc.1', 'train', 12, 3)).toBe('j-abc.1-s12-3');
    expect(shardJobId('j-abc.1', 'eval', 12, 3)).toBe('j-abc.1-e12-3');
    expect(shardJobId('j', 'train', 0, 0)).not.toContain(':');
    expect(parseShardJobId('j-abc.1-s12-3')).toEqual({ jobId: 'j-abc.1', kind: 'train', step: 12, shard: 3 });
    expect(parseShardJobId('j-abc.1-e0-9')).toEqual({ jobId: 'j-abc.1', kind: 'eval', step: 0, shard: 9 });
    expect(parseShardJobId('nonsense')).toBeUndefined();
  });

  it('keys share the prefix, hash tag included', () => {
    const k = new Keys('{stride}');
    expect(k.params('j1', 5)).toBe('{stride}:job:j1:params:5');
    expect(k.grad('j1', 5, 2)).toBe('{stride}:job:j1:grad:5:2');
    expect(k.input('j1', 'eval', 5, 2)).toBe('{stride}:job:j1:input:e5:2');
    expect(() => new Keys('has space')).toThrow(/prefix/);
    expect(() => checkJobId('a:b')).toThrow(/job id/);
    expect(() => checkJobId('.hidden')).toThrow(/job id/);
  });
});

describe('codec: rejections', () => {
  const gradOk = { jobId: 'j', step: 1, shard: 0, paramsVersion: 1, paramsToken: '0123abcd', count: 4, gradient: new Float32Array(8) };
  const expected = { gradientLength: 8, bufferLength: 0 };

  it('refuses a message larger than the limit before decoding it', () => {
    expectMessageError(() => decodeMessage(new Uint8Array(1025), 'Big', 1024), 'Big', /1025 bytes exceeds the limit of 1024/);
    // A gradient blob far longer than the declared gradient is refused on size alone.
    const huge = encodeGradient({ ...gradOk, gradient: new Float32Array(100_000) });
    expectMessageError(() => decodeGradient(huge, expected), 'Gradient', /exceeds the limit/);
  });

  it('refuses malformed, truncated and trailing bytes', () => {
    const bytes = encodeGradient(gradOk);
    expectMessageError(() => decodeGradient(bytes.subarray(0, bytes.length - 5), expected), 'Gradient', /not a valid message/);
    expectMessageError(() => decodeGradient(Buffer.concat([bytes, Buffer.from([0])]), expected), 'Gradient', /not a valid message/);
    // 0xc1 is msgpack's never-used byte: msgpackr yields a marker object, which is not plain data.
    expectMessageError(() => decodeMessage(new Uint8Array([0xc1]), 'X', 100), 'X', /only plain data/);
  });

  it('refuses extension types and class instances (Set, Date, RegExp, Error, other typed arrays)', () => {
    const p = new Packr({ moreTypes: true, useRecords: false });
    for (const [name, value, what] of [
      ['set', new Set([1]), /Set/],
      ['date', new Date(0), /Date/],
      ['regexp', /a+/, /RegExp/],
      ['error', new Error('boom'), /Error/],
      ['f64', new Float64Array(2), /Float64Array/],
      ['i32', new Int32Array(2), /Int32Array/],
    ] as const) {
      expectMessageError(() => decodeMessage(p.pack({ [name]: value }), 'M', 1 << 20), `M.${name}`, what);
    }
    expectMessageError(() => decodeMessage(p.pack({ big: 2n ** 64n - 1n }), 'M', 1 << 20), 'M.big', /bigint/);
  });

  it('refuses structured-clone references and prototype keys', () => {
    const clone = new Packr({ moreTypes: true, structuredClone: true });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expectMessageError(() => decodeMessage(clone.pack(cyclic), 'M', 1 << 20), 'M', /Structured clone/);
    const p = new Packr({ useRecords: false });
    expectMessageError(() => decodeMessage(p.pack(JSON.parse('{"__proto__": {"polluted": 1}}')), 'M', 1 << 20), 'M.__proto_', /forbidden/);
    expectMessageError(() => decodeMessage(p.pack({ constructor: 1 }), 'M', 1 << 20), 'M.constructor', /forbidden/);
  });

  it('names the field of every schema violation', () => {
    const enc = (o: Record<string, unknown>): Buffer => encodeMessage(o);
    const base = { ...gradOk };
    expectMessageError(() => decodeGradient(enc({ ...base, gradient: new Float32Array(7) }), expected), 'Gradient.gradient', /expected 8 values, got 7/);
    expectMessageError(() => decodeGradient(enc({ ...base, gradient: new Uint8Array(32) }), expected), 'Gradient.gradient', /expected a Float32Array, got Uint8Array/);
    expectMessageError(() => decodeGradient(enc({ ...base, step: -1 }), expected), 'Gradient.step', /out of range/);
    expectMessageError(() => decodeGradient(enc({ ...base, step: 1.5 }), expected), 'Gradient.step', /integer/);
    expectMessageError(() => decodeGradient(enc({ ...base, count: 0 }), expected), 'Gradient.count', /out of range/);
    expectMessageError(() => decodeGradient(enc({ ...base, jobId: 'a:b' }), expected), 'Gradient.jobId', /job id/);
    expectMessageError(() => decodeGradient(enc({ ...base, extra: 1 }), expected), 'Gradient.extra', /unexpected field/);
    expectMessageError(() => decodeGradient(enc(base), { gradientLength: 8, bufferLength: 2 }), 'Gradient.buffers', /expected a Float32Array, got undefined/);
    expectMessageError(() => decodeGradient(encodeMessage([1, 2]), expected), 'Gradient', /expected an object/);
  });

  it('checks a parameter version against the job, version and length it must be', () => {
    const state = new Uint8Array(16);
    const bytes = encodeParams({ jobId: 'j', version: 3, token: '0123abcd', state });
    expectMessageError(() => decodeParams(bytes, { jobId: 'k', version: 3, stateLength: 4 }), 'Params.jobId', /expected k, got j/);
    expectMessageError(() => decodeParams(bytes, { jobId: 'j', version: 4, stateLength: 4 }), 'Params.version', /expected version 4, got 3/);
    expectMessageError(() => decodeParams(encodeParams({ jobId: 'j', version: 3, token: '0123abcd', state: new Uint8Array(12) }), { jobId: 'j', version: 3, stateLength: 4 }), 'Params.state', /expected 16 bytes, got 12/);
    expectMessageError(() => decodeParams(encodeParams({ jobId: 'j', version: 3, token: 'XYZ', state }), { jobId: 'j', version: 3, stateLength: 4 }), 'Params.token', /does not match/);
  });

  it('checks a shard input against its job: identity, pixel and label counts', () => {
    const ok = { jobId: 'j', kind: 'train' as const, step: 2, shard: 1, count: 2, images: new Uint8Array(8), labels: new Uint8Array(2) };
    const exp = { jobId: 'j', kind: 'train' as const, step: 2, shard: 1, count: 2, sampleBytes: 4 };
    expectMessageError(() => decodeShardInput(encodeShardInput({ ...ok, images: new Uint8Array(7) }), exp), 'ShardInput.images', /expected 8 bytes, got 7/);
    expectMessageError(() => decodeShardInput(encodeShardInput({ ...ok, labels: new Uint8Array(3) }), exp), 'ShardInput.labels', /expected 2 bytes, got 3/);
    expectMessageError(() => decodeShardInput(encodeShardInput({ ...ok, shard: 3 }), exp), 'ShardInput.shard', /expected 1, got 3/);
    expectMessageError(() => decodeShardInput(encodeShardInput({ ...ok, kind: 'eval' }), exp), 'ShardInput.kind', /expected train, got eval/);
  });

  it('checks BullMQ job data and return values (JSON)', () => {
    const data = { jobId: 'j', kind: 'train', step: 1, shard: 2, paramsVersion: 1, paramsToken: '0123abcd', count: 16, enqueuedAt: 1 };
    expect(parseShardJobData(data)).toEqual(data);
    expectMessageError(() => parseShardJobData({ ...data, kind: 'other' }), 'ShardJobData.kind', /one of train, eval/);
    expectMessageError(() => parseShardJobData({ ...data, count: 1e9 }), 'ShardJobData.count', /out of range/);
    expectMessageError(() => parseShardJobData(null), 'ShardJobData', /object/);
    // The shards enqueued with it (workers decide on taking shards ahead from it); optional.
    expect(parseShardJobData({ ...data, shards: 4 })).toEqual({ ...data, shards: 4 });
    expectMessageError(() => parseShardJobData({ ...data, shards: 0 }), 'ShardJobData.shards', /out of range/);
    expectMessageError(() => parseShardJobData({ ...data, shards: '4' }), 'ShardJobData.shards', /expected an integer/);
    const ret = { jobId: 'j', kind: 'train', step: 1, shard: 2, paramsVersion: 1, paramsToken: '0123abcd', count: 16, lossSum: 12.5, correct: 9, computeMs: 3, queueMs: 1, workerId: 'w' };
    expect(parseShardReturn(ret)).toEqual(ret);
    // NaN and Infinity become null in JSON.
    expectMessageError(() => parseShardReturn(JSON.parse(JSON.stringify({ ...ret, lossSum: NaN }))), 'ShardReturn.lossSum', /finite number, got null/);
    expectMessageError(() => parseShardReturn({ ...ret, correct: 17 }), 'ShardReturn.correct', /17 correct out of 16/);
    expectMessageError(() => parseShardReturn({ ...ret, lossSum: -1 }), 'ShardReturn.lossSum', /negative/);
    expectMessageError(() => parseShardReturn({ ...ret, workerId: 5 }), 'ShardReturn.workerId', /string/);
  });

  it('checks shard news from the channel: a shard job id, a status, a return value only with a completion', () => {
    const ret = { jobId: 'j', kind: 'train', step: 1, shard: 2 };
    const done = { id: shardJobId('j', 'train', 1, 2), status: 'completed' as const, returnvalue: ret };
    expect(parseShardNews(encodeShardNews(done))).toEqual(done);
    const failed = { id: shardJobId('j', 'eval', 4, 0), status: 'failed' as const };
    expect(parseShardNews(encodeShardNews(failed))).toEqual(failed);
    // A failure carries nothing else, whatever it is given.
    expect(JSON.parse(encodeShardNews({ ...failed, returnvalue: ret }))).toEqual(failed);
    expectMessageError(() => parseShardNews('{"id":'), 'ShardNews', /not valid JSON/);
    expectMessageError(() => parseShardNews(JSON.stringify({ ...done, id: 'some-other-job' })), 'ShardNews.id', /not a shard job id/);
    expectMessageError(() => parseShardNews(JSON.stringify({ ...done, status: 'done' })), 'ShardNews.status', /one of completed, failed/);
    expectMessageError(() => parseShardNews(JSON.stringify({ ...failed, returnvalue: ret })), 'ShardNews.returnvalue', /./);
    expectMessageError(() => parseShardNews(JSON.stringify({ ...done, extra: 1 })), 'ShardNews.extra', /./);
    expectMessageError(() => parseShardNews(' '.repeat(MAX_SHARD_NEWS + 1)), 'ShardNews', /exceeds the limit/);
  });
});
