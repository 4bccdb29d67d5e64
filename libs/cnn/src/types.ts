// The contract of libs/cnn that the rest of Stride codes against.
// Engine, queue, workers, checkpoints and the dashboard rely on exactly these shapes.

/** A trainable parameter or a buffer (e.g. batch-norm running statistics). */
export interface Param {
  /** Stable, unique name such as `conv1.weight`; checkpoints and the codec key on it. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Live storage: the optimizer updates it in place. */
  readonly data: Float32Array;
  /** Accumulated gradient, same length as `data`; zeroed by `Model.zeroGrad()`. Buffers keep it at zero. */
  readonly grad: Float32Array;
}

/** A flat named array as serialized to bytes (parameters, optimizer state, buffers). */
export interface NamedArray {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type Pair = number | readonly [number, number];

interface LayerBase {
  /** Node name; defaults to `${kind}${index}` (conv1, conv2, fc1, pool1, ...). Parameters are `${name}.weight`, `${name}.bias`. */
  name?: string;
  /** Names of the nodes this layer reads; default: the previous layer. `input` is the model input. */
  inputs?: string[];
}

export type LayerSpec = LayerBase &
  (
    | { type: 'conv2d'; outChannels: number; kernelSize: Pair; stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number; bias?: boolean }
    | { type: 'convTranspose2d'; outChannels: number; kernelSize: Pair; stride?: Pair; padding?: Pair; outputPadding?: Pair; bias?: boolean }
    | { type: 'linear'; outFeatures: number; bias?: boolean }
    | { type: 'maxPool2d' | 'avgPool2d' | 'minPool2d'; kernelSize: Pair; stride?: Pair; padding?: Pair }
    | { type: 'globalAvgPool2d' }
    | { type: 'batchNorm2d'; eps?: number; momentum?: number }
    | { type: 'relu' | 'sigmoid' | 'tanh' | 'flatten' }
    | { type: 'leakyRelu'; negativeSlope?: number }
    | { type: 'dropout'; p?: number }
    | { type: 'upsampleNearest2d'; scaleFactor: number }
    | { type: 'add' }
    | { type: 'concat' }
  );

export interface ModelSpec {
  name?: string;
  /** Per-sample input shape [channels, height, width]. */
  input: [number, number, number];
  layers: LayerSpec[];
  /** Node whose value is the model output; default: the last layer. */
  output?: string;
  /**
   * Weight initialisation. `pytorch` (default): PyTorch's default layer init, weights and biases
   * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), so results line up with
   * PyTorch recipes. `he-xavier`: He normal before ReLU, Xavier uniform elsewhere, zero biases.
   */
  init?: ModelInit;
}

export type ModelInit = 'pytorch' | 'he-xavier';
