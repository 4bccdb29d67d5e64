import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CIFAR10_CLASSES, CIFAR10_FILES, DatasetError, loadCifar10 } from '../src/index.ts';

const RECORD = 3073;

/** `n` records: label (fileIndex + r) mod 10, pixels a function of (file, record, position). */
function batchFile(fileIndex: number, n: number): Uint8Array {
  const out = new Uint8Array(n * RECORD);
  for (let r = 0; r < n; r++) {
    out[r * RECORD] = (fileIndex + r) % 10;
    for (let p = 0; p < 3072; p++) out[r * RECORD + 1 + p] = (p * 7 + r * 13 + fileIndex * 31) & 0xff;
  }
  return out;
}

let root: string;

async function writeSet(dir: string, perFile = 3): Promise<void> {
  await mkdir(dir, { recursive: true });
  const names = [...CIFAR10_FILES.train, ...CIFAR10_FILES.test];
  for (let f = 0; f < names.length; f++) await writeFile(join(dir, names[f]), batchFile(f, perFile));
}

async function rejection(p: Promise<unknown>): Promise<DatasetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatasetError);
  return err as DatasetError;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stride-cifar-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadCifar10', () => {
  it('reads the five train batches in order and the test batch, pixels already CHW', async () => {
    const dir = join(root, 'ok');
    await writeSet(dir);
    const train = await loadCifar10(dir, 'train');
    expect([train.name, train.split, train.count, train.channels, train.height, train.width, train.numClasses]).toEqual(['cifar10', 'train', 15, 3, 32, 32, 10]);
    expect(train.classNames).toEqual(CIFAR10_CLASSES);
    // Sample 7 is record 1 of data_batch_3.bin (file index 2).
    const file = batchFile(2, 3);
    expect(train.labels[7]).toBe(3);
    expect(Array.from(train.images.subarray(7 * 3072, 8 * 3072))).toEqual(Array.from(file.subarray(RECORD + 1, 2 * RECORD)));
    const test = await loadCifar10(dir, 'test');
    expect([test.count, test.labels[0], test.labels[2]]).toEqual([3, 5, 7]);
    expect(train.mean.length).toBe(3);
  });

  it('finds the cifar-10-batches-bin folder of the unpacked tarball and its class names file', async () => {
    const dir = join(root, 'tarball');
    await writeSet(join(dir, 'cifar-10-batches-bin'), 1);
    const names = CIFAR10_CLASSES.map((c) => c.toUpperCase());
    await writeFile(join(dir, 'cifar-10-batches-bin', 'batches.meta.txt'), `${names.join('\n')}\n\n`);
    const test = await loadCifar10(dir, 'test');
    expect(test.count).toBe(1);
    expect(test.classNames).toEqual(names);
  });

  it('names a missing batch file', async () => {
    const dir = join(root, 'missing');
    await writeSet(dir);
    await rm(join(dir, 'data_batch_4.bin'));
    const err = await rejection(loadCifar10(dir, 'train'));
    expect(err.source).toBe(join(dir, 'data_batch_4.bin'));
    expect(err.message).toMatch(/missing/);
    expect((await loadCifar10(dir, 'test')).count).toBe(3);
  });

  it('names a file that is not a whole number of records', async () => {
    const dir = join(root, 'short');
    await writeSet(dir);
    await writeFile(join(dir, 'test_batch.bin'), batchFile(0, 2).subarray(0, 2 * RECORD - 100));
    const err = await rejection(loadCifar10(dir, 'test'));
    expect(err.source).toBe(join(dir, 'test_batch.bin'));
    expect(err.message).toMatch(/6046 bytes is not a whole, non-zero number of 3073-byte records/);
    await writeFile(join(dir, 'test_batch.bin'), new Uint8Array(0));
    expect((await rejection(loadCifar10(dir, 'test'))).message).toMatch(/0 bytes/);
  });

  it('names the file and record of a label outside 0..9', async () => {
    const dir = join(root, 'label');
    await writeSet(dir);
    const bytes = batchFile(1, 3);
    bytes[2 * RECORD] = 10;
    await writeFile(join(dir, 'data_batch_2.bin'), bytes);
    const err = await rejection(loadCifar10(dir, 'train'));
    expect(err.source).toBe(join(dir, 'data_batch_2.bin'));
    expect(err.message).toMatch(/record 2: label 10 is outside/);
  });

  it('refuses a directory that does not exist', async () => {
    const err = await rejection(loadCifar10(join(root, 'nope'), 'train'));
    expect(err.message).toMatch(/does not exist/);
  });
});
