import { describe, expect, it } from 'vitest';
import { DatasetError, batchIndices, gatherSamples, normalizeInto, permutation, shardRanges } from '../src/index.ts';
import type { Dataset } from '../src/index.ts';

function isPermutation(p: Uint32Array): boolean {
  const seen = new Uint8Array(p.length);
  for (const v of p) {
    if (v >= p.length || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

describe('permutation', () => {
  it.each([0, 1, 2, 10, 1000, 60_000])('n=%i is a permutation of 0..n-1', (n) => {
    const p = permutation(n, 42, 0);
    expect(p.length).toBe(n);
    expect(isPermutation(p)).toBe(true);
  });

  it('is the same for the same (n, seed, epoch)', () => {
    expect(permutation(1000, 7, 3)).toEqual(permutation(1000, 7, 3));
  });

  it('differs between epochs and between seeds', () => {
    const base = permutation(1000, 7, 3);
    expect(permutation(1000, 7, 4)).not.toEqual(base);
    expect(permutation(1000, 8, 3)).not.toEqual(base);
  });

  it('actually shuffles (few fixed points)', () => {
    const p = permutation(10_000, 1, 0);
    let fixed = 0;
    for (let i = 0; i < p.length; i++) if (p[i] === i) fixed++;
    expect(fixed).toBeLessThan(20); // expected about 1
  });

  it('pins the sequence for seed 1, epoch 0 (changing it breaks resumed jobs)', () => {
    expect(Array.from(permutation(10, 1, 0))).toEqual([8, 9, 7, 0, 6, 2, 5, 4, 3, 1]);
  });

  it.each([
    [-1, 0, 0],
    [1.5, 0, 0],
    [10, -1, 0],
    [10, 0, 0.5],
  ])('rejects n=%s seed=%s epoch=%s', (n, seed, epoch) => {
    expect(() => permutation(n, seed, epoch)).toThrow(RangeError);
  });
});

describe('batchIndices', () => {
  const perm = permutation(10, 3, 0);
  it('cuts full batches and a shorter last one, as views', () => {
    expect(Array.from(batchIndices(perm, 0, 4))).toEqual(Array.from(perm.subarray(0, 4)));
    expect(Array.from(batchIndices(perm, 1, 4))).toEqual(Array.from(perm.subarray(4, 8)));
    const last = batchIndices(perm, 2, 4);
    expect(Array.from(last)).toEqual(Array.from(perm.subarray(8, 10)));
    expect(last.buffer).toBe(perm.buffer);
  });
  it('rejects batches out of range', () => {
    expect(() => batchIndices(perm, 3, 4)).toThrow(/batch 3 out of range: 10 samples in batches of 4 make 3 batches/);
    expect(() => batchIndices(perm, -1, 4)).toThrow(RangeError);
    expect(() => batchIndices(perm, 0, 0)).toThrow(RangeError);
  });
});

describe('shardRanges', () => {
  it('splits 10 into 3 as 4, 3, 3', () => {
    expect(shardRanges(10, 3)).toEqual([
      { start: 0, end: 4 },
      { start: 4, end: 7 },
      { start: 7, end: 10 },
    ]);
  });

  it('gives empty trailing shards when the batch is smaller than the shard count', () => {
    expect(shardRanges(2, 4)).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 2 },
      { start: 2, end: 2 },
    ]);
  });

  for (const length of [0, 1, 7, 64, 100, 257]) {
    for (const shards of [1, 2, 3, 8, 13]) {
      it(`L=${length}, S=${shards}: contiguous cover, sizes differ by ≤ 1, larger first`, () => {
        const r = shardRanges(length, shards);
        expect(r.length).toBe(shards);
        expect(r[0].start).toBe(0);
        expect(r[shards - 1].end).toBe(length);
        const sizes = r.map((s) => s.end - s.start);
        for (let i = 1; i < shards; i++) {
          expect(r[i].start).toBe(r[i - 1].end);
          expect(sizes[i]).toBeLessThanOrEqual(sizes[i - 1]);
        }
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      });
    }
  }

  it('rejects bad arguments', () => {
    expect(() => shardRanges(10, 0)).toThrow(/shards must be an integer/);
    expect(() => shardRanges(-1, 2)).toThrow(/batchLength must be an integer/);
  });
});

