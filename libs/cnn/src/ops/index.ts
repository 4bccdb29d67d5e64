// Every differentiable op of @stride/cnn. Names, argument order and defaults follow PyTorch's
// torch.nn.functional so results compare one to one.

export { conv2d, conv2dRelu, convTranspose2d } from './conv.ts';
export type { Conv2dOptions, ConvTranspose2dOptions } from './conv.ts';
export { maxPool2d, minPool2d, avgPool2d, globalAvgPool2d, upsampleNearest2d } from './pool.ts';
export type { Pool2dOptions } from './pool.ts';
export { relu, leakyRelu, sigmoid, tanh, scale, add, sub, mul, dropout } from './elementwise.ts';
export type { DropoutOptions } from './elementwise.ts';
export { reshape, flatten, concat } from './shape.ts';
export { sum, mean } from './reduce.ts';
export { linear } from './linear.ts';
export { softmax, logSoftmax } from './softmax.ts';
export { batchNorm2d, batchNorm2dRelu } from './norm.ts';
export type { BatchNorm2dOptions } from './norm.ts';
export { crossEntropy, mse, binaryCrossEntropyWithLogits } from './loss.ts';
export type { Reduction, LossOptions, BceOptions } from './loss.ts';
