// Reads a checkpoint file in the browser: checks its header and SHA-256, decodes the named
// arrays with @stride/cnn and rebuilds the trained model.
//
// The file layout is the engine's (libs/engine/src/checkpoint-format.ts): 8 bytes "STRDCKPT",
// uint32 LE version 1, 4 reserved bytes, the SHA-256 of everything after byte 48, then the
// `encodeNamedArrays` payload whose arrays are `param/<name>`, `buffer/<name>`, `optim/<name>`.
// The engine's own reader uses node:crypto, which a browser lacks, hence this one.
// What the playground takes from the meta besides the model — the input normalization and the
// class names — is checked against the model before anything is drawn with it.
import { buildModel, decodeNamedArrays, loadNamedArrays, YOLO_BOX_CHANNELS, type Model, type NamedArray } from '@stride/cnn';
import type { CheckpointMeta, TaskName } from '@stride/protocol';
import { taskOfCheckpoint } from './vision.ts';

const MAGIC = 'STRDCKPT';
const FORMAT_VERSION = 1;
const HEADER_BYTES = 48;
/** Longest class name accepted (a user dataset's names are its folder names: 255 bytes at most). */
export const MAX_CLASS_NAME_LENGTH = 255;

export class CheckpointReadError extends Error {
  override readonly name = 'CheckpointReadError';
}

export interface LoadedCheckpoint {
  readonly meta: CheckpointMeta;
  readonly model: Model;
  /** Bytes of the file, for display. */
  readonly size: number;
}

// SHA-256 round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/**
 * SHA-256 in plain JavaScript (FIPS 180-4), for pages served over plain HTTP to another host,
 * where `crypto.subtle` does not exist (it needs a secure context).
 */
export function sha256(bytes: Uint8Array): Uint8Array {
  const bitLength = bytes.length * 8;
  const padded = new Uint8Array(((bytes.length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const hash = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number): number => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, h] = hash;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    hash[0] += a;
    hash[1] += b;
    hash[2] += c;
    hash[3] += d;
    hash[4] += e;
    hash[5] += f;
    hash[6] += g;
    hash[7] += h;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setUint32(i * 4, hash[i]);
  return out;
}

async function digest(bytes: Uint8Array): Promise<Uint8Array> {
  if (globalThis.crypto?.subtle) {
    // Copy into a fresh ArrayBuffer: subtle.digest wants a BufferSource it may read whole.
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes.slice()));
  }
  return sha256(bytes);
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** Verifies and decodes a checkpoint file, then builds its model with the trained parameters. */
export async function readCheckpoint(bytes: Uint8Array, source: string): Promise<LoadedCheckpoint> {
  if (bytes.length < HEADER_BYTES) throw new CheckpointReadError(`${source}: truncated: ${bytes.length} bytes, the header alone needs ${HEADER_BYTES}`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== MAGIC) throw new CheckpointReadError(`${source}: not a Stride checkpoint (magic ${JSON.stringify(magic)}, expected ${JSON.stringify(MAGIC)})`);
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (version !== FORMAT_VERSION) throw new CheckpointReadError(`${source}: unsupported checkpoint format version ${version} (expected ${FORMAT_VERSION})`);
  const payload = bytes.subarray(HEADER_BYTES);
  const stored = hex(bytes.subarray(16, 48));
  const actual = hex(await digest(payload));
  if (stored !== actual) {
    throw new CheckpointReadError(`${source}: checksum mismatch: header says sha256 ${stored}, the ${payload.length} payload bytes hash to ${actual} (corrupt or truncated file)`);
  }
  let decoded: ReturnType<typeof decodeNamedArrays>;
  try {
    decoded = decodeNamedArrays(payload, { maxBytes: Number.MAX_SAFE_INTEGER });
  } catch (err) {
    throw new CheckpointReadError(`${source}: payload: ${(err as Error).message}`);
  }
  const meta = decoded.meta as unknown as CheckpointMeta;
  if (meta.kind !== 'stride-checkpoint') throw new CheckpointReadError(`${source}: meta.kind is ${JSON.stringify(meta.kind)}, expected "stride-checkpoint"`);
  if (typeof meta.modelSpec !== 'object' || meta.modelSpec === null) throw new CheckpointReadError(`${source}: meta.modelSpec is missing`);
  const params: NamedArray[] = [];
  const buffers: NamedArray[] = [];
  for (const a of decoded.arrays) {
    if (a.name.startsWith('param/')) params.push({ ...a, name: a.name.slice(6) });
    else if (a.name.startsWith('buffer/')) buffers.push({ ...a, name: a.name.slice(7) });
  }
  let model: Model;
  try {
    model = buildModel(meta.modelSpec);
    loadNamedArrays(model.params, params);
    loadNamedArrays(model.buffers, buffers);
  } catch (err) {
    throw new CheckpointReadError(`${source}: the stored parameters do not fit the stored model spec: ${(err as Error).message}`);
  }
  checkMeta(meta, model, source);
  return { meta, model, size: bytes.length };
}

