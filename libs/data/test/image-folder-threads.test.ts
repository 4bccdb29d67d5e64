// The image-folder loader's decoding threads: the dataset's bytes do not depend on the pool (nor on
// having one), errors and skipped files are the same, and no thread outlives a load.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, IMAGE_FOLDER_PROGRESS_CHANNEL, loadImageFolder, type ImageFolderDataset, type ImageFolderOptions, type ImageFolderProgress } from '../src/index.ts';
import { gradientRgb, jpegBytes, pngBomb, pngBytes } from './image-fixtures.ts';

let root: string;
/** A train/test folder of PNG (grey, RGB, RGBA) and JPEG files of several sizes, shrunk and grown. */
let clean: string;
/** The same with bad files: a truncated PNG in train/b, a bomb in train/c, text as JPEG in train/a (first in sample order). */
let bad: string;
let copies = 0;

const CLASSES = ['a', 'b', 'c'];
const SIDES: [number, number][] = [
  [20, 30],
  [40, 40],
  [10, 12],
  [16, 16],
];

/** One of four kinds of file, of one of four sizes, with a pattern that depends on `seed`. */
function imageFile(seed: number): { name: string; bytes: Uint8Array } {
  const [h, w] = SIDES[seed % SIDES.length];
  const rgb = gradientRgb(w, h, seed);
  for (let p = 0; p < rgb.length; p += 5) rgb[p] = (rgb[p] * 7 + seed * 31) & 255;
  const stem = `img${String(seed).padStart(4, '0')}`;
  switch (seed % 4) {
    case 0:
      return { name: `${stem}.png`, bytes: pngBytes(w, h, 1, rgb.filter((_, i) => i % 3 === 0)) };
    case 1:
      return { name: `${stem}.${seed % 8 === 1 ? 'jpg' : 'jpeg'}`, bytes: jpegBytes(w, h, rgb, 85) };
    case 2:
      return { name: `${stem}.png`, bytes: pngBytes(w, h, 3, rgb) };
    default: {
      const rgba = new Uint8Array(w * h * 4);
      for (let i = 0; i < w * h; i++) rgba.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], (i * 13) & 255], 4 * i);
      return { name: `${stem}.png`, bytes: pngBytes(w, h, 4, rgba) };
    }
  }
}

async function writeFolder(dir: string, perClass: { train: number; test: number }): Promise<void> {
  let seed = 0;
  for (const split of ['train', 'test'] as const) {
    for (const cls of CLASSES) {
      await mkdir(join(dir, split, cls), { recursive: true });
      for (let i = 0; i < perClass[split]; i++) {
        const { name, bytes } = imageFile(seed++);
        await writeFile(join(dir, split, cls, name), bytes);
      }
    }
  }
}

/** A fresh copy of `dir`: loads are cached per folder, and the pool size is not part of the cache key. */
async function copyOf(dir: string): Promise<string> {
  const to = join(root, `copy-${copies++}`);
  await cp(dir, to, { recursive: true });
  return to;
}

/** Everything of a load but its root (the copies differ only there). */
function contents(ds: ImageFolderDataset): unknown {
  const rel = (p: string) => p.slice(ds.root.length);
  return { layout: ds.layout, train: ds.train, test: ds.test, ignored: ds.ignored, skipped: { count: ds.skipped.count, files: ds.skipped.files.map((f) => ({ ...f, path: rel(f.path) })) } };
}