describe('gatherSamples', () => {
  // 4 samples of 2 channels × 1 × 2 pixels: sample i holds 10i..10i+3.
  const ds: Dataset = {
    name: 'toy',
    split: 'train',
    count: 4,
    channels: 2,
    height: 1,
    width: 2,
    numClasses: 4,
    classNames: ['a', 'b', 'c', 'd'],
    images: new Uint8Array([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33]),
    labels: new Uint8Array([0, 1, 2, 3]),
    mean: [0, 0],
    std: [1, 1],
  };

  it('copies the selected samples in index order', () => {
    const { images, labels } = gatherSamples(ds, new Uint32Array([3, 0, 3]));
    expect(Array.from(images)).toEqual([30, 31, 32, 33, 0, 1, 2, 3, 30, 31, 32, 33]);
    expect(Array.from(labels)).toEqual([3, 0, 3]);
    images[0] = 99;
    expect(ds.images[12]).toBe(30);
  });

  it('gathers into given arrays (views of a larger buffer too) and returns them', () => {
    const buffer = new Uint8Array(20).fill(7);
    const into = { images: buffer.subarray(4, 12), labels: new Uint8Array(2) };
    const out = gatherSamples(ds, [2, 1], into);
    expect(out.images).toBe(into.images);
    expect(out.labels).toBe(into.labels);
    expect(Array.from(buffer)).toEqual([7, 7, 7, 7, 20, 21, 22, 23, 10, 11, 12, 13, 7, 7, 7, 7, 7, 7, 7, 7]);
    expect(Array.from(into.labels)).toEqual([2, 1]);
    expect(() => gatherSamples(ds, [2, 1, 0], into)).toThrow(new RangeError('gatherSamples: into holds 8 pixels and 2 labels, 3 samples need 12 and 3'));
  });

  it('rejects an index out of range, naming it', () => {
    expect(() => gatherSamples(ds, [1, 4])).toThrow(DatasetError);
    expect(() => gatherSamples(ds, [1, 4])).toThrow(/index 4 at position 1 is out of range \[0, 4\)/);
  });
});

describe('normalizeInto', () => {
  it('computes (x/255 - mean)/std per channel, NCHW', () => {
    // 2 samples, 2 channels, 2 pixels.
    const images = new Uint8Array([0, 255, 51, 102, 255, 0, 0, 0]);
    const mean = [0.5, 0.1];
    const std = [0.25, 2];
    const out = normalizeInto(images, 2, 2, 2, mean, std);
    const expected = [(0 - 0.5) / 0.25, (1 - 0.5) / 0.25, (0.2 - 0.1) / 2, (0.4 - 0.1) / 2, (1 - 0.5) / 0.25, (0 - 0.5) / 0.25, -0.05, -0.05];
    expect(Array.from(out)).toEqual(expected.map(Math.fround));
  });

  it('matches the MNIST constants and writes into a given buffer', () => {
    const out = new Float32Array(3);
    const r = normalizeInto(new Uint8Array([0, 128, 255]), 1, 1, 3, [0.1307], [0.3081], out);
    expect(r).toBe(out);
    expect(out[0]).toBeCloseTo(-0.424212917, 6);
    expect(out[1]).toBeCloseTo((128 / 255 - 0.1307) / 0.3081, 6);
    expect(out[2]).toBeCloseTo(2.821486528, 6);
  });

  it('rejects mismatched sizes and bad constants', () => {
    expect(() => normalizeInto(new Uint8Array(5), 1, 1, 4, [0], [1])).toThrow(/1×1×4 = 4 pixels expected, images has 5/);
    expect(() => normalizeInto(new Uint8Array(4), 1, 1, 4, [0], [1], new Float32Array(3))).toThrow(/out has 3 elements, 4 expected/);
    expect(() => normalizeInto(new Uint8Array(8), 1, 2, 4, [0], [1])).toThrow(/2 channels need 2 mean and std values/);
    expect(() => normalizeInto(new Uint8Array(4), 1, 1, 4, [0], [0])).toThrow(/channel 0 has mean 0 and std 0/);
  });
});
