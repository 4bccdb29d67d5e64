// The worked example of DESIGN.md that every implementation must reproduce.
import { describe, expect, it } from 'vitest';
import { conv2d, maxPool2d, tensor } from '../src/index.ts';

describe('DESIGN.md worked example', () => {
  const input = tensor(Array.from({ length: 25 }, (_, i) => i + 1), [1, 1, 5, 5]);
  const filter = tensor([1, 0, 0, 1], [1, 1, 2, 2]);
  const featureMap = conv2d(input, filter, null, { stride: 1, padding: 0 });

  it('5x5 input 1..25, filter [[1,0],[0,1]], stride 1, no padding gives the 4x4 feature map', () => {
    expect(featureMap.shape).toEqual([1, 1, 4, 4]);
    expect(Array.from(featureMap.data)).toEqual([8, 10, 12, 14, 18, 20, 22, 24, 28, 30, 32, 34, 38, 40, 42, 44]);
  });

  it('2x2 max pooling with stride 2 then gives [[20,24],[40,44]]', () => {
    const pooled = maxPool2d(featureMap, { kernelSize: 2, stride: 2 });
    expect(pooled.shape).toEqual([1, 1, 2, 2]);
    expect(Array.from(pooled.data)).toEqual([20, 24, 40, 44]);
  });
});
