import { describe, expect, it } from 'vitest';
import { BufferArena, buildModel, createRng, crossEntropy, getZooSpec, relu, tensor, withArena } from '../src/index.ts';
import type { Model, Tensor } from '../src/index.ts';

function randomInput(shape: number[], seed: number): Tensor {
  const rng = createRng(seed);
  return tensor(
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
    shape,
  );
}

/** One training step's forward and backward: the output, the loss and every parameter's gradient. */
function step(model: Model, x: Tensor, labels: number[]): { out: Tensor; loss: number; grads: Float32Array[] } {
  model.zeroGrad();
  const out = model.forward(x, { training: true, rng: createRng(5) });
  const loss = crossEntropy(out, labels);
  loss.backward();
  return { out, loss: loss.item(), grads: model.params.map((p) => p.grad.slice()) };
}

describe('BufferArena', () => {
  // LeNet-5 (fused convolution + ReLU + pooling, linear layers, the loss) and a model with batch
  // norm, dropout and a residual sum: the ops that take their arrays from an arena.
  const models: [string, () => Model, number[]][] = [
    ['lenet5', () => buildModel(getZooSpec('lenet5'), { seed: 1 }), [3, 1, 28, 28]],
    ['resnet8', () => buildModel(getZooSpec('resnet8', { baseChannels: 2, height: 8, width: 8, numClasses: 3 }), { seed: 1 }), [3, 1, 8, 8]],
  ];

  for (const [name, make, shape] of models) {
    it(`${name}: steps in an arena give the bytes of steps without one, and the second step allocates nothing`, () => {
      const x = randomInput(shape, 2);
      const labels = Array.from({ length: shape[0] }, (_, i) => i % 3);
      const plain = make();
      const want = step(plain, x, labels);
      const again = step(plain, x, labels);
      // Without an arena every step has arrays of its own.
      expect(again.out.data).not.toBe(want.out.data);

      const model = make();
      const arena = new BufferArena();
      const first = withArena(arena, () => step(model, x, labels));
      const taken = arena.stats.allocated;
      expect(taken).toBeGreaterThan(3);
      expect(arena.stats.reused).toBe(0);
      const firstOut = first.out.data;
      const outBytes = firstOut.slice();
      const second = withArena(arena, () => step(model, x, labels));
      // The same arrays again, zeroed and recomputed: nothing new.
      expect(arena.stats.allocated).toBe(taken);
      expect(arena.stats.reused).toBe(taken);
      expect(second.out.data).toBe(firstOut);
      for (const r of [first, second]) {
        expect(r.loss).toBe(want.loss);
        r.grads.forEach((g, i) => expect(g, model.params[i].name).toEqual(want.grads[i]));
      }
      expect(second.out.data).toEqual(outBytes);
    });
  }

  it('hands out zeroed arrays, and reuses an array only after the next withArena starts', () => {
    const arena = new BufferArena();
    const [a, b] = withArena(arena, () => {
      const f = arena.take('f32', 8).fill(3);
      const i = arena.take('i32', 8).fill(-1);
      // Another of the same length within one run is a different array.
      expect(arena.take('f32', 8)).not.toBe(f);
      return [f, i];
    });
    withArena(arena, () => {
      const f = arena.take('f32', 8);
      expect(f === a || f.every((v) => v === 0)).toBe(true);
      expect(Array.from(arena.take('i32', 8))).toEqual(new Array(8).fill(0));
      expect(b.every((v) => v === 0)).toBe(true);
      // Another kind or length is never one of them.
      expect(arena.take('f64', 8)).toBeInstanceOf(Float64Array);
      expect(arena.take('f32', 9).length).toBe(9);
    });
    expect(arena.stats).toMatchObject({ allocated: 5, reused: 2 });
  });

  it('keeps no more than maxBytes: beyond it, arrays are left to the collector', () => {
    const arena = new BufferArena(64);
    for (let run = 0; run < 3; run++) withArena(arena, () => [arena.take('f32', 16), arena.take('f32', 16)]);
    // The first array of each run fits (64 bytes); the second never does.
    expect(arena.stats).toMatchObject({ allocated: 4, reused: 2, bytes: 64 });
  });

  it('refuses to be entered twice at once, and restores the arena outside', () => {
    const outer = new BufferArena();
    const inner = new BufferArena();
    expect(() => withArena(outer, () => withArena(outer, () => 0))).toThrow('withArena: this arena is in use already');
    withArena(outer, () => {
      withArena(inner, () => relu(tensor([1, -1], [2])));
      relu(tensor([1, -1], [2]));
    });
    expect(inner.stats.allocated).toBe(1);
    expect(outer.stats.allocated).toBe(1);
    // Outside any arena the ops allocate as usual.
    relu(tensor([1, -1], [2]));
    expect(outer.stats.allocated + inner.stats.allocated).toBe(2);
  });
});
