import { describe, expect, it } from 'vitest';
import { decodeNamedArrays, encodeNamedArrays, paramsToBytes, SerializationError } from '../src/index.ts';
import type { NamedArray } from '../src/index.ts';

const arrays: NamedArray[] = [
  { name: 'conv1.weight', shape: [2, 1, 2, 2], data: Float32Array.from([1, -2, 3.5, 4, 5, 6, 7, -8.25]) },
  { name: 'conv1.bias', shape: [2], data: Float32Array.from([0.1, -0.2]) },
  { name: 'scalar', shape: [], data: Float32Array.from([Math.PI]) },
  { name: 'empty', shape: [0, 3], data: new Float32Array(0) },
  { name: 'special', shape: [4], data: Float32Array.from([NaN, Infinity, -Infinity, -0]) },
];

/** Rebuilds a blob with a hand-made header (and payload), to forge malicious inputs. */
function forge(header: unknown, payload: Uint8Array = new Uint8Array(0), opts: { headerText?: string; version?: number } = {}): Uint8Array {
  const text = new TextEncoder().encode(opts.headerText ?? JSON.stringify(header));
  const start = (12 + text.length + 3) & ~3;
  const out = new Uint8Array(start + payload.length);
  out.set([0x53, 0x54, 0x4e, 0x41]);
  const view = new DataView(out.buffer);
  view.setUint32(4, opts.version ?? 1, true);
  view.setUint32(8, text.length, true);
  out.set(text, 12);
  out.set(payload, start);
  return out;
}

function expectSerializationError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a SerializationError').toBeInstanceOf(SerializationError);
  expect((caught as Error).name).toBe('SerializationError');
  expect((caught as Error).message).toMatch(pattern);
}

describe('encodeNamedArrays / decodeNamedArrays', () => {
  it('round-trips names, shapes, values (NaN, ±Infinity, -0, empty, scalar) and meta', () => {
    const meta = { step: 12, job: 'abc', nested: { lr: 0.01, tags: ['a', 'b'] } };
    const bytes = encodeNamedArrays(arrays, meta);
    const out = decodeNamedArrays(bytes);
    expect(out.meta).toEqual(meta);
    expect(out.arrays.map((a) => a.name)).toEqual(arrays.map((a) => a.name));
    out.arrays.forEach((a, i) => {
      expect(a.shape).toEqual(arrays[i].shape);
      expect(Array.from(a.data)).toEqual(Array.from(arrays[i].data));
    });
    expect(Object.is(out.arrays[4].data[3], -0)).toBe(true);
  });

  it('pads the payload to a 4-byte boundary and stores float32 little-endian', () => {
    const bytes = encodeNamedArrays([{ name: 'x', shape: [1], data: Float32Array.from([1]) }]);
    expect(bytes.length % 4).toBe(0);
    const tail = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 4, 4);
    expect(tail.getFloat32(0, true)).toBe(1);
  });

  it('decodes from an unaligned view and returns copies that do not alias the input', () => {
    const bytes = encodeNamedArrays(arrays);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const view = shifted.subarray(1);
    const out = decodeNamedArrays(view);
    expect(Array.from(out.arrays[0].data)).toEqual(Array.from(arrays[0].data));
    out.arrays[0].data[0] = 99;
    expect(decodeNamedArrays(view).arrays[0].data[0]).toBe(1);
  });

  it('encodes an empty list', () => {
    expect(decodeNamedArrays(encodeNamedArrays([])).arrays).toEqual([]);
  });

  it('refuses meta that decoding would refuse', () => {
    expectSerializationError(() => encodeNamedArrays([], JSON.parse('{"__proto__":{"x":1}}')), /meta contains forbidden key "__proto__"/);
    expectSerializationError(() => encodeNamedArrays([], [] as never), /meta must be a plain object/);
  });

  it.each([
    ['a duplicate name', [arrays[1], arrays[1]], /duplicate array name conv1.bias/],
    ['data that does not fit the shape', [{ name: 'w', shape: [2, 2], data: new Float32Array(3) }], /w: shape \[2,2\] holds 4 values, data has 3/],
    ['an empty name', [{ name: '', shape: [1], data: new Float32Array(1) }], /names must be/],
    ['a negative dimension', [{ name: 'w', shape: [-1], data: new Float32Array(0) }], /w: shape \[-1\]/],
  ])('encode rejects %s', (_title, input, pattern) => {
    expectSerializationError(() => encodeNamedArrays(input as NamedArray[]), pattern);
  });
});

