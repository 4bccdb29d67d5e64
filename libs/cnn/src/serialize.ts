// Named float32 arrays <-> bytes, for parameters, optimizer state and checkpoints.
// Runs in Node and in the browser: Uint8Array and DataView only.
//
// Layout (all integers little-endian):
//   0  magic "STNA" (4 bytes)
//   4  format version, uint32 (= 1)
//   8  header byte length L, uint32
//   12 header: UTF-8 JSON { meta, payloadByteLength, arrays: [{ name, shape, offset, byteLength }] }
//   12 + L, padded with zeros to a multiple of 4: payload, float32 little-endian.
// `offset` and `byteLength` are relative to the payload start; arrays are stored in order, 4-byte aligned.
//
// Decoding treats the bytes as hostile: every length and offset is checked against the buffer before
// anything is allocated, and the header may only hold the expected structure (no `__proto__` tricks).

import type { NamedArray } from './types.ts';

/** A byte blob that is not a valid named-array encoding; `key` names the array or header field at fault. */
export class SerializationError extends Error {
  override name = 'SerializationError';
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

const MAGIC = [0x53, 0x54, 0x4e, 0x41]; // "STNA": STride Named Arrays
const VERSION = 1;
const PREAMBLE_BYTES = 12;
/** Default cap on the size of a blob accepted by `decodeNamedArrays`. */
const DEFAULT_MAX_BYTES = 1 << 30;
const MAX_HEADER_BYTES = 16 << 20;
const MAX_RANK = 8;
const MAX_NAME_LENGTH = 256;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

interface HeaderEntry {
  name: string;
  shape: number[];
  offset: number;
  byteLength: number;
}

const align4 = (n: number): number => (n + 3) & ~3;

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Writes float32 values little-endian at `pos` of `out` (fast copy on little-endian hosts). */
function writeFloat32LE(out: Uint8Array, pos: number, data: Float32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < data.length; i++) view.setFloat32(pos + 4 * i, data[i], true);
}

/** Reads `count` float32 little-endian values at `pos` of `bytes` into a fresh array (never aliases the input). */
function readFloat32LE(bytes: Uint8Array, pos: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(bytes.subarray(pos, pos + 4 * count));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(pos + 4 * i, true);
  return out;
}

/**
 * Encodes arrays (in order) and an optional JSON-serializable `meta` object.
 * Names must be unique and non-empty; each `data.length` must equal the product of its shape.
 */
export function encodeNamedArrays(arrays: readonly NamedArray[], meta: Record<string, unknown> = {}): Uint8Array {
  const seen = new Set<string>();
  const entries: HeaderEntry[] = [];
  let payloadByteLength = 0;
  for (const a of arrays) {
    if (typeof a.name !== 'string' || a.name.length === 0 || a.name.length > MAX_NAME_LENGTH) {
      throw new SerializationError(`encode: array names must be 1..${MAX_NAME_LENGTH} characters, got ${JSON.stringify(a.name)}`, a.name);
    }
    if (seen.has(a.name)) throw new SerializationError(`encode: duplicate array name ${a.name}`, a.name);
    seen.add(a.name);
    if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || a.shape.length > MAX_RANK) {
      throw new SerializationError(`encode: ${a.name}: shape [${a.shape.join(',')}] must be at most ${MAX_RANK} non-negative integers`, a.name);
    }
    if (elementCount(a.shape) !== a.data.length) {
      throw new SerializationError(`encode: ${a.name}: shape [${a.shape.join(',')}] holds ${elementCount(a.shape)} values, data has ${a.data.length}`, a.name);
    }
    entries.push({ name: a.name, shape: [...a.shape], offset: payloadByteLength, byteLength: a.data.byteLength });
    payloadByteLength += a.data.byteLength;
  }
  if (!isRecord(meta)) throw new SerializationError('encode: meta must be a plain object', 'meta');
  // Refuse what decoding would refuse, so a blob we write can always be read back.
  const headerJson = JSON.stringify({ meta, payloadByteLength, arrays: entries }, (key, value: unknown) => {
    if (FORBIDDEN_KEYS.has(key)) throw new SerializationError(`encode: meta contains forbidden key ${JSON.stringify(key)}`, key);
    return value;
  });
  const headerBytes = new TextEncoder().encode(headerJson);
  if (headerBytes.length > MAX_HEADER_BYTES) throw new SerializationError(`encode: header of ${headerBytes.length} bytes exceeds ${MAX_HEADER_BYTES}`, 'header');
  const payloadStart = align4(PREAMBLE_BYTES + headerBytes.length);
  const out = new Uint8Array(payloadStart + payloadByteLength);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, PREAMBLE_BYTES);
  arrays.forEach((a, i) => writeFloat32LE(out, payloadStart + entries[i].offset, a.data));
  return out;
}

/** JSON.parse that refuses prototype-polluting keys anywhere in the document. */
function parseHeaderJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SerializationError('decode: header is not valid UTF-8', 'header');
  }
  try {
    return JSON.parse(text, (key, value) => {
      if (FORBIDDEN_KEYS.has(key)) throw new SerializationError(`decode: header contains forbidden key ${JSON.stringify(key)}`, key);
      return value;
    });
  } catch (err) {
    if (err instanceof SerializationError) throw err;
    throw new SerializationError(`decode: header is not valid JSON (${(err as Error).message})`, 'header');
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new SerializationError(`decode: ${where} has unexpected field ${JSON.stringify(key)}`, key);
  }
  for (const key of allowed) {
    if (!(key in obj)) throw new SerializationError(`decode: ${where} lacks field ${JSON.stringify(key)}`, key);
  }
}