/** The OS threads of this process (Linux). */
function osThreads(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

/** Runs `fn`, collecting the progress messages of the loads of folders under `under`. */
async function withProgress<T>(under: string, fn: () => Promise<T>, onMessage?: (m: ImageFolderProgress) => void): Promise<{ value?: T; error?: unknown; messages: ImageFolderProgress[] }> {
  const messages: ImageFolderProgress[] = [];
  const listener = (m: unknown): void => {
    const p = m as ImageFolderProgress;
    if (!p.root.startsWith(under)) return;
    messages.push(p);
    onMessage?.(p);
  };
  subscribe(IMAGE_FOLDER_PROGRESS_CHANNEL, listener);
  try {
    return { value: await fn(), messages };
  } catch (error) {
    return { error, messages };
  } finally {
    unsubscribe(IMAGE_FOLDER_PROGRESS_CHANNEL, listener);
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stride-decode-threads-'));
  clean = join(root, 'clean');
  await writeFolder(clean, { train: 40, test: 9 });
  bad = join(root, 'bad');
  await cp(clean, bad, { recursive: true });
  const truncated = imageFile(2).bytes;
  await writeFile(join(bad, 'train', 'b', 'img0050-truncated.png'), truncated.subarray(0, truncated.length - 30));
  await writeFile(join(bad, 'train', 'c', 'img0001-bomb.png'), pngBomb(50_000));
  await writeFile(join(bad, 'train', 'a', 'img9999-text.jpg'), 'this is not a JPEG');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadImageFolder on decoding threads', () => {
  it('gives the same bytes with 1, 2 or 3 threads as in the calling thread', async () => {
    for (const [options, pools] of [
      [{ size: [24, 18], channels: 3 }, [1, 2, 3]],
      [{ size: [8, 8], channels: 1 }, [2]],
    ] as [ImageFolderOptions, number[]][]) {
      const inThread = await withProgress(root, async () => loadImageFolder(await copyOf(clean), { ...options, threads: 0 }));
      expect(inThread.messages.at(-1)).toMatchObject({ done: 147, total: 147, threads: 0 });
      const reference = contents(inThread.value!);
      expect(inThread.value!.train.count).toBe(120);
      for (const threads of pools) {
        const run = await withProgress(root, async () => loadImageFolder(await copyOf(clean), { ...options, threads }));
        expect(run.messages.at(-1)).toMatchObject({ done: 147, total: 147, threads });
        expect(contents(run.value!)).toEqual(reference);
      }
    }
  });

  it('defaults to one thread per 256 files, at most one per core and 8', async () => {
    const run = await withProgress(root, async () => loadImageFolder(await copyOf(clean)));
    expect(run.messages.at(-1)?.threads).toBe(Math.min(availableParallelism(), 1));
  });

  it('names the first bad file in sample order, whatever the pool', async () => {
    for (const threads of [0, 1, 3]) {
      const { error } = await withProgress(root, async () => loadImageFolder(await copyOf(bad), { size: [10, 10], threads }));
      expect(error).toBeInstanceOf(DatasetError);
      const err = error as DatasetError;
      expect(err.source.endsWith(join('train', 'a', 'img9999-text.jpg'))).toBe(true);
      expect(err.message).toBe(`${err.source}: not a PNG or JPEG file (unrecognised signature)`);
    }
  });

  it('skips and reports the same bad files, bomb refused by its header, whatever the pool', async () => {
    const loads = [];
    for (const threads of [0, 1, 3]) loads.push(contents(await loadImageFolder(await copyOf(bad), { size: [10, 10], skipBadFiles: true, threads })));
    const first = loads[0] as ReturnType<typeof contents> & { skipped: ImageFolderDataset['skipped']; train: { count: number } };
    expect(first.skipped.count).toBe(3);
    expect(first.train.count).toBe(120);
    const reasons = Object.fromEntries(first.skipped.files.map((f) => [f.path, f.reason]));
    expect(reasons[join('/train', 'a', 'img9999-text.jpg')]).toMatch(/not a PNG or JPEG/);
    expect(reasons[join('/train', 'b', 'img0050-truncated.png')]).toMatch(/truncated PNG|corrupt/);
    expect(reasons[join('/train', 'c', 'img0001-bomb.png')]).toMatch(/declares 50000×50000 pixels.*refused before decoding/);
    for (const other of loads.slice(1)) expect(other).toEqual(first);
  });

  it('loses only the file that kills its decoding thread, not the rest of its batch', async () => {
    const reference = contents(await loadImageFolder(await copyOf(clean), { size: [10, 10], threads: 0 }));
    const dir = await copyOf(clean);
    // A readable image, but the decoding threads die on it (test hook: as on a decoder crash).
    await writeFile(join(dir, 'train', 'b', 'img0042-crash.png'), imageFile(3).bytes);
    process.env.STRIDE_TEST_DECODE_CRASH = 'img0042-crash.png';
    try {
      for (const threads of [1, 3]) {
        const ds = await loadImageFolder(await copyOf(dir), { size: [10, 10], skipBadFiles: true, threads });
        expect(ds.skipped.files.map((f) => f.path.slice(ds.root.length))).toEqual([join('/train', 'b', 'img0042-crash.png')]);
        expect(ds.skipped.files[0].reason).toMatch(/cannot decode: thread stride-decode-\d+ died: exit code 70/);
        // Every other file of its batch (16 files) was decoded: the same samples as the clean folder's.
        expect({ ...(contents(ds) as object), skipped: undefined }).toEqual({ ...(reference as object), skipped: undefined });
        const { error } = await withProgress(root, async () => loadImageFolder(await copyOf(dir), { size: [10, 10], threads }));
        expect((error as DatasetError).source.endsWith(join('train', 'b', 'img0042-crash.png'))).toBe(true);
      }
    } finally {
      delete process.env.STRIDE_TEST_DECODE_CRASH;
    }
  });

  it('refuses a bad thread count, naming the option', async () => {
    for (const threads of [-1, 1.5, 1000, Number.NaN]) {
      await expect(loadImageFolder(clean, { threads })).rejects.toThrow(/threads must be an integer in \[0, 256\], got/);
    }
  });

  it.runIf(existsSync('/proc/self/status'))('terminates its threads when the load ends, and when it fails', async () => {
    await loadImageFolder(await copyOf(clean), { size: [6, 6], threads: 0 }); // whatever the first file reads start
    const before = osThreads();
    for (const [dir, options] of [
      [clean, { size: [7, 7], threads: 3 }],
      [bad, { size: [7, 7], threads: 3 }],
    ] as const) {
      let during = 0;
      const run = await withProgress(root, async () => loadImageFolder(await copyOf(dir), options), () => (during = Math.max(during, osThreads())));
      expect(run.messages.length).toBeGreaterThan(0);
      expect(during).toBeGreaterThanOrEqual(before + 3); // the pool's threads were running...
      expect(osThreads()).toBe(before); // ...and are gone once the load has settled
      if (dir === bad) expect(run.error).toBeInstanceOf(DatasetError);
      else expect(run.value?.train.count).toBe(120);
    }
  });
});