describe('decodeNamedArrays rejects corrupt or hostile input', () => {
  const good = encodeNamedArrays(arrays, { step: 1 });
  const goodHeader = (): { meta: Record<string, unknown>; payloadByteLength: number; arrays: { name: string; shape: number[]; offset: number; byteLength: number }[] } => {
    const len = new DataView(good.buffer).getUint32(8, true);
    return JSON.parse(new TextDecoder().decode(good.subarray(12, 12 + len)));
  };
  const payload = (h: ReturnType<typeof goodHeader>): Uint8Array => good.subarray(good.length - h.payloadByteLength);
  const oneArray = (entry: Record<string, unknown>, payloadBytes = 16): Uint8Array =>
    forge({ meta: {}, payloadByteLength: payloadBytes, arrays: [entry] }, new Uint8Array(payloadBytes));

  const cases: [string, () => Uint8Array, RegExp][] = [
    ['an empty buffer', () => new Uint8Array(0), /truncated: 0 bytes/],
    ['a buffer shorter than the preamble', () => good.subarray(0, 7), /truncated: 7 bytes/],
    ['a buffer truncated inside the header', () => good.subarray(0, 40), /header length \d+ runs past the end of the 40-byte blob/],
    ['a buffer truncated inside the payload', () => good.subarray(0, good.length - 4), /declares a payload of \d+ bytes, the blob holds \d+/],
    ['a buffer with trailing bytes', () => Uint8Array.from([...good, 0, 0, 0, 0]), /declares a payload of \d+ bytes, the blob holds \d+/],
    ['bad magic bytes', () => Uint8Array.from(good, (b, i) => (i === 0 ? 0x58 : b)), /bad magic/],
    ['an unknown version', () => forge(goodHeader(), payload(goodHeader()), { version: 2 }), /unsupported format version 2/],
    ['a header length beyond the buffer', () => {
      const b = Uint8Array.from(good);
      new DataView(b.buffer).setUint32(8, 0xffffffff, true);
      return b;
    }, /header length 4294967295 runs past the end/],
    ['a header that is not JSON', () => forge(null, new Uint8Array(0), { headerText: '{"meta":' }), /header is not valid JSON/],
    ['a header that is not UTF-8', () => {
      const b = forge(null, new Uint8Array(0), { headerText: 'xx' });
      b[12] = 0xff;
      return b;
    }, /not valid UTF-8/],
    ['a header that is an array', () => forge([]), /header is not a JSON object/],
    ['__proto__ in the header', () => forge(null, new Uint8Array(0), { headerText: '{"meta":{},"payloadByteLength":0,"arrays":[],"__proto__":{"polluted":1}}' }), /forbidden key "__proto__"/],
    ['__proto__ nested in meta', () => forge(null, new Uint8Array(0), { headerText: '{"meta":{"a":{"__proto__":{"polluted":1}}},"payloadByteLength":0,"arrays":[]}' }), /forbidden key "__proto__"/],
    ['constructor in meta', () => forge({ meta: { constructor: { prototype: 1 } }, payloadByteLength: 0, arrays: [] }), /forbidden key/],
    ['an unknown header field', () => forge({ meta: {}, payloadByteLength: 0, arrays: [], extra: 1 }), /unexpected field "extra"/],
    ['a missing header field', () => forge({ meta: {}, payloadByteLength: 0 }), /lacks field "arrays"/],
    ['meta that is not an object', () => forge({ meta: [1], payloadByteLength: 0, arrays: [] }), /header.meta is not an object/],
    ['an entry with an unknown field', () => oneArray({ name: 'w', shape: [4], offset: 0, byteLength: 16, dtype: 'f64' }), /unexpected field "dtype"/],
    ['a shape/length mismatch', () => oneArray({ name: 'w', shape: [2, 3], offset: 0, byteLength: 16 }), /w: shape \[2,3\] needs 24 bytes, header declares 16/],
    ['a negative dimension', () => oneArray({ name: 'w', shape: [-4], offset: 0, byteLength: 16 }), /w: shape must be at most 8 non-negative integers/],
    ['a fractional dimension', () => oneArray({ name: 'w', shape: [2.5], offset: 0, byteLength: 16 }), /w: shape must be/],
    ['a string dimension', () => oneArray({ name: 'w', shape: ['4'], offset: 0, byteLength: 16 }), /w: shape must be/],
    ['a huge declared length', () => oneArray({ name: 'w', shape: [1 << 30], offset: 0, byteLength: 4 * (1 << 30) }), /w: bytes \[0, 4294967296\) lie outside the payload of 16 bytes/],
    ['a huge payloadByteLength', () => forge({ meta: {}, payloadByteLength: 2 ** 40, arrays: [] }), /declares a payload of 1099511627776 bytes, the blob holds 0/],
    ['an offset past the end', () => oneArray({ name: 'w', shape: [1], offset: 16, byteLength: 4 }), /w: bytes \[16, 20\) lie outside/],
    ['an unaligned offset', () => oneArray({ name: 'w', shape: [1], offset: 2, byteLength: 4 }), /w: offset 2 is not 4-byte aligned/],
    ['a negative offset', () => oneArray({ name: 'w', shape: [1], offset: -4, byteLength: 4 }), /w: offset and byteLength must be non-negative integers/],
    ['overlapping arrays', () => forge({ meta: {}, payloadByteLength: 16, arrays: [
      { name: 'a', shape: [3], offset: 0, byteLength: 12 },
      { name: 'b', shape: [2], offset: 8, byteLength: 8 },
    ] }, new Uint8Array(16)), /b: offset 8 overlaps the previous array \(which ends at 12\)/],
    ['duplicate names', () => forge({ meta: {}, payloadByteLength: 8, arrays: [
      { name: 'a', shape: [1], offset: 0, byteLength: 4 },
      { name: 'a', shape: [1], offset: 4, byteLength: 4 },
    ] }, new Uint8Array(8)), /duplicate array name a/],
    ['a non-string name', () => oneArray({ name: 7, shape: [4], offset: 0, byteLength: 16 }), /arrays\[0\].name must be a string/],
  ];

  it.each(cases)('%s', (_title, make, pattern) => {
    expectSerializationError(() => decodeNamedArrays(make()), pattern);
  });

  it('names the offending key on the error', () => {
    try {
      decodeNamedArrays(oneArray({ name: 'fc3.bias', shape: [5], offset: 0, byteLength: 16 }));
      expect.unreachable();
    } catch (err) {
      expect((err as SerializationError).key).toBe('fc3.bias');
    }
  });

  it('rejects a blob larger than maxBytes before parsing it', () => {
    expectSerializationError(() => decodeNamedArrays(good, { maxBytes: 64 }), new RegExp(`blob of ${good.length} bytes exceeds the limit of 64`));
  });

  it('leaves Object.prototype untouched', () => {
    expect(() => decodeNamedArrays(forge(null, new Uint8Array(0), { headerText: '{"__proto__":{"polluted":1}}' }))).toThrow(SerializationError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts the unmodified blob (the forge helper is faithful)', () => {
    const h = goodHeader();
    expect(decodeNamedArrays(forge(h, payload(h))).arrays).toHaveLength(arrays.length);
  });
});

describe('paramsToBytes', () => {
  it('concatenates float32 little-endian data in order', () => {
    const bytes = paramsToBytes([{ data: Float32Array.from([1, 2]) }, { data: Float32Array.from([-3]) }]);
    expect(bytes.length).toBe(12);
    const view = new DataView(bytes.buffer);
    expect([view.getFloat32(0, true), view.getFloat32(4, true), view.getFloat32(8, true)]).toEqual([1, 2, -3]);
  });

  it('handles subarray views with an offset', () => {
    const base = Float32Array.from([9, 9, 5, 6]);
    const bytes = paramsToBytes([{ data: base.subarray(2) }]);
    expect(Array.from(new Float32Array(bytes.buffer))).toEqual([5, 6]);
  });
});
