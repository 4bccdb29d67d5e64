// Reading, decoding, converting and resizing a batch of image files into uint8 CHW planes: the work
// of the image-folder loader. It runs on the loader's worker threads (image-decode-thread.ts) so a
// large folder does not block the calling thread's event loop, or in the calling thread itself with
// `threads: 0`. Both run this same function, so the bytes are the same either way.
//
// A file that cannot be read or decoded does not fail the batch: its slot in `planes` stays zero and
// the reply says why, without the path (the caller names the file in its DatasetError). The size
// limits (file bytes, then the header's width and height) are checked here, before any pixel is
// allocated: in the thread that decodes.

import { open } from 'node:fs/promises';
import { DatasetError } from './errors.ts';
import { DEFAULT_IMAGE_LIMITS, decodeImage, resizePlanes, toPlanes, type ImageLimits } from './images.ts';

/** One file of a batch as the folder was listed. */
export interface DecodeFile {
  readonly path: string;
  /** Size in bytes when listed; -1 when it was not a regular file (a broken link). */
  readonly size: number;
}

/** A batch of files to decode, all to the same shape. */
export interface DecodeRequest {
  readonly files: readonly DecodeFile[];
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly limits: ImageLimits;
  /** Also count the pixel values of the decoded files (for a split's statistics). */
  readonly histogram: boolean;
}

/** A file of the batch that could not be read or decoded. */
export interface DecodeFailure {
  /** Its index in the request's `files`. */
  readonly index: number;
  /** What is wrong, without the path. */
  readonly reason: string;
}

export interface DecodeReply {
  /** `files.length × channels × height × width` values, file by file; a failed file's slot is zeros. */
  readonly planes: Uint8Array;
  readonly failures: readonly DecodeFailure[];
  /** With `histogram`: per channel, the count of each value 0..255 over the decoded files' pixels. */
  readonly histogram?: Float64Array;
}

/** Reads one file, checking it is a regular file under the size limit, listed and opened. */
async function readImageFile(file: DecodeFile, maxFileBytes: number): Promise<Uint8Array> {
  if (file.size < 0) throw new DatasetError(file.path, 'cannot read: not a regular file (a broken link?)');
  if (file.size > maxFileBytes) throw new DatasetError(file.path, `file of ${file.size} bytes is over the limit of ${maxFileBytes}`);
  try {
    // Checked again on the open file: it may have been replaced since it was listed.
    const fh = await open(file.path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new DatasetError(file.path, 'cannot read: not a regular file');
      if (st.size > maxFileBytes) throw new DatasetError(file.path, `file of ${st.size} bytes is over the limit of ${maxFileBytes}`);
      const buf = await fh.readFile();
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    throw new DatasetError(file.path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

/** The reason of a failure, without the path a DatasetError starts with. */
function reasonOf(err: unknown): string {
  if (err instanceof DatasetError) return err.message.startsWith(`${err.source}: `) ? err.message.slice(err.source.length + 2) : err.message;
  return `cannot decode: ${(err as Error)?.message ?? String(err)}`;
}

/**
 * Decodes a batch: reads its files concurrently, then decodes, converts and resizes them one by
 * one into `planes`. Never rejects for a bad file (see `failures`); rejects on a malformed request.
 */
export async function decodeBatch(req: DecodeRequest): Promise<DecodeReply> {
  const { files, channels, height, width } = req;
  if (!Array.isArray(files) || (channels !== 1 && channels !== 3) || !Number.isInteger(height) || height < 1 || !Number.isInteger(width) || width < 1) {
    throw new RangeError(`decodeBatch: malformed request (${files?.length} files, channels ${channels}, ${height}×${width})`);
  }
  const sampleSize = channels * height * width;
  const planes = new Uint8Array(files.length * sampleSize);
  const failures: DecodeFailure[] = [];
  const histogram = req.histogram ? new Float64Array(256 * channels) : undefined;
  const plane = height * width;
  const maxFileBytes = req.limits.maxFileBytes ?? DEFAULT_IMAGE_LIMITS.maxFileBytes;
  const reads = await Promise.allSettled(files.map((file) => readImageFile(file, maxFileBytes)));
  reads.forEach((read, i) => {
    const path = files[i].path;
    try {
      if (read.status === 'rejected') throw read.reason;
      const img = decodeImage(read.value, path, req.limits);
      const out = resizePlanes(toPlanes(img, channels), channels, img.height, img.width, height, width);
      planes.set(out, i * sampleSize);
      if (histogram) for (let c = 0; c < channels; c++) for (let p = c * plane; p < (c + 1) * plane; p++) histogram[256 * c + out[p]]++;
    } catch (err) {
      failures.push({ index: i, reason: reasonOf(err) });
    }
  });
  return { planes, failures, histogram };
}

/** The buffers of a reply, to transfer rather than copy between threads. */
export function decodeReplyTransfer(reply: DecodeReply): ArrayBuffer[] {
  return [reply.planes.buffer, reply.histogram?.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}
