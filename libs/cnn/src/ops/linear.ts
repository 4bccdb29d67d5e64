// Fully connected layer: y = x·Wᵀ + b with PyTorch's weight layout [out, in].

import { assert, fmt } from '../assert.ts';
import { sgemm } from '../kernels/gemm.ts';
import { Tensor, record, result, tracking } from '../tensor.ts';
import { allocF32 } from '../arena.ts';

/**
 * x [..., in], weight [out, in], bias [out] → [..., out] (PyTorch F.linear). Leading dims are
 * treated as rows.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  assert(weight.shape.length === 2, () => `linear: weight must be 2-d [out, in], got ${fmt(weight.shape)}`);
  const [outF, inF] = weight.shape;
  assert(x.shape.length >= 1 && x.shape[x.shape.length - 1] === inF, () => `linear: input ${fmt(x.shape)} must end in ${inF} features for weight ${fmt(weight.shape)}`);
  assert(bias === null || (bias.shape.length === 1 && bias.shape[0] === outF), () => `linear: bias has shape ${fmt(bias!.shape)}, expected [${outF}]`);
  const rows = x.numel / inF;
  const data = allocF32(rows * outF);
  // Y[rows×out] = X[rows×in] · Wᵀ + b
  sgemm(rows, outF, inF, x.data, weight.data, data, false, true, false, bias === null ? null : bias.data);
  const out = result(data, [...x.shape.slice(0, -1), outF]);
  if (tracking(x, weight, bias)) {
    record(out, [x, weight, bias], (g) => {
      // dX[rows×in] += dY · W;  dW[out×in] += dYᵀ · X;  db += Σ_rows dY
      if (x.requiresGrad) sgemm(rows, inF, outF, g, weight.data, x.gradSink(), false, false, true);
      if (weight.requiresGrad) sgemm(outF, inF, rows, g, x.data, weight.gradSink(), true, false, true);
      if (bias !== null && bias.requiresGrad) {
        const gb = bias.gradSink();
        for (let j = 0; j < outF; j++) {
          let s = 0;
          for (let r = 0; r < rows; r++) s += g[r * outF + j];
          gb[j] += s;
        }
      }
    });
  }
  return out;
}
