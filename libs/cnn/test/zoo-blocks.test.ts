// Gradient checks of the zoo's composite blocks — residual block with batch norm and projection
// shortcut, dense block + transition, Inception module, U-Net level, YOLO head + loss, localizer
// head + loss — each on a tiny instance of its zoo model, through the real task loss, in training
// mode (batch statistics). Every entry must agree within 2e-2 with the kinked activations made
// smooth, and most entries with the model as it is (why: zoo-gradcheck.ts).
import { describe, expect, it } from 'vitest';
import { buildModel, createRng, crossEntropy, encodeYoloTargets, getZooSpec, localizationLoss, segmentationLoss, tensor, yoloLoss, type Tensor, type ZooModelOptions } from '../src/index.ts';
import { modelGradCheck, smoothed } from './zoo-gradcheck.ts';

const TOL = 2e-2;
/** Share of the entries of the unmodified (ReLU, max-pool) model that must agree within TOL. */
const AGREE = 0.8;

function randomInput(shape: number[], seed: number): Tensor {
  const rng = createRng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => rng.next() * 2 - 1), shape);
}

/** Builds a tiny zoo model and checks its gradients through `loss`; returns the model's node types for the caller's checks. */
function check(name: string, opts: ZooModelOptions, batch: number, loss: (out: Tensor) => Tensor, seed = 3): { types: string[]; checked: number } {
  const spec = getZooSpec(name, opts);
  const smooth = buildModel(smoothed(spec), { seed });
  const x = randomInput([batch, ...smooth.inputShape], seed + 1);
  const report = modelGradCheck(smooth, x, loss);
  expect(report.worst, report.where).toBeLessThan(TOL);
  const model = buildModel(spec, { seed });
  const real = modelGradCheck(model, x, loss);
  const agree = real.errors.filter((e) => e < TOL).length / real.errors.length;
  if (globalThis.process?.env.GRADCHECK_LOG) console.log(name, 'smooth worst', report.worst, 'real agree', agree, 'real worst', real.where);
  expect(agree, `share of ${real.errors.length} entries within ${TOL}; worst ${real.where}`).toBeGreaterThanOrEqual(AGREE);
  return { types: model.nodes.map((n) => n.type), checked: report.errors.length };
}

describe('gradient checks of the zoo blocks', () => {
  it('residual blocks with batch norm, identity and 1x1 stride-2 projection shortcuts (resnet8, width 2)', () => {
    const { types, checked } = check('resnet8', { baseChannels: 2, height: 6, width: 6, numClasses: 3 }, 3, (out) => crossEntropy(out, [0, 2, 1]));
    expect(types.filter((t) => t === 'add')).toHaveLength(3);
    expect(checked).toBeGreaterThan(50);
  });

  it('dense blocks and transitions (densenet, k = 2, 2 layers per block)', () => {
    const { types } = check('densenet', { growthRate: 2, layersPerBlock: 2, height: 8, width: 8, numClasses: 3 }, 3, (out) => crossEntropy(out, [1, 0, 2]));
    expect(types.filter((t) => t === 'concat')).toHaveLength(6);
  });

  it('inception modules: four branches concatenated (inception, baseChannels 4)', () => {
    const { types } = check('inception', { baseChannels: 4, height: 8, width: 8, numClasses: 3 }, 2, (out) => crossEntropy(out, [2, 1]));
    expect(types.filter((t) => t === 'concat')).toHaveLength(3);
  });

  it('a U-Net level: down, bottleneck, transposed-conv up, skip concat (unet depth 1) with the segmentation loss', () => {
    const masks = [0, 1, 2, 1, 0, 0, 2, 2, 1, 1, 0, 2, 2, 0, 1, 1, 2, 2, 1, 0, 0, 1, 1, 0, 0, 0, 2, 1, 1, 0, 2, 0];
    const { types } = check('unet', { baseChannels: 2, depth: 1, height: 4, width: 4, numClasses: 3 }, 2, (out) => segmentationLoss(out, masks));
    expect(types).toContain('convTranspose2d');
  });

  it('the YOLO head and loss (yolo, 8x8 input, 2x2 grid, 3 classes)', () => {
    const targets = encodeYoloTargets(
      [
        [{ classId: 2, box: { cx: 0.3, cy: 0.6, w: 0.4, h: 0.3 } }],
        [
          { classId: 0, box: { cx: 0.7, cy: 0.2, w: 0.2, h: 0.5 } },
          { classId: 1, box: { cx: 0.2, cy: 0.2, w: 0.3, h: 0.3 } },
        ],
      ],
      2,
      3,
    );
    check('yolo', { baseChannels: 2, gridSize: 2, height: 8, width: 8, numClasses: 3 }, 2, (out) => yoloLoss(out, targets));
  });

  it('the localizer head and loss (localizer, 8x8 input, 3 classes)', () => {
    check('localizer', { baseChannels: 2, height: 8, width: 8, numClasses: 3 }, 3, (out) => localizationLoss(out, [2, 0, 1], [0.5, 0.5, 0.2, 0.3, 0.2, 0.7, 0.3, 0.3, 0.8, 0.4, 0.25, 0.5]));
  });
});
