// IDX files whose headers lie about each other (issue 7, hostile input): an images file and a
// labels file that are each well-formed but disagree, or labels outside the classes. Single-file
// lies (forged dims, truncation, trailing bytes, wrong types) are in idx.test.ts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeIdx } from '../src/index.ts';
import { readIdxPair } from '../src/files.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stride-idx-pair-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function pair(images: Uint8Array, labels: Uint8Array): Promise<[string, string]> {
  const i = join(dir, 'images.idx');
  const l = join(dir, 'labels.idx');
  await writeFile(i, images);
  await writeFile(l, labels);
  return [i, l];
}

describe('readIdxPair', () => {
  it('reads an agreeing pair', async () => {
    const [i, l] = await pair(encodeIdx([3, 2, 2], new Uint8Array(12).fill(7)), encodeIdx([3], Uint8Array.from([0, 9, 4])));
    const r = await readIdxPair(i, l, 10);
    expect({ count: r.count, height: r.height, width: r.width, labels: [...r.labels] }).toEqual({ count: 3, height: 2, width: 2, labels: [0, 9, 4] });
  });

  it.each([
    ['more labels than images', encodeIdx([3, 2, 2], new Uint8Array(12)), encodeIdx([4], new Uint8Array(4)), 'labels.idx', /4 labels for 3 images/],
    ['fewer labels than images', encodeIdx([3, 2, 2], new Uint8Array(12)), encodeIdx([2], new Uint8Array(2)), 'labels.idx', /2 labels for 3 images/],
    ['a label outside the classes', encodeIdx([3, 2, 2], new Uint8Array(12)), encodeIdx([3], Uint8Array.from([1, 10, 2])), 'labels.idx', /label 10 at index 1 is outside \[0, 10\)/],
    ['a label of 255', encodeIdx([1, 1, 1], new Uint8Array(1)), encodeIdx([1], Uint8Array.from([255])), 'labels.idx', /label 255 at index 0/],
    ['images with 2 dimensions', encodeIdx([3, 4], new Uint8Array(12)), encodeIdx([3], new Uint8Array(3)), 'images.idx', /expected 3 dimensions \[count, height, width\], found \[3, 4\]/],
    ['labels with 2 dimensions', encodeIdx([3, 2, 2], new Uint8Array(12)), encodeIdx([3, 1], new Uint8Array(3)), 'labels.idx', /expected 1 dimension \[count\], found \[3, 1\]/],
  ])('%s: a DatasetError naming the file at fault', async (_title, images, labels, file, message) => {
    const [i, l] = await pair(images, labels);
    const err = await readIdxPair(i, l, 10).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).toBe('DatasetError');
    expect(err?.message).toContain(join(dir, file));
    expect(err?.message).toMatch(message);
  });
});
