// Numbers that go wrong: a shard that returns NaN (rejected, retried, then the step skipped with
// the parameters unchanged), a gradient 10^6 too large (caught by the per-shard norm check against
// the step's median), a learning rate that makes the loss blow up (DivergenceError), and the guard
// the coordinator's fencing token plugs in.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore, gradientOutliers, InlineExecutor, jobPaths, LeaseLostError, MetricsLog, train, type Executor, type JobContext, type JobSpecInput, type ShardResult, type ShardTask } from '../src/index.ts';

const tinyModel = {
  input: [1, 28, 28] as [number, number, number],
  layers: [
    { type: 'conv2d' as const, outChannels: 4, kernelSize: 5, stride: 3 },
    { type: 'relu' as const },
    { type: 'maxPool2d' as const, kernelSize: 2 },
    { type: 'flatten' as const },
    { type: 'linear' as const, outFeatures: 10 },
  ],
};
const spec: JobSpecInput = {
  model: tinyModel,
  dataset: 'mnist',
  steps: 6,
  batchSize: 32,
  shards: 4,
  seed: 3,
  evalEvery: 6,
  evalShards: 2,
  evalSamples: 64,
  checkpointEvery: 1,
  keepCheckpoints: 10,
  optimizer: { type: 'adam', lr: 0.01 },
  schedule: { type: 'constant' },
};

interface Fault {
  step: number;
  shard: number;
  do: 'nan' | 'scale';
  /** Hits before it stops (default: every time). */
  times?: number;
}

/** An InlineExecutor whose chosen train shards come back corrupted; counts the runs of each shard. */
class FaultyExecutor implements Executor {
  readonly runs = new Map<string, number>();
  private readonly inner = new InlineExecutor();
  constructor(private readonly faults: Fault[]) {}
  publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    return this.inner.publishParams(job, version, state);
  }
  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    const out = await this.inner.runShards(job, tasks, signal);
    return out.map((r, i) => {
      const t = tasks[i];
      const key = `${t.kind}:${t.step}:${t.shard}`;
      const n = (this.runs.get(key) ?? 0) + 1;
      this.runs.set(key, n);
      const f = t.kind === 'train' ? this.faults.find((x) => x.step === t.step && x.shard === t.shard) : undefined;
      if (!f || (f.times !== undefined && n > f.times)) return r;
      const g = r.gradient!.slice();
      if (f.do === 'nan') g[0] = NaN;
      else for (let k = 0; k < g.length; k++) g[k] *= 1e6;
      return { ...r, gradient: g };
    });
  }
  releaseJob(jobId: string): Promise<void> {
    return this.inner.releaseJob(jobId);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'stride-faults-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function run(faults: Fault[], jobId: string, over: Partial<JobSpecInput> = {}) {
  const executor = new FaultyExecutor(faults);
  const warnings: string[] = [];
  try {
    const result = await train({ ...spec, ...over }, { executor, dataDir, jobId, on: { log: (e) => void (e.level === 'warn' && warnings.push(e.message)) } });
    return { result, executor, warnings };
  } finally {
    await executor.close();
  }
}

async function paramsShaAt(jobId: string): Promise<Map<number, string>> {
  const store = new CheckpointStore(jobPaths(dataDir, jobId).checkpoints);
  const out = new Map<number, string>();
  for (const e of await store.list()) out.set(e.step, (await store.read(e.file)).meta.paramsSha256);
  return out;
}

