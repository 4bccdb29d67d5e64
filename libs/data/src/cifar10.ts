// CIFAR-10 in its binary format, for users who have the files (they are not downloaded).
//
// The directory (the one the official tarball `cifar-10-binary.tar.gz` unpacks to,
// `cifar-10-batches-bin/`, or its parent) holds data_batch_1.bin .. data_batch_5.bin (train) and
// test_batch.bin (test). Each file is a sequence of 3073-byte records: one label byte (0..9), then
// 3072 bytes of a 32×32 colour image as three planes R, G, B, rows top to bottom — already the
// CHW layout Stride uses. The official files hold 10 000 records each; any whole number of
// records (≥ 1) is accepted, so smaller files work too. `batches.meta.txt`, when present, names the
// classes (one per line); otherwise the standard names are used.

import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Dataset, Split } from './dataset.ts';
import { DatasetError } from './errors.ts';
import { readBytes } from './files.ts';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
/** The usual per-channel mean and std (of x/255) of CIFAR-10's training set. */
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];

export const CIFAR10_FILES: Readonly<Record<Split, readonly string[]>> = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
};

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;
const RECORD = 1 + PIXELS;
/** Largest batch file accepted: the official files have 10 000 records; allow twice that. */
const MAX_FILE_BYTES = 20_000 * RECORD;

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The directory holding the batch files: `dir` itself or its `cifar-10-batches-bin` subdirectory. */
async function batchDir(dir: string): Promise<string> {
  const root = resolve(dir);
  if (await isFile(join(root, CIFAR10_FILES.test[0]))) return root;
  const sub = join(root, 'cifar-10-batches-bin');
  if (await isFile(join(sub, CIFAR10_FILES.test[0]))) return sub;
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new DatasetError(root, 'CIFAR-10 directory does not exist or is not a directory');
  return root;
}

async function classNames(dir: string): Promise<string[]> {
  const path = join(dir, 'batches.meta.txt');
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return [...CIFAR10_CLASSES];
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (names.length !== 10) throw new DatasetError(path, `expected 10 class names, one per line, found ${names.length}`);
  return names;
}

/** Reads one split of CIFAR-10 from `dir`; every problem names the file. */
export async function loadCifar10(dir: string, split: Split): Promise<Dataset> {
  if (split !== 'train' && split !== 'test') throw new DatasetError(dir, `unknown split "${String(split)}"; expected train or test`);
  const root = await batchDir(dir);
  const parts: { path: string; bytes: Uint8Array }[] = [];
  for (const name of CIFAR10_FILES[split]) {
    const path = join(root, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw new DatasetError(path, `missing: a CIFAR-10 ${split} split needs ${CIFAR10_FILES[split].join(', ')}`);
    if (st.size === 0 || st.size % RECORD !== 0) {
      throw new DatasetError(path, `${st.size} bytes is not a whole, non-zero number of ${RECORD}-byte records (1 label byte + 3072 pixel bytes)`);
    }
    if (st.size > MAX_FILE_BYTES) throw new DatasetError(path, `${st.size} bytes is over the limit of ${MAX_FILE_BYTES} (20 000 records)`);
    const bytes = await readBytes(path);
    if (bytes.length !== st.size) throw new DatasetError(path, `changed while being read (${st.size} bytes, then ${bytes.length})`);
    parts.push({ path, bytes });
  }
  const count = parts.reduce((n, p) => n + p.bytes.length / RECORD, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let k = 0;
  for (const { path, bytes } of parts) {
    for (let r = 0; r < bytes.length / RECORD; r++, k++) {
      const label = bytes[r * RECORD];
      if (label > 9) throw new DatasetError(path, `record ${r}: label ${label} is outside [0, 10)`);
      labels[k] = label;
      images.set(bytes.subarray(r * RECORD + 1, (r + 1) * RECORD), k * PIXELS);
    }
  }
  return {
    name: 'cifar10',
    split,
    count,
    channels: 3,
    height: SIDE,
    width: SIDE,
    numClasses: 10,
    classNames: await classNames(root),
    images,
    labels,
    mean: [...CIFAR10_MEAN],
    std: [...CIFAR10_STD],
  };
}
