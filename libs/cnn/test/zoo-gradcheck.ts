// Central-difference gradient check of a whole model + loss on a few entries of every parameter.
// Shared by the zoo and vision tests (not a test file itself).
//
// Two things make a whole-network check harder than a single op's (gradcheck.test.ts, 2e-3):
// - The loss is float32 and batch norm in training mode couples the whole batch through its mean
//   and variance, so the loss of a tiny network is strongly curved: ε = 1e-3 and a relative
//   tolerance of 2e-2 for paths through batch norm (measured worst case about 1e-2).
// - ReLU and max-pool kinks: with batch norm re-centring every channel, a step of ε on a stem
//   weight moves thousands of pre-activations and some cross zero, each bending the loss a little.
//   Measured on the tiny zoo models, 5-30% of the entries then miss by more than 2e-2 whatever ε,
//   while the same models with tanh and average pooling in their place agree everywhere.
// So `smoothed` swaps the kinked activations for smooth ones (each checked alone in
// gradcheck.test.ts): the block's wiring — convs, batch norm, add, concat, up-convs, the task
// losses — is then checked entry by entry at 2e-2; the unmodified block is checked on the share of
// entries that agree, which a wiring mistake would ruin.

import { createRng, noGrad, type Model, type ModelSpec, type Tensor } from '../src/index.ts';

export interface ModelGradCheckOptions {
  /** Entries checked per parameter tensor; default 3. */
  perParam?: number;
  /** Finite-difference step; default 1e-3. */
  eps?: number;
  /** Gradients below this are compared absolutely; default 2e-2. */
  floor?: number;
  seed?: number;
}

export interface GradCheckReport {
  /** |analytic − numeric| / max(floor, |analytic|, |numeric|) of every checked entry. */
  errors: number[];
  /** The worst of them. */
  worst: number;
  /** Where the worst one was. */
  where: string;
}

/** Checks d loss(model(x)) / d param on a few entries of every parameter (training-mode forward). */
export function modelGradCheck(model: Model, x: Tensor, loss: (out: Tensor) => Tensor, opts: ModelGradCheckOptions = {}): GradCheckReport {
  const { perParam = 3, eps = 1e-3, floor = 2e-2, seed = 1 } = opts;
  const rng = createRng(seed);
  const evaluate = (): number => noGrad(() => loss(model.forward(x, { training: true })).item());
  model.zeroGrad();
  loss(model.forward(x, { training: true })).backward();
  const errors: number[] = [];
  let worst = 0;
  let where = '';
  for (const p of model.params) {
    const picks = p.data.length <= perParam ? Array.from({ length: p.data.length }, (_, i) => i) : Array.from({ length: perParam }, () => rng.int(p.data.length));
    for (const i of picks) {
      const v = p.data[i];
      p.data[i] = v + eps;
      const up = evaluate();
      p.data[i] = v - eps;
      const down = evaluate();
      p.data[i] = v;
      const numeric = (up - down) / (2 * eps);
      const analytic = p.grad[i];
      const err = Math.abs(analytic - numeric) / Math.max(floor, Math.abs(analytic), Math.abs(numeric));
      errors.push(err);
      if (err > worst) {
        worst = err;
        where = `${p.name}[${i}]: analytic ${analytic}, numeric ${numeric}`;
      }
    }
  }
  return { errors, worst, where };
}

/** The spec with relu / leakyRelu → tanh and max pooling → average pooling: same wiring, no kinks. */
export function smoothed(spec: ModelSpec): ModelSpec {
  return {
    ...spec,
    layers: spec.layers.map((l) => {
      if (l.type === 'relu' || l.type === 'leakyRelu') return { type: 'tanh', ...(l.name === undefined ? {} : { name: l.name }), ...(l.inputs === undefined ? {} : { inputs: l.inputs }) };
      if (l.type === 'maxPool2d') return { ...l, type: 'avgPool2d' };
      return l;
    }),
  };
}
