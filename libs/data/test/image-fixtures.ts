// Writes small PNG and JPEG files for the image tests, with the same encoders users' tools would use.
import { deflateSync } from 'node:zlib';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';

/** PNG bytes of `data` (HWC, `channels` 1 grey, 3 RGB or 4 RGBA per pixel), 8 bits. */
export function pngBytes(width: number, height: number, channels: 1 | 3 | 4, data: ArrayLike<number>): Uint8Array {
  const png = new PNG({ width, height, colorType: channels === 1 ? 0 : channels === 3 ? 2 : 6, inputColorType: channels === 1 ? 0 : channels === 3 ? 2 : 6, inputHasAlpha: channels === 4 });
  const buf = Buffer.alloc(width * height * channels);
  for (let i = 0; i < buf.length; i++) buf[i] = data[i];
  png.data = buf;
  const out = PNG.sync.write(png, { colorType: channels === 1 ? 0 : channels === 3 ? 2 : 6, inputColorType: channels === 1 ? 0 : channels === 3 ? 2 : 6, inputHasAlpha: channels === 4 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** JPEG bytes of RGB `data` (HWC) at `quality`. */
export function jpegBytes(width: number, height: number, rgb: ArrayLike<number>, quality = 95): Uint8Array {
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = rgb[3 * i];
    rgba[4 * i + 1] = rgb[3 * i + 1];
    rgba[4 * i + 2] = rgb[3 * i + 2];
    rgba[4 * i + 3] = 255;
  }
  const out = encodeJpeg({ width, height, data: rgba }, quality).data;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A PNG built chunk by chunk: IHDR (`width × height`, `depth`, `colorType`), one IDAT of the deflated `raw` scanlines, IEND. */
export function pngRaw(width: number, height: number, depth: number, colorType: number, raw: Uint8Array, palette?: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const idat = deflateSync(raw);
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...(palette ? [chunk('PLTE', palette)] : []), chunk('IDAT', new Uint8Array(idat)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * A decompression bomb: a valid, few-hundred-byte grey PNG declaring `side × side` pixels whose
 * IDAT is the deflated first rows only (decoding it would allocate side² bytes and more).
 */
export function pngBomb(side: number): Uint8Array {
  return pngRaw(side, side, 8, 0, new Uint8Array(4 * (side + 1)));
}

/** A valid JPEG whose frame header is rewritten to declare `height × width`. */
export function jpegDeclaring(height: number, width: number): Uint8Array {
  const bytes = jpegBytes(8, 8, new Uint8Array(8 * 8 * 3).fill(128)).slice();
  for (let p = 2; p < bytes.length; ) {
    const marker = bytes[p + 1];
    const length = (bytes[p + 2] << 8) | bytes[p + 3];
    if (marker === 0xc0) {
      bytes[p + 5] = height >> 8;
      bytes[p + 6] = height & 0xff;
      bytes[p + 7] = width >> 8;
      bytes[p + 8] = width & 0xff;
      return bytes;
    }
    p += 2 + length;
  }
  throw new Error('no SOF0 marker');
}

/** A `count`-sample RGB pattern: smooth gradients with a per-sample hue, HWC. */
export function gradientRgb(width: number, height: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 3 * (y * width + x);
      out[i] = Math.round((255 * x) / Math.max(1, width - 1));
      out[i + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      out[i + 2] = (seed * 37) % 256;
    }
  }
  return out;
}