function checkEntry(raw: unknown, index: number, payloadByteLength: number, previousEnd: number, seen: Set<string>): HeaderEntry {
  const where = `header.arrays[${index}]`;
  if (!isRecord(raw)) throw new SerializationError(`decode: ${where} is not an object`, where);
  checkKeys(raw, ['name', 'shape', 'offset', 'byteLength'], where);
  const { name, shape, offset, byteLength } = raw;
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new SerializationError(`decode: ${where}.name must be a string of 1..${MAX_NAME_LENGTH} characters`, where);
  }
  if (seen.has(name)) throw new SerializationError(`decode: duplicate array name ${name}`, name);
  seen.add(name);
  if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SerializationError(`decode: ${name}: shape must be at most ${MAX_RANK} non-negative integers, got ${JSON.stringify(shape)}`, name);
  }
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || (offset as number) < 0 || (byteLength as number) < 0) {
    throw new SerializationError(`decode: ${name}: offset and byteLength must be non-negative integers`, name);
  }
  const off = offset as number;
  const len = byteLength as number;
  const count = elementCount(shape as number[]);
  if (count * 4 !== len) {
    throw new SerializationError(`decode: ${name}: shape [${shape.join(',')}] needs ${count * 4} bytes, header declares ${len}`, name);
  }
  if (off % 4 !== 0) throw new SerializationError(`decode: ${name}: offset ${off} is not 4-byte aligned`, name);
  if (off < previousEnd) throw new SerializationError(`decode: ${name}: offset ${off} overlaps the previous array (which ends at ${previousEnd})`, name);
  if (off + len > payloadByteLength) {
    throw new SerializationError(`decode: ${name}: bytes [${off}, ${off + len}) lie outside the payload of ${payloadByteLength} bytes`, name);
  }
  return { name, shape: shape as number[], offset: off, byteLength: len };
}

/**
 * Decodes bytes made by `encodeNamedArrays`. Throws a `SerializationError` for any malformed, truncated
 * or oversized input (`maxBytes`, default 1 GiB). The returned arrays are fresh copies.
 */
export function decodeNamedArrays(bytes: Uint8Array, opts: { maxBytes?: number } = {}): { meta: Record<string, unknown>; arrays: NamedArray[] } {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(bytes instanceof Uint8Array)) throw new SerializationError('decode: expected a Uint8Array');
  if (bytes.length > maxBytes) throw new SerializationError(`decode: blob of ${bytes.length} bytes exceeds the limit of ${maxBytes}`);
  if (bytes.length < PREAMBLE_BYTES) throw new SerializationError(`decode: truncated: ${bytes.length} bytes, the preamble alone needs ${PREAMBLE_BYTES}`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SerializationError('decode: bad magic bytes (not a Stride named-array blob)', 'magic');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw new SerializationError(`decode: unsupported format version ${version} (expected ${VERSION})`, 'version');
  const headerLength = view.getUint32(8, true);
  if (PREAMBLE_BYTES + headerLength > bytes.length) {
    throw new SerializationError(`decode: header length ${headerLength} runs past the end of the ${bytes.length}-byte blob`, 'header');
  }
  if (headerLength > MAX_HEADER_BYTES) throw new SerializationError(`decode: header length ${headerLength} exceeds ${MAX_HEADER_BYTES}`, 'header');
  const header = parseHeaderJson(bytes.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerLength));
  if (!isRecord(header)) throw new SerializationError('decode: header is not a JSON object', 'header');
  checkKeys(header, ['meta', 'payloadByteLength', 'arrays'], 'header');
  const { meta, payloadByteLength, arrays } = header;
  if (!isRecord(meta)) throw new SerializationError('decode: header.meta is not an object', 'meta');
  if (!Array.isArray(arrays)) throw new SerializationError('decode: header.arrays is not an array', 'arrays');
  const payloadStart = align4(PREAMBLE_BYTES + headerLength);
  if (!Number.isSafeInteger(payloadByteLength) || (payloadByteLength as number) < 0) {
    throw new SerializationError('decode: header.payloadByteLength must be a non-negative integer', 'payloadByteLength');
  }
  const available = bytes.length - payloadStart;
  if (payloadByteLength !== available) {
    throw new SerializationError(`decode: header declares a payload of ${payloadByteLength} bytes, the blob holds ${available}`, 'payloadByteLength');
  }
  // Validate every entry before allocating any array.
  const entries: HeaderEntry[] = [];
  const seen = new Set<string>();
  let previousEnd = 0;
  arrays.forEach((raw, i) => {
    const entry = checkEntry(raw, i, available, previousEnd, seen);
    previousEnd = entry.offset + entry.byteLength;
    entries.push(entry);
  });
  const out = entries.map((e) => ({ name: e.name, shape: e.shape, data: readFloat32LE(bytes, payloadStart + e.offset, e.byteLength / 4) }));
  return { meta, arrays: out };
}

/** Canonical bytes of a parameter list: every `data` as float32 little-endian, concatenated in order (input of `paramsSha256`). */
export function paramsToBytes(params: readonly { data: Float32Array }[]): Uint8Array {
  let total = 0;
  for (const p of params) total += p.data.byteLength;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of params) {
    writeFloat32LE(out, pos, p.data);
    pos += p.data.byteLength;
  }
  return out;
}
