// A job on a big image folder: the coordinator decodes it on worker threads, so its HTTP API keeps
// answering while the folder loads. Observed through the load's own progress (the image-folder
// loader's diagnostics channel; the coordinator runs in this process), not through timing.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { IMAGE_FOLDER_PROGRESS_CHANNEL, type ImageFolderProgress } from '@stride/data';
import { makeStack, waitFor, type Stack } from './http-helpers.ts';

const CLASSES = 2;
const PER_CLASS = 1500;
const SIDE = 24;

let stack: Stack | undefined;
let listener: ((m: unknown) => void) | undefined;
afterEach(async () => {
  if (listener) unsubscribe(IMAGE_FOLDER_PROGRESS_CHANNEL, listener);
  listener = undefined;
  await stack?.close();
  stack = undefined;
});

/** `CLASSES × PER_CLASS` small files, PNG and JPEG, a few distinct images written many times. */
async function writeFolder(dir: string): Promise<void> {
  const images = Array.from({ length: 8 }, (_, k) => {
    const rgba = Buffer.alloc(SIDE * SIDE * 4, 255);
    for (let p = 0; p < SIDE * SIDE; p++) rgba.set([(p * 7 + k * 40) & 255, (p >> 2) & 255, k * 30], 4 * p);
    if (k % 2) return { ext: 'jpg', bytes: encodeJpeg({ width: SIDE, height: SIDE, data: rgba }, 90).data };
    const png = new PNG({ width: SIDE, height: SIDE });
    png.data = rgba;
    return { ext: 'png', bytes: PNG.sync.write(png) };
  });
  for (let c = 0; c < CLASSES; c++) {
    await mkdir(join(dir, `class${c}`), { recursive: true });
    for (let i = 0; i < PER_CLASS; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => {
          const { ext, bytes } = images[(i + j + c) % images.length];
          return writeFile(join(dir, `class${c}`, `img${String(i + j).padStart(5, '0')}.${ext}`), bytes);
        }),
      );
    }
  }
}

describe('a job on a big image folder', () => {
  it('is decoded off the event loop: /healthz answers while the folder loads', async () => {
    stack = await makeStack('imgload', { coordinator: { runJobs: true } });
    const folder = join(stack.dataDir, 'datasets', 'many');
    await writeFolder(folder);
    const base = await stack.app.listen({ host: '127.0.0.1', port: 0 });

    const progress: ImageFolderProgress[] = [];
    listener = (m) => {
      if ((m as ImageFolderProgress).root === folder) progress.push(m as ImageFolderProgress);
    };
    subscribe(IMAGE_FOLDER_PROGRESS_CHANNEL, listener);
    const done = (): number => progress.at(-1)?.done ?? 0;
    const total = CLASSES * PER_CLASS;

    const res = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: {
          input: [1, 8, 8],
          layers: [{ type: 'conv2d', outChannels: 2, kernelSize: 3, padding: 1 }, { type: 'relu' }, { type: 'flatten' }, { type: 'linear', outFeatures: CLASSES }],
        },
        dataset: { type: 'image-folder', path: 'many', size: 8, channels: 1 },
        steps: 2,
        batchSize: 4,
        shards: 2,
      }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };

    // Health checks one after the other until the load has ended; each notes how far the load was
    // when its answer arrived.
    await waitFor(() => progress.length > 0, 'the coordinator to start loading the folder', 120_000, 5);
    const answeredAt: number[] = [];
    while (done() < total) {
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      await health.body?.cancel();
      answeredAt.push(done());
    }
    // Answers came in the middle of the load, at several points of it, not only before or after.
    const during = new Set(answeredAt.filter((d) => d > 0 && d < total));
    expect(during.size).toBeGreaterThanOrEqual(2);
    // The folder was decoded on threads, by batches (the main thread only placed their planes).
    expect(progress.every((p) => p.threads >= 1 && p.total === total)).toBe(true);
    expect(progress.length).toBeGreaterThan(2);

    // The job goes on to train (no worker here: it waits for its shards); cancel it.
    await fetch(`${base}/api/jobs/${id}/cancel`, { method: 'POST' });
  });
});
