// The PyTorch side of `compare.ts` (tools/torch/stride_torch.py) against Stride's own numbers:
// the same model spec with the same parameters gives the same outputs and batch-norm updates, and
// the YOLO loss and decoding, mAP@0.5, the segmentation loss and metrics and the one-cycle
// schedule agree. Needs Debian's python3-torch (`STRIDE_TORCH_PYTHON`, default /usr/bin/python3);
// skipped without it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildModel,
  createRng,
  decodeYolo,
  encodeYoloTargets,
  fromData,
  getZooSpec,
  learningRateAt,
  meanAveragePrecision,
  noGrad,
  segmentationConfusion,
  segmentationLoss,
  segmentationMetrics,
  yoloLoss,
  type LabeledBox,
  type ModelSpec,
} from '@stride/cnn';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const PYTHON = process.env.STRIDE_TORCH_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;

const rng = createRng(20261128);
const randn = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * rng.normal());

/** A spec with every layer type the zoo uses, and the others the builder knows. */
const EVERY_LAYER: ModelSpec = {
  name: 'every-layer',
  input: [2, 8, 8],
  layers: [
    { type: 'conv2d', name: 'c1', outChannels: 4, kernelSize: 3, padding: 1 },
    { type: 'batchNorm2d', name: 'bn1' },
    { type: 'leakyRelu', name: 'a1', negativeSlope: 0.1 },
    { type: 'conv2d', name: 'c2', outChannels: 4, kernelSize: [3, 1], padding: [1, 0], bias: false },
    { type: 'add', name: 'sum', inputs: ['a1', 'c2'] },
    { type: 'maxPool2d', name: 'p1', kernelSize: 2 },
    { type: 'avgPool2d', name: 'p2', kernelSize: 3, stride: 1, padding: 1, inputs: ['sum'] },
    { type: 'minPool2d', name: 'p3', kernelSize: 2, inputs: ['p2'] },
    { type: 'concat', name: 'cat', inputs: ['p1', 'p3'] },
    { type: 'convTranspose2d', name: 'up', outChannels: 3, kernelSize: 2, stride: 2 },
    { type: 'tanh', name: 't' },
    { type: 'upsampleNearest2d', name: 'us', scaleFactor: 2, inputs: ['cat'] },
    { type: 'sigmoid', name: 's' },
    { type: 'conv2d', name: 'c3', outChannels: 3, kernelSize: 1 },
    { type: 'concat', name: 'cat2', inputs: ['t', 'c3'] },
    { type: 'relu', name: 'r' },
    { type: 'globalAvgPool2d', name: 'gap' },
    { type: 'flatten', name: 'flat' },
    { type: 'linear', name: 'fc', outFeatures: 5 },
  ],
};

interface ForwardCase {
  title: string;
  spec: ModelSpec;
  batch: number;
  training: boolean;
}

const FORWARD: ForwardCase[] = [
  { title: 'every layer type, eval', spec: EVERY_LAYER, batch: 3, training: false },
  { title: 'every layer type, training (batch statistics)', spec: EVERY_LAYER, batch: 3, training: true },
  { title: 'resnet8 (baseChannels 4), training', spec: getZooSpec('resnet8', { baseChannels: 4 }), batch: 4, training: true },
  { title: 'unet (16×16, depth 2, baseChannels 4), training', spec: getZooSpec('unet', { height: 16, width: 16, depth: 2, baseChannels: 4, numClasses: 11 }), batch: 2, training: true },
  { title: 'yolo (32×32, baseChannels 4), eval', spec: getZooSpec('yolo', { height: 32, width: 32, baseChannels: 4 }), batch: 2, training: false },
];

function randomObjects(images: number): LabeledBox[][] {
  return Array.from({ length: images }, () =>
    Array.from({ length: 1 + rng.int(3) }, () => ({ classId: rng.int(10), box: { cx: 0.1 + 0.8 * rng.next(), cy: 0.1 + 0.8 * rng.next(), w: 0.05 + 0.3 * rng.next(), h: 0.05 + 0.3 * rng.next() } })),
  );
}