/** How many class names fit a model of `task` with output `out` (per sample). */
function classNameCounts(task: TaskName, out: readonly number[]): number[] {
  const k = out[0] ?? 0;
  if (task === 'localization') return [k - 4]; // [K + 4]: the class logits, then the box
  if (task === 'detection') return [k - YOLO_BOX_CHANNELS]; // [5 + K, S, S]
  if (task === 'segmentation') return [k, k - 1]; // [K, H, W]; the background may go unnamed
  return [k]; // [K]
}

/** A value as an error message shows it: short, whatever it is. */
function describeValue(v: unknown): string {
  if (Array.isArray(v)) return `${v.length} value${v.length === 1 ? '' : 's'}`;
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return v === undefined ? 'nothing' : v === null ? 'null' : `a${typeof v === 'object' ? 'n' : ''} ${typeof v}`;
}

/** Checks the normalization and the class names against the model; throws a CheckpointReadError naming the field. */
function checkMeta(meta: CheckpointMeta, model: Model, source: string): void {
  const fail = (message: string): never => {
    throw new CheckpointReadError(`${source}: ${message}`);
  };
  const channels = model.inputShape[0];
  const norm: unknown = meta.normalization;
  if (typeof norm !== 'object' || norm === null) fail(`meta.normalization must be { mean, std }, got ${describeValue(norm)}`);
  for (const key of ['mean', 'std'] as const) {
    const values = (norm as Record<string, unknown>)[key];
    if (!Array.isArray(values) || values.length !== channels) {
      fail(`meta.normalization.${key} must hold ${channels} number${channels === 1 ? '' : 's'}, one per input channel of the model, got ${describeValue(values)}`);
    }
    (values as unknown[]).forEach((v, i) => {
      const ok = typeof v === 'number' && Number.isFinite(v) && (key === 'mean' || v > 0);
      if (!ok) fail(`meta.normalization.${key}[${i}] must be a finite number${key === 'std' ? ' > 0' : ''}, got ${describeValue(v)}`);
    });
  }
  const names: unknown = meta.classNames;
  const task = taskOfCheckpoint(meta);
  const counts = classNameCounts(task, model.outputShape);
  if (!Array.isArray(names) || !counts.includes(names.length)) {
    fail(`meta.classNames must hold ${counts.join(' or ')} names, one per class of this ${task} model (output ${model.outputShape.join('×')}), got ${describeValue(names)}`);
  }
  (names as unknown[]).forEach((n, i) => {
    if (typeof n !== 'string' || n.length === 0 || n.length > MAX_CLASS_NAME_LENGTH) fail(`meta.classNames[${i}] must be a string of 1 to ${MAX_CLASS_NAME_LENGTH} characters, got ${describeValue(n)}`);
  });
}
