// Replays PyTorch's forward values and gradients (libs/cnn/test/fixtures/torch-ops.json, written
// by tools/torch/cnn_fixtures.py) through libs/cnn.
//
// Tolerance, per element: |actual − expected| ≤ 1e-4 · max(1, |expected|), i.e. relative 1e-4
// for values above 1 and absolute 1e-4 below (the references are float64 results rounded to
// float32; libs/cnn computes in float32). A failure lists the worst elements with their index.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { avgPool2d, batchNorm2d, conv2d, convTranspose2d, crossEntropy, linear, maxPool2d, minPool2d, tensor } from '../src/index.ts';
import type { Pair, Tensor } from '../src/index.ts';

interface Arr {
  shape: number[];
  data: number[];
}

interface Case {
  op: string;
  title: string;
  args: Record<string, unknown>;
  inputs: Record<string, Arr | null>;
  gradOut: Arr;
  output: Arr;
  grads: Record<string, Arr>;
  labels?: number[];
  runningMean?: Arr;
  runningVar?: Arr;
  after?: Record<string, Arr>;
}

interface Fixture {
  generatedBy: string;
  torch: string;
  cases: Case[];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/torch-ops.json', import.meta.url), 'utf8')) as Fixture;

const RTOL = 1e-4;

/** Checks `actual` against `expected` element-wise; the error names the case, the array and the worst elements. */
function expectClose(actual: { shape: readonly number[]; data: ArrayLike<number> }, expected: Arr, what: string): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  expect(actual.data.length, `${what}: length`).toBe(expected.data.length);
  const bad: { i: number; got: number; want: number; err: number }[] = [];
  for (let i = 0; i < expected.data.length; i++) {
    const got = actual.data[i];
    const want = expected.data[i];
    const err = Math.abs(got - want) / Math.max(1, Math.abs(want));
    if (!(err <= RTOL)) bad.push({ i, got, want, err }); // !(<=) also catches NaN
  }
  if (bad.length > 0) {
    bad.sort((a, b) => b.err - a.err || a.i - b.i);
    const worst = bad
      .slice(0, 5)
      .map((b) => `[${b.i}] got ${b.got}, PyTorch ${b.want}`)
      .join('; ');
    throw new Error(`${what}: ${bad.length} of ${expected.data.length} elements differ by more than ${RTOL} (relative, floor 1): ${worst}`);
  }
}

const leaf = (a: Arr | null): Tensor | null => (a === null ? null : tensor(a.data, a.shape, { requiresGrad: true }));

/** Runs one case's op on fresh leaves; returns the output and the leaves by input name. */
function forward(c: Case): { out: Tensor; leaves: Record<string, Tensor | null>; running?: { mean: Float32Array; var: Float32Array } } {
  const leaves: Record<string, Tensor | null> = {};
  for (const [k, v] of Object.entries(c.inputs)) leaves[k] = leaf(v);
  const a = c.args as Record<string, any>;
  switch (c.op) {
    case 'conv2d':
      return { out: conv2d(leaves.x!, leaves.weight!, leaves.bias, { stride: a.stride, padding: a.padding, dilation: a.dilation, groups: a.groups }), leaves };
    case 'convTranspose2d':
      return {
        out: convTranspose2d(leaves.x!, leaves.weight!, leaves.bias, {
          stride: a.stride,
          padding: a.padding,
          outputPadding: a.outputPadding,
          dilation: a.dilation,
          groups: a.groups,
        }),
        leaves,
      };
    case 'maxPool2d':
    case 'avgPool2d':
    case 'minPool2d': {
      const pool = { maxPool2d, avgPool2d, minPool2d }[c.op];
      const opts: { kernelSize: Pair; stride?: Pair; padding?: Pair } = { kernelSize: a.kernelSize, padding: a.padding };
      if (a.stride !== undefined) opts.stride = a.stride;
      return { out: pool(leaves.x!, opts), leaves };
    }
    case 'linear':
      return { out: linear(leaves.x!, leaves.weight!, leaves.bias), leaves };
    case 'batchNorm2d': {
      const running = { mean: Float32Array.from(c.runningMean!.data), var: Float32Array.from(c.runningVar!.data) };
      const out = batchNorm2d(leaves.x!, leaves.gamma, leaves.beta, {
        training: a.training,
        eps: a.eps,
        momentum: a.momentum,
        runningMean: running.mean,
        runningVar: running.var,
      });
      return { out, leaves, running };
    }
    case 'crossEntropy':
      return { out: crossEntropy(leaves.logits!, Int32Array.from(c.labels!), { reduction: a.reduction }), leaves };
    default:
      throw new Error(`torch-ops.json: unknown op ${c.op} in case "${c.title}"`);
  }
}

const OPS = ['conv2d', 'convTranspose2d', 'maxPool2d', 'avgPool2d', 'minPool2d', 'linear', 'batchNorm2d', 'crossEntropy'];

describe(`agreement with PyTorch ${fixture.torch} (${fixture.generatedBy})`, () => {
  it('covers every op with at least 8 cases', () => {
    for (const op of OPS) expect(fixture.cases.filter((c) => c.op === op).length, op).toBeGreaterThanOrEqual(8);
  });

  for (const op of OPS) {
    describe(op, () => {
      for (const c of fixture.cases.filter((k) => k.op === op)) {
        it(c.title, () => {
          const { out, leaves, running } = forward(c);
          expectClose(out, c.output, `${c.title}: output`);
          out.backward(tensor(c.gradOut.data, c.gradOut.shape));
          for (const [name, want] of Object.entries(c.grads)) {
            const grad = leaves[name]?.grad;
            expect(grad, `${c.title}: gradient of ${name}`).toBeTruthy();
            expectClose(grad!, want, `${c.title}: gradient of ${name}`);
          }
          if (running) {
            expectClose({ shape: [running.mean.length], data: running.mean }, c.after!.runningMean, `${c.title}: runningMean after`);
            expectClose({ shape: [running.var.length], data: running.var }, c.after!.runningVar, `${c.title}: runningVar after`);
          }
        });
      }
    });
  }
});
