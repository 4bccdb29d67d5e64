// LeNet-5 as in /work/shared/anchors/lenet_torch.py (the PyTorch reference Stride is measured against):
// conv 5x5x6 pad 2, ReLU, max-pool 2, conv 5x5x16, ReLU, max-pool 2, flatten, fc 120, ReLU, fc 84, ReLU, fc classes.

import type { ModelSpec } from '../types.ts';
import type { ZooOptions } from './registry.ts';

export function lenet5({ inChannels, height, width, numClasses }: Required<ZooOptions>): ModelSpec {
  return {
    name: 'lenet5',
    input: [inChannels, height, width],
    layers: [
      { type: 'conv2d', outChannels: 6, kernelSize: 5, padding: 2 },
      { type: 'relu' },
      { type: 'maxPool2d', kernelSize: 2 },
      { type: 'conv2d', outChannels: 16, kernelSize: 5 },
      { type: 'relu' },
      { type: 'maxPool2d', kernelSize: 2 },
      { type: 'flatten' },
      { type: 'linear', outFeatures: 120 },
      { type: 'relu' },
      { type: 'linear', outFeatures: 84 },
      { type: 'relu' },
      { type: 'linear', outFeatures: numClasses },
    ],
  };
}
