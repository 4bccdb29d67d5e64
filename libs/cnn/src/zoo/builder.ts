// A small helper for writing zoo specs: appends named layers and wires `inputs` only where a layer
// does not read the node just before it, so the generated JSON stays as plain as a hand-written one.

import { ModelSpecError } from '../model/check.ts';
import type { LayerSpec, ModelSpec } from '../types.ts';

/** A ModelSpecError on `zoo.<option>`, for the checks a generator makes of its own options. */
export function zooFail(option: string, message: string): never {
  throw new ModelSpecError(`zoo.${option}: ${message}`, `zoo.${option}`);
}

/** A layer without its node name and inputs (the builder sets those). */
export type LayerBody = LayerSpec extends infer L ? (L extends unknown ? Omit<L, 'name' | 'inputs'> : never) : never;

export interface ConvBnOptions {
  stride?: number;
  /** Default: kernelSize / 2 rounded down ("same" padding for odd kernels at stride 1). */
  padding?: number;
  /** Activation after batch norm; default 'relu'. */
  act?: 'relu' | 'leakyRelu' | 'none';
  /** Slope of leakyRelu; default 0.1 (YOLO's). */
  negativeSlope?: number;
}

export class SpecBuilder {
  readonly layers: LayerSpec[] = [];
  private last = 'input';

  /** The most recently added node (`input` before any). */
  get head(): string {
    return this.last;
  }

  /** Appends `layer` as node `name`, reading `from` (default: the node added last). Returns `name`. */
  add(name: string, layer: LayerBody, from: string | readonly string[] = this.last): string {
    const inputs = typeof from === 'string' ? [from] : [...from];
    const spec = { ...layer, name } as LayerSpec;
    if (inputs.length !== 1 || inputs[0] !== this.last) spec.inputs = inputs;
    this.layers.push(spec);
    this.last = name;
    return name;
  }

  /** conv (no bias: batch norm has its own shift) → batch norm → activation. Returns the last node's name. */
  convBn(prefix: string, outChannels: number, kernelSize: number, opts: ConvBnOptions = {}, from: string = this.last): string {
    const { stride = 1, padding = Math.floor(kernelSize / 2), act = 'relu', negativeSlope = 0.1 } = opts;
    this.add(`${prefix}_conv`, { type: 'conv2d', outChannels, kernelSize, stride, padding, bias: false }, from);
    const bn = this.add(`${prefix}_bn`, { type: 'batchNorm2d' });
    if (act === 'relu') return this.add(`${prefix}_relu`, { type: 'relu' });
    if (act === 'leakyRelu') return this.add(`${prefix}_lrelu`, { type: 'leakyRelu', negativeSlope });
    return bn;
  }

  /** The finished spec. */
  build(name: string, input: [number, number, number], init?: ModelSpec['init']): ModelSpec {
    return { name, input, layers: this.layers, ...(init === undefined ? {} : { init }) };
  }
}
