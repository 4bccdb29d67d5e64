import { buildModel, createRng, getZooSpec } from '@stride/cnn';
import { describe, expect, it } from 'vitest';
import { packState, ShardComputer, stateLayout, unpackState, type JobContext, type ShardTask } from '../src/index.ts';

describe('packState', () => {
  const model = buildModel(getZooSpec('lenet5', {}), { seed: 3 });
  const { stateLength } = stateLayout(model);

  it('packs into a given buffer the values a fresh pack holds, and returns that buffer', () => {
    const fresh = packState(model);
    const out = new Float32Array(stateLength).fill(Number.NaN);
    expect(packState(model, out)).toBe(out);
    expect(out).toEqual(fresh);
    // Written over, not added to: packing again after a change gives the new values only.
    const changed = fresh.map((v, i) => (i % 5 === 0 ? v + 1 : v));
    unpackState(model, changed);
    expect(packState(model, out)).toEqual(changed);
  });

  it('refuses a buffer of another length', () => {
    expect(() => packState(model, new Float32Array(stateLength - 1))).toThrow(new RangeError(`packState: the model holds ${stateLength} state values, out has ${stateLength - 1}`));
  });
});

describe('ShardComputer', () => {
  // Batch norm: a training shard returns buffers too, after its gradient.
  const modelSpec = {
    input: [1, 12, 12] as [number, number, number],
    layers: [
      { type: 'conv2d' as const, outChannels: 3, kernelSize: 3 },
      { type: 'batchNorm2d' as const },
      { type: 'relu' as const },
      { type: 'maxPool2d' as const, kernelSize: 2 },
      { type: 'flatten' as const },
      { type: 'linear' as const, outFeatures: 10 },
    ],
  };
  const model = buildModel(modelSpec, { seed: 3 });
  const job: JobContext = { jobId: 'job-s', modelSpec, task: 'classification', normalization: { mean: [0.5], std: [0.25] }, seed: 3, ...stateLayout(model) };
  const rng = createRng(4);
  const task = (shard: number, count: number, kind: 'train' | 'eval' = 'train'): ShardTask => ({
    kind,
    jobId: 'job-s',
    step: 1,
    shard,
    paramsVersion: 1,
    count,
    images: Uint8Array.from({ length: count * 144 }, () => Math.floor(rng.next() * 256)),
    labels: Uint8Array.from({ length: count }, () => Math.floor(rng.next() * 10)),
  });

  it('writes a train shard gradient and buffers into `out` when given: the bytes of new arrays', () => {
    const computer = new ShardComputer(job);
    computer.setState(1, packState(model));
    const t = task(0, 6);
    const fresh = computer.compute(t);
    const out = new Float32Array(job.stateLength).fill(Number.NaN);
    const into = computer.compute(t, {}, out);
    expect(into.gradient!.buffer).toBe(out.buffer);
    expect(into.gradient).toEqual(fresh.gradient);
    expect(into.buffers).toEqual(fresh.buffers);
    expect(Array.from(out.subarray(job.gradientLength))).toEqual(Array.from(fresh.buffers!));
    expect(into.lossSum).toBe(fresh.lossSum);
    expect(() => computer.compute(t, {}, new Float32Array(job.stateLength - 1))).toThrow(
      new RangeError(`ShardComputer.compute: out has ${job.stateLength - 1} floats, job job-s needs ${job.stateLength} (gradient then buffers)`),
    );
  });

  it("reuses a shard's arrays for the next shard of its kind, with the results a fresh computer gives", () => {
    const computer = new ShardComputer(job);
    computer.setState(1, packState(model));
    const tasks = [task(0, 5), task(1, 5), task(2, 5)];
    const evalTask = task(0, 5, 'eval');
    const results = tasks.map((t) => computer.compute(t));
    const allocated = computer.arenas.train.stats.allocated;
    expect(computer.arenas.train.stats.reused).toBe(2 * allocated);
    // Eval shards in between use an arena of their own: training's arrays stay as they were.
    const evaluated = computer.compute(evalTask);
    expect(computer.compute(tasks[0]).gradient).toEqual(results[0].gradient);
    expect(computer.arenas.train.stats.allocated).toBe(allocated);
    for (const [i, t] of tasks.entries()) {
      const alone = new ShardComputer(job);
      alone.setState(1, packState(model));
      const r = alone.compute(t);
      expect(r.gradient).toEqual(results[i].gradient);
      expect([r.lossSum, r.correct]).toEqual([results[i].lossSum, results[i].correct]);
      if (i === 0) expect([alone.compute(evalTask).lossSum, alone.compute(evalTask).correct]).toEqual([evaluated.lossSum, evaluated.correct]);
    }
  });
});
