// The zoo and the vision tasks through Redis: two worker processes train every zoo model (resnet,
// densenet, inception on MNIST; the localizer, yolo and unet on the generated localization,
// detection and segmentation sets) to the same bytes and the same evaluation metrics as the local
// executor (targets travel in the shard inputs, detections and confusion matrices in the eval results).
import { getZooSpec } from '@stride/cnn';
import { describe, expect, it } from 'vitest';
import { LocalExecutor, train, type EvalMetrics, type JobSpecInput, type TrainResult } from '@stride/engine';
import type { BullmqExecutor } from '@stride/queue';
import { useTwoWorkerStack } from './stack.ts';

const common = { optimizer: { type: 'adam', lr: 0.01 }, schedule: { type: 'constant' }, seed: 9, shards: 3, evalShards: 3 } as const;
const SPECS: Record<string, JobSpecInput> = {
  // The classification models of the zoo, narrowed so a step takes milliseconds; MNIST's real digits.
  ...Object.fromEntries(
    ([
      ['resnet8', { baseChannels: 4 }],
      ['densenet', { growthRate: 4, layersPerBlock: 2 }],
      ['inception', { baseChannels: 4 }],
    ] as const).map(([name, opts]) => [name, { model: getZooSpec(name, { height: 28, width: 28, numClasses: 10, ...opts }), dataset: 'mnist', steps: 4, batchSize: 12, evalEvery: 2, evalSamples: 60, ...common }]),
  ),
  localization: {
    model: getZooSpec('localizer', { height: 64, width: 64, numClasses: 10, baseChannels: 4 }),
    dataset: 'mnist-localization',
    trainSamples: 48,
    testSamples: 12,
    steps: 4,
    batchSize: 12,
    evalEvery: 2,
    ...common,
  },
  detection: {
    model: getZooSpec('yolo', { height: 96, width: 96, numClasses: 10, baseChannels: 4 }),
    dataset: 'mnist-detection',
    trainSamples: 96,
    testSamples: 30,
    steps: 6,
    batchSize: 16,
    evalEvery: 3,
    ...common,
  },
  segmentation: {
    model: getZooSpec('unet', { height: 96, width: 96, numClasses: 11, baseChannels: 2, depth: 1 }),
    dataset: 'mnist-segmentation',
    trainSamples: 48,
    testSamples: 12,
    steps: 4,
    batchSize: 6,
    evalEvery: 2,
    ...common,
  },
};

async function run(spec: JobSpecInput, executor: LocalExecutor | BullmqExecutor, dataDir: string, jobId: string): Promise<{ result: TrainResult; evals: EvalMetrics[] }> {
  const evals: EvalMetrics[] = [];
  const result = await train(spec, { executor, dataDir, jobId, resume: false, on: { eval: (e) => evals.push(e) } });
  return { result, evals };
}

/** The metric fields of evaluations, without timings. */
const metricsOf = (evals: EvalMetrics[]): unknown[] => evals.map(({ evalMs: _m, time: _t, ...rest }) => ({ ...rest, jobId: undefined }));

describe('vision tasks through Redis with two worker processes', () => {
  const stack = useTwoWorkerStack('vision');

  it.each(Object.keys(SPECS))('%s: the bytes and metrics of local training', async (task) => {
    const { executor, dataDir } = stack;
    const local = new LocalExecutor({ threads: 2 });
    let reference: Awaited<ReturnType<typeof run>>;
    try {
      reference = await run(SPECS[task], local, dataDir, `${task}-local`);
    } finally {
      await local.close();
    }
    const accepted = executor.stats.accepted;
    const workers = new Set<string>();
    const runShards = executor.runShards.bind(executor);
    executor.runShards = async (...args) => {
      const results = await runShards(...args);
      for (const r of results) workers.add(r.workerId ?? '?');
      return results;
    };
    const redisRun = await run(SPECS[task], executor, dataDir, `${task}-redis`);
    executor.runShards = runShards;

    expect(redisRun.result.paramsSha256).toBe(reference.result.paramsSha256);
    expect(metricsOf(redisRun.evals)).toEqual(metricsOf(reference.evals));
    const key = ({ detection: 'mAP50', segmentation: 'mIoU', localization: 'locAccuracy' } as Record<string, keyof EvalMetrics>)[task] ?? 'testAccuracy';
    expect(typeof redisRun.evals.at(-1)![key]).toBe('number');
    expect(redisRun.result.best?.metric).toBe(key);
    expect(workers.size).toBe(2);
    const spec = SPECS[task] as { steps: number; evalEvery: number };
    expect(executor.stats.accepted - accepted).toBe(spec.steps * 3 + (spec.steps / spec.evalEvery) * 3);
  }, 300_000);
});
