// The IDX file format (LeCun's MNIST files): a 4-byte magic, big-endian uint32 dimensions, raw data.
//
//   byte 0..1  zero
//   byte 2     element type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
//   byte 3     number of dimensions
//   then one big-endian uint32 per dimension, then product(dims) elements, row-major.
//
// Only uint8 is needed (images and labels); the other types are named in the error.

import { DatasetError } from './errors.ts';

export interface IdxArray {
  type: 'uint8';
  dims: number[];
  /** A view on the input bytes (no copy), `product(dims)` long. */
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = { 0x08: 'uint8', 0x09: 'int8', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };
const UINT8 = 0x08;
const MAX_DIMS = 4;

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

/** Parses an IDX file of uint8 elements. `source` names the file in errors. */
export function parseIdx(bytes: Uint8Array, source = '<bytes>'): IdxArray {
  const fail = (message: string): never => {
    throw new DatasetError(source, `invalid IDX file: ${message}`);
  };
  if (bytes.length < 4) fail(`too short: ${bytes.length} bytes, an IDX header needs at least 4`);
  if (bytes[0] !== 0 || bytes[1] !== 0) fail(`bad magic: the first two bytes must be 0x00 0x00, found ${hex(bytes[0])} ${hex(bytes[1])}`);
  const typeCode = bytes[2];
  if (typeCode !== UINT8) {
    const name = TYPE_NAMES[typeCode];
    fail(name ? `unsupported element type ${hex(typeCode)} (${name}); only ${hex(UINT8)} (uint8) is supported` : `unknown element type code ${hex(typeCode)}`);
  }
  const ndims = bytes[3];
  if (ndims < 1 || ndims > MAX_DIMS) fail(`${ndims} dimensions; expected 1 to ${MAX_DIMS}`);
  const headerLength = 4 + 4 * ndims;
  if (bytes.length < headerLength) fail(`truncated header: ${ndims} dimensions need ${headerLength} header bytes, found ${bytes.length}`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, headerLength);
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    if (d === 0) fail(`dimension ${i} is 0 (dims [${dims.concat(d).join(', ')}])`);
    dims.push(d);
    size *= d; // a double: exact up to 2^53, and any larger value already exceeds every buffer
  }
  // Compared against the buffer before anything is allocated: a forged header cannot ask for gigabytes.
  const available = bytes.length - headerLength;
  if (size > available) fail(`truncated: expected ${size} bytes of data for dims [${dims.join(', ')}], found ${available}`);
  if (size < available) fail(`trailing bytes: expected ${size} bytes of data for dims [${dims.join(', ')}], found ${available} (${available - size} extra)`);
  // A plain Uint8Array view, even when `bytes` is a Node Buffer.
  return { type: 'uint8', dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLength, size) };
}

/** Encodes a uint8 array as an IDX file (the inverse of `parseIdx`). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  if (dims.length < 1 || dims.length > MAX_DIMS) throw new RangeError(`encodeIdx: ${dims.length} dimensions; expected 1 to ${MAX_DIMS}`);
  let size = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 1 || d > 0xffffffff) throw new RangeError(`encodeIdx: bad dimension ${d} in [${dims.join(', ')}]`);
    size *= d;
  }
  if (size !== data.length) throw new RangeError(`encodeIdx: dims [${dims.join(', ')}] hold ${size} elements, data has ${data.length}`);
  const headerLength = 4 + 4 * dims.length;
  const out = new Uint8Array(headerLength + size);
  const view = new DataView(out.buffer);
  out[2] = UINT8;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, headerLength);
  return out;
}
