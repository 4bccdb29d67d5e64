// Classification with localization: a small conv backbone and one head predicting the class of
// the image's single object and its box (the "classification + localization" task of ImageNet).
//
// Backbone: stages of conv3×3 → bn → relu → max pool 2×2, with w, 2w, 4w, 4w, ... channels
// (w = baseChannels, default 16), added while the feature map is larger than 4×4. The features are
// flattened, not averaged: where an object is must survive into the head. Head: fc 128 → relu →
// fc C + 4, i.e. C class logits then the box t_cx, t_cy, t_w, t_h, decoded as σ(t) in (0, 1)
// relative to the image (see vision/localization.ts for the loss and the metrics).

import type { ModelSpec } from '../types.ts';
import { SpecBuilder } from './builder.ts';
import type { ZooArgs } from './registry.ts';

export function localizer(a: ZooArgs): ModelSpec {
  const w = a.baseChannels ?? 16;
  const b = new SpecBuilder();
  let side = Math.min(a.height, a.width);
  let stage = 0;
  do {
    stage++;
    b.convBn(`c${stage}`, w * 2 ** Math.min(stage - 1, 2), 3);
    if (side >= 2) {
      b.add(`pool${stage}`, { type: 'maxPool2d', kernelSize: 2 });
      side = Math.floor(side / 2);
    }
  } while (side > 4);
  b.add('flatten', { type: 'flatten' });
  b.add('fc1', { type: 'linear', outFeatures: 128 });
  b.add('fc1_relu', { type: 'relu' });
  b.add('fc2', { type: 'linear', outFeatures: a.numClasses + 4 });
  return b.build('localizer', [a.inChannels, a.height, a.width], 'he-xavier');
}