describe('numbers that go wrong', () => {
  it('a shard that always returns NaN: rejected, retried, then the step is skipped with the parameters unchanged', { timeout: 60_000 }, async () => {
    const clean = await run([], 'clean');
    const { result, executor, warnings } = await run([{ step: 2, shard: 1, do: 'nan' }], 'nan');
    expect(result.status).toBe('succeeded');
    expect(result.steps).toBe(6);
    // Three attempts of the bad shard (maxStepAttempts), one of each good one.
    expect(executor.runs.get('train:2:1')).toBe(3);
    expect(executor.runs.get('train:2:0')).toBe(1);
    expect(warnings.filter((w) => /step 2 shard 1 .*non-finite/.test(w))).toHaveLength(3);
    // Recorded in metrics.jsonl; no step record for step 2.
    const metrics = await MetricsLog.read(jobPaths(dataDir, 'nan').metrics);
    const skips = metrics.filter((m) => m.type === 'skip');
    expect(skips).toHaveLength(1);
    expect(skips[0]).toMatchObject({ type: 'skip', step: 2 });
    expect(metrics.some((m) => m.type === 'step' && m.step === 2)).toBe(false);
    // Parameters after step 2 (checkpoint 3) equal those before it (checkpoint 2); the steps before match a clean run.
    const sha = await paramsShaAt('nan');
    const cleanSha = await paramsShaAt('clean');
    expect(sha.get(3)).toBe(sha.get(2));
    expect(sha.get(2)).toBe(cleanSha.get(2));
    expect(sha.get(3)).not.toBe(cleanSha.get(3));
    expect(result.paramsSha256).not.toBe(clean.result.paramsSha256);
    // Deterministic: the same fault gives the same bytes again.
    const again = await run([{ step: 2, shard: 1, do: 'nan' }], 'nan-again');
    expect(again.result.paramsSha256).toBe(result.paramsSha256);
  });

  it('a gradient 10^6 too large is caught by the norm check; recomputed once it is fine, skipped when it stays', { timeout: 60_000 }, async () => {
    const clean = await run([], 'clean');
    const once = await run([{ step: 1, shard: 3, do: 'scale', times: 1 }], 'scaled-once');
    expect(once.warnings.some((w) => /step 1 shard 3 \(train\): gradient norm .* the step's median/.test(w))).toBe(true);
    expect(once.executor.runs.get('train:1:3')).toBe(2);
    expect(once.result.paramsSha256).toBe(clean.result.paramsSha256);

    const always = await run([{ step: 4, shard: 0, do: 'scale' }], 'scaled');
    const metrics = await MetricsLog.read(jobPaths(dataDir, 'scaled').metrics);
    expect(metrics.filter((m) => m.type === 'skip').map((m) => m.step)).toEqual([4]);
    const sha = await paramsShaAt('scaled');
    expect(sha.get(5)).toBe(sha.get(4));
    expect(always.result.paramsSha256).not.toBe(clean.result.paramsSha256);
  });

  it('gradientOutliers: the lower median makes one bad shard of two detectable; honest shards pass', () => {
    const r = (scale: number, count = 8): ShardResult => ({ kind: 'train', jobId: 'j', step: 0, shard: 0, paramsVersion: 0, count, lossSum: 1, correct: 0, computeMs: 0, gradient: new Float32Array([3 * scale, 4 * scale]) });
    expect(gradientOutliers([r(1), r(1e6)]).map((o) => o.index)).toEqual([1]);
    expect(gradientOutliers([r(1), r(2), r(0.5), r(3)])).toEqual([]);
    expect(gradientOutliers([r(1), r(1), r(1e6), r(1)]).map((o) => o.index)).toEqual([2]);
    expect(gradientOutliers([r(1e6)])).toEqual([]);
  });

  it('three steps in a row skipped stop the run with a DivergenceError', { timeout: 60_000 }, async () => {
    const faults: Fault[] = [2, 3, 4].map((step) => ({ step, shard: 0, do: 'nan' }));
    await expect(run(faults, 'diverged')).rejects.toMatchObject({ name: 'DivergenceError', message: expect.stringMatching(/3 steps in a row skipped/) });
  });

  it('a learning rate that makes the loss blow up is detected', { timeout: 60_000 }, async () => {
    await expect(run([], 'blowup', { steps: 30, optimizer: { type: 'sgd', lr: 10 } })).rejects.toMatchObject({ name: 'DivergenceError' });
  });

  it('the guard stops the run before any write once it throws (a lost lease)', { timeout: 60_000 }, async () => {
    let calls = 0;
    const executor = new FaultyExecutor([]);
    try {
      const guard = async (): Promise<void> => {
        if (++calls > 4) throw new LeaseLostError('lease lost (test)');
      };
      await expect(train(spec, { executor, dataDir, jobId: 'fenced', guard })).rejects.toMatchObject({ name: 'LeaseLostError' });
    } finally {
      await executor.close();
    }
    // Publications and checkpoints alternate (one each per step): the 5th guarded write was refused.
    const steps = [...(await paramsShaAt('fenced')).keys()];
    expect(steps.length).toBeLessThanOrEqual(2);
  });
});
