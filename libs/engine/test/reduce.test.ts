import { setWasmKernelsEnabled, kernelBackend } from '@stride/cnn';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkShardResult, gradientOutliers, reduceShards, ShardResultError, type JobContext, type ShardResult, type ShardTask } from '../src/index.ts';

const job: JobContext = {
  jobId: 'j',
  modelSpec: { input: [1, 1, 1], layers: [{ type: 'flatten' }] },
  task: 'classification',
  normalization: { mean: [0], std: [1] },
  seed: 1,
  stateLength: 4,
  gradientLength: 4,
  bufferLength: 0,
};

function task(shard: number, count: number): ShardTask {
  return { kind: 'train', jobId: 'j', step: 3, shard, paramsVersion: 3, count, images: new Uint8Array(count), labels: new Uint8Array(count) };
}

function result(t: ShardTask, gradient: number[], extra: Partial<ShardResult> = {}): ShardResult {
  return { kind: t.kind, jobId: t.jobId, step: t.step, shard: t.shard, paramsVersion: t.paramsVersion, count: t.count, lossSum: 1.5, correct: 1, gradient: Float32Array.from(gradient), computeMs: 1, ...extra };
}

describe('reduceShards', () => {
  // Values chosen so that float32 addition order changes the result: 1e8 + 1 + 1 - 1e8.
  const tasks = [task(0, 2), task(1, 1), task(2, 1), task(3, 1)];
  const grads = [
    [1e8, 3, 0.1, -2],
    [1, 1e-3, 0.2, 5],
    [1, 7, 0.3, 1e-7],
    [-1e8, -3, 0.4, 2],
  ];

  // 1 to 4 shards have a JS pass of their own each; 5 and 6 take the general loop. Both on the
  // WebAssembly SIMD kernels (where this thread has them) and on the JS fallback.
  const many = [...tasks, task(4, 3), task(5, 1)];
  for (const [backend, shards] of (['wasm-simd', 'js'] as const).flatMap((b) => [1, 2, 3, 4, 5, 6].map((n) => [b, n] as const))) {
    it(`${backend}, ${shards} shard(s): the same bytes as adding into a zeroed float32 array, then dividing (−0, tiny and huge values)`, () => {
      setWasmKernelsEnabled(backend === 'wasm-simd');
      onTestFinished(() => setWasmKernelsEnabled(true));
      expect(kernelBackend()).toBe(backend);
      const tasks = many;
      const values = [1e8, -0, 3e-39, -1e-7, 0.1, 16777217, -3.5, 1e30];
      const gs = tasks.slice(0, shards).map((_, s) => values.map((v, i) => (s % 2 === 0 ? v : values[(i + s) % values.length] * -0.7)));
      const r = reduceShards(job, tasks.slice(0, shards), tasks.slice(0, shards).map((t, s) => result(t, gs[s].slice(0, 4))));
      const expected = new Float32Array(4);
      for (const g of gs) {
        const f = Float32Array.from(g.slice(0, 4));
        for (let i = 0; i < 4; i++) expected[i] += f[i];
      }
      const count = tasks.slice(0, shards).reduce((n, t) => n + t.count, 0);
      for (let i = 0; i < 4; i++) expected[i] /= count;
      expect(new Uint32Array(r.gradient!.buffer)).toEqual(new Uint32Array(expected.buffer));
    });
  }

  it('sums in shard order, rounding each addition to float32, then divides by the batch count', () => {
    const r = reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s])));
    const expected = new Float32Array(4);
    for (const g of grads) for (let i = 0; i < 4; i++) expected[i] = Math.fround(expected[i] + Math.fround(g[i]));
    for (let i = 0; i < 4; i++) expected[i] = Math.fround(expected[i] / 5);
    expect(Array.from(r.gradient!)).toEqual(Array.from(expected));
    expect(r.count).toBe(5);
    expect(r.lossSum).toBe(6);
    expect(r.correct).toBe(4);
    // 1e8 + 1 + 1 - 1e8 in float32 is 0: the order is part of the result, so it is fixed.
    expect(r.gradient![0]).toBe(0);
    const reordered = new Float32Array(4);
    for (const s of [0, 3, 1, 2]) for (let i = 0; i < 4; i++) reordered[i] = Math.fround(reordered[i] + Math.fround(grads[s][i]));
    expect(reordered[0] / 5).not.toBe(0);
  });

  it('gives the same bytes on every call', () => {
    const a = reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s])));
    const b = reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s])));
    expect(Buffer.from(a.gradient!.buffer).equals(Buffer.from(b.gradient!.buffer))).toBe(true);
  });

  it('reduces into a given buffer, written over, with the bytes of a fresh one (both backends)', () => {
    const fresh = reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s]))).gradient!;
    for (const wasm of [true, false]) {
      setWasmKernelsEnabled(wasm);
      onTestFinished(() => setWasmKernelsEnabled(true));
      const into = Float32Array.from([7, -7, 7, -7]);
      const r = reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s])), into);
      expect(r.gradient).toBe(into);
      expect(Buffer.from(into.buffer).equals(Buffer.from(fresh.buffer))).toBe(true);
    }
    expect(() => reduceShards(job, tasks, tasks.map((t, s) => result(t, grads[s])), new Float32Array(3))).toThrow(/into has 3 floats, the job's gradient 4/);
  });

  it.each<[string, Partial<ShardResult>, RegExp]>([
    ['a non-finite gradient', { gradient: Float32Array.from([0, NaN, 0, 0]) }, /non-finite/],
    ['an infinite gradient', { gradient: Float32Array.from([0, 0, Infinity, 0]) }, /non-finite/],
    ['a short gradient', { gradient: new Float32Array(3) }, /gradient of 3 values, expected 4/],
    ['a stale parameter version', { paramsVersion: 2 }, /version 2, expected 3/],
    ['the wrong shard', { shard: 0 }, /answers step 3 shard 0/],
    ['a wrong count', { count: 9 }, /count 9, expected 1/],
    ['a NaN loss', { lossSum: NaN }, /lossSum NaN/],
    ['too many correct', { correct: 2 }, /correct 2 outside \[0, 1\]/],
    ['no gradient', { gradient: undefined }, /no gradient/],
  ])('rejects %s, never summing it in', (_title, patch, message) => {
    const results = tasks.map((t, s) => result(t, grads[s], s === 1 ? patch : {}));
    expect(checkShardResult(job, tasks[1], results[1])).toMatch(message);
    expect(() => reduceShards(job, tasks, results)).toThrow(ShardResultError);
    expect(() => reduceShards(job, tasks, results)).toThrow(/job j step 3 shard 1/);
  });

  it('rejects a missing result', () => {
    expect(() => reduceShards(job, tasks, tasks.slice(1).map((t) => result(t, [0, 0, 0, 0])))).toThrow(/3 results for 4 shard tasks/);
  });

  it('averages buffers weighted by count', () => {
    const withBuffers = { ...job, stateLength: 6, bufferLength: 2 };
    const ts = [task(0, 3), task(1, 1)];
    const r = reduceShards(withBuffers, ts, [result(ts[0], [0, 0, 0, 0], { buffers: Float32Array.from([1, 2]) }), result(ts[1], [0, 0, 0, 0], { buffers: Float32Array.from([5, 6]) })]);
    expect(Array.from(r.buffers!)).toEqual([2, 3]);
  });
});

