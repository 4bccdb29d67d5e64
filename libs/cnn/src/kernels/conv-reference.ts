// Direct-loop convolution: slow, readable, obviously correct. The tests check the im2col + GEMM
// path in conv.ts against these over the whole stride/padding/dilation/groups space.

import type { Conv2dDims } from './conv.ts';

/** out = conv2d(x, w) + b (or out += ... when `accumulate`). */
export function conv2dReferenceForward(x: Float32Array, w: Float32Array, b: Float32Array | null, out: Float32Array, d: Conv2dDims, accumulate = false): void {
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  for (let n = 0; n < d.n; n++) {
    for (let co = 0; co < d.cOut; co++) {
      const g = Math.floor(co / cOutG);
      for (let oy = 0; oy < d.outH; oy++) {
        for (let ox = 0; ox < d.outW; ox++) {
          let s = b === null ? 0 : b[co];
          for (let ci = 0; ci < cInG; ci++) {
            for (let i = 0; i < d.kh; i++) {
              const iy = oy * d.strideH - d.padH + i * d.dilH;
              if (iy < 0 || iy >= d.h) continue;
              for (let j = 0; j < d.kw; j++) {
                const ix = ox * d.strideW - d.padW + j * d.dilW;
                if (ix < 0 || ix >= d.w) continue;
                s += x[((n * d.cIn + g * cInG + ci) * d.h + iy) * d.w + ix] * w[((co * cInG + ci) * d.kh + i) * d.kw + j];
              }
            }
          }
          const o = ((n * d.cOut + co) * d.outH + oy) * d.outW + ox;
          out[o] = accumulate ? out[o] + s : s;
        }
      }
    }
  }
}

/** gradX += each output gradient times the weight that connected it to each input. */
export function conv2dReferenceBackwardInput(gradOut: Float32Array, w: Float32Array, gradX: Float32Array, d: Conv2dDims): void {
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  for (let n = 0; n < d.n; n++) {
    for (let co = 0; co < d.cOut; co++) {
      const g = Math.floor(co / cOutG);
      for (let oy = 0; oy < d.outH; oy++) {
        for (let ox = 0; ox < d.outW; ox++) {
          const go = gradOut[((n * d.cOut + co) * d.outH + oy) * d.outW + ox];
          for (let ci = 0; ci < cInG; ci++) {
            for (let i = 0; i < d.kh; i++) {
              const iy = oy * d.strideH - d.padH + i * d.dilH;
              if (iy < 0 || iy >= d.h) continue;
              for (let j = 0; j < d.kw; j++) {
                const ix = ox * d.strideW - d.padW + j * d.dilW;
                if (ix < 0 || ix >= d.w) continue;
                gradX[((n * d.cIn + g * cInG + ci) * d.h + iy) * d.w + ix] += go * w[((co * cInG + ci) * d.kh + i) * d.kw + j];
              }
            }
          }
        }
      }
    }
  }
}

/** gradW += each output gradient times the input it multiplied, summed over batch and positions. */
export function conv2dReferenceBackwardWeight(x: Float32Array, gradOut: Float32Array, gradW: Float32Array, d: Conv2dDims): void {
  const cInG = d.cIn / d.groups;
  const cOutG = d.cOut / d.groups;
  for (let co = 0; co < d.cOut; co++) {
    const g = Math.floor(co / cOutG);
    for (let ci = 0; ci < cInG; ci++) {
      for (let i = 0; i < d.kh; i++) {
        for (let j = 0; j < d.kw; j++) {
          let s = 0;
          for (let n = 0; n < d.n; n++) {
            for (let oy = 0; oy < d.outH; oy++) {
              const iy = oy * d.strideH - d.padH + i * d.dilH;
              if (iy < 0 || iy >= d.h) continue;
              for (let ox = 0; ox < d.outW; ox++) {
                const ix = ox * d.strideW - d.padW + j * d.dilW;
                if (ix < 0 || ix >= d.w) continue;
                s += gradOut[((n * d.cOut + co) * d.outH + oy) * d.outW + ox] * x[((n * d.cIn + g * cInG + ci) * d.h + iy) * d.w + ix];
              }
            }
          }
          gradW[((co * cInG + ci) * d.kh + i) * d.kw + j] += s;
        }
      }
    }
  }
}