const dir = mkdtempSync(join(tmpdir(), 'stride-torch-mirror-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs every case through `train_like_stride.py check` once; returns its results in case order. */
function runPython(cases: unknown[]): Record<string, unknown>[] {
  const file = join(dir, 'cases.json');
  writeFileSync(file, JSON.stringify(cases));
  const r = spawnSync(PYTHON, ['tools/torch/train_like_stride.py', 'check', file], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`train_like_stride.py check failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>[];
}

function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let scale = 1e-3;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / scale;
}

describe.skipIf(!hasTorch)('PyTorch mirror (tools/torch/stride_torch.py) agrees with Stride', () => {
  const cases: unknown[] = [];
  const checks: ((r: Record<string, unknown>) => void)[] = [];
  const titles: string[] = [];

  for (const c of FORWARD) {
    const model = buildModel(c.spec, { seed: 7 });
    // Non-trivial running statistics, so eval mode uses more than mean 0 / var 1.
    for (const b of model.buffers) b.data.set(b.name.endsWith('running_var') ? Float32Array.from(b.data, () => 0.5 + rng.next()) : randn(b.data.length, 0.2));
    const state = [...model.params, ...model.buffers].map((p) => ({ name: p.name, shape: p.shape, data: Array.from(p.data) }));
    const [ch, h, w] = c.spec.input;
    const x = randn(c.batch * ch * h * w);
    const out = noGrad(() => model.forward(fromData(x, [c.batch, ch, h, w]), { training: c.training }));
    const buffers = new Map(model.buffers.map((b) => [b.name, Array.from(b.data)]));
    cases.push({ kind: 'forward', modelSpec: c.spec, state, input: { shape: [c.batch, ch, h, w], data: Array.from(x) }, training: c.training });
    titles.push(`forward: ${c.title}`);
    checks.push((r) => {
      expect(r.shape).toEqual(out.shape);
      expect(maxRelError(r.output as number[], out.data)).toBeLessThan(1e-4);
      const theirs = r.buffers as Record<string, number[]>;
      expect(Object.keys(theirs).sort()).toEqual([...buffers.keys()].sort());
      for (const [name, ours] of buffers) expect(maxRelError(theirs[name], ours), name).toBeLessThan(1e-4);
    });
  }

  {
    const shape = [3, 15, 4, 4];
    const output = randn(3 * 15 * 16, 2);
    const objects = randomObjects(3);
    const t = fromData(output, shape);
    const loss = yoloLoss(t, encodeYoloTargets(objects, 4, 10), { reduction: 'sum' }).item();
    const decode = { score_threshold: 0.01, iou_threshold: 0.5, max_detections: 20 };
    const dets = decodeYolo(t, { scoreThreshold: 0.01, iouThreshold: 0.5, maxDetections: 20 });
    // mAP of the decoded detections, plus a few ground-truth boxes moved onto detections so some match.
    const truth = objects.map((objs, i) => [...objs, ...dets[i].slice(0, 2).map((d) => ({ classId: d.classId, box: d.box }))]);
    const map = meanAveragePrecision(dets, truth, { numClasses: 10 }).map;
    cases.push({ kind: 'yolo', shape, output: Array.from(output), objects: truth.map((o) => o.map((b) => ({ classId: b.classId, box: [b.box.cx, b.box.cy, b.box.w, b.box.h] }))), decode, numClasses: 10 });
    titles.push('yolo: loss (objects in the loss include the matched ones), decoding and mAP@0.5');
    checks.push((r) => {
      const lossOfTruth = yoloLoss(t, encodeYoloTargets(truth, 4, 10), { reduction: 'sum' }).item();
      expect(loss).not.toBe(lossOfTruth); // the extra boxes change the targets: the check below is not vacuous
      expect(Math.abs((r.loss as number) - lossOfTruth) / lossOfTruth).toBeLessThan(1e-5);
      const theirs = r.detections as { classId: number; score: number; box: number[] }[][];
      expect(theirs.map((d) => d.length)).toEqual(dets.map((d) => d.length));
      dets.forEach((d, i) =>
        d.forEach((det, j) => {
          expect(theirs[i][j].classId).toBe(det.classId);
          expect(theirs[i][j].score).toBeCloseTo(det.score, 5);
          expect(theirs[i][j].box[0]).toBeCloseTo(det.box.cx, 5);
          expect(theirs[i][j].box[3]).toBeCloseTo(det.box.h, 5);
        }),
      );
      expect(map).toBeGreaterThan(0);
      expect(r.mAP50 as number).toBeCloseTo(map, 6);
    });
  }

  {
    const shape = [2, 4, 6, 5];
    const logits = randn(2 * 4 * 30, 1.5);
    const masks = Uint8Array.from({ length: 2 * 30 }, () => rng.int(4));
    const t = fromData(logits, shape);
    const loss = segmentationLoss(t, masks, { reduction: 'sum' }).item();
    const m = segmentationMetrics(segmentationConfusion(t, masks), 4);
    cases.push({ kind: 'segmentation', shape, output: Array.from(logits), masks: Array.from(masks) });
    titles.push('segmentation: loss, mIoU and pixel accuracy');
    checks.push((r) => {
      expect(Math.abs((r.loss as number) - loss) / loss).toBeLessThan(1e-5);
      expect(m.meanIou).toBeGreaterThan(0);
      expect(r.mIoU as number).toBeCloseTo(m.meanIou, 9);
      expect(r.pixelAccuracy as number).toBeCloseTo(m.pixelAccuracy, 9);
    });
  }

  for (const schedule of [{ type: 'onecycle' }, { type: 'cosine', warmupSteps: 5 }] as const) {
    cases.push({ kind: 'schedule', schedule, lr: 3e-3, total: 37 });
    titles.push(`schedule: ${schedule.type}`);
    checks.push((r) => {
      const ours = Array.from({ length: 37 }, (_, s) => learningRateAt(schedule, 3e-3, s, 37));
      expect(maxRelError(r.lrs as number[], ours)).toBeLessThan(1e-12);
    });
  }

  let results: Record<string, unknown>[] | undefined;
  titles.forEach((title, i) => {
    it(title, () => {
      results ??= runPython(cases);
      checks[i](results[i]);
    });
  });
});