describe('checkShardResult', () => {
  it("takes a gradient's Σ v² from its result when the result carries one (no second pass), for finiteness and for the norm check", () => {
    const t = task(0, 2);
    expect(checkShardResult(job, t, result(t, [1, 2, 3, 4]))).toBeUndefined();
    // What its maker computed is what counts: a (made-up) non-finite Σ v² is a non-finite gradient.
    expect(checkShardResult(job, t, result(t, [1, 2, 3, 4], { gradientSumSquares: NaN }))).toMatch(/non-finite/);
    // And the norms compared are the carried ones: Σ v² 30 vs 3e6 (norms 316× apart, under the
    // 1000× limit), then vs 3e8 (3162×: over it); the gradients themselves are equal.
    const u = task(1, 2);
    const near = [result(t, [1, 2, 3, 4], { gradientSumSquares: 30 }), result(u, [1, 2, 3, 4], { gradientSumSquares: 3e6 })];
    const far = [result(t, [1, 2, 3, 4], { gradientSumSquares: 30 }), result(u, [1, 2, 3, 4], { gradientSumSquares: 3e8 })];
    for (const [i, r] of [...near, ...far].entries()) expect(checkShardResult(job, [t, u][i % 2], r)).toBeUndefined();
    expect(gradientOutliers(near)).toEqual([]);
    expect(gradientOutliers(far).map((o) => o.index)).toEqual([1]);
  });
});
