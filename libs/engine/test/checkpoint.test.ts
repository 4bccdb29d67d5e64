import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  CheckpointStore,
  checkpointFileName,
  decodeCheckpoint,
  encodeCheckpoint,
  normalizeJobSpec,
  type Checkpoint,
  type CheckpointMeta,
} from '../src/index.ts';

const spec = normalizeJobSpec({ model: 'lenet5', dataset: 'mnist', steps: 100 });

function makeCheckpoint(step: number, best?: { step: number; testAccuracy: number }): Checkpoint {
  const meta: CheckpointMeta = {
    kind: 'stride-checkpoint',
    jobId: 'job1',
    spec,
    modelSpec: { input: [1, 28, 28], layers: [{ type: 'flatten' }, { type: 'linear', outFeatures: 10 }] },
    normalization: { mean: [0.1307], std: [0.3081] },
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    step,
    epoch: 0,
    batchIndex: step,
    totalSteps: 100,
    stepsPerEpoch: 938,
    optimizerStepCount: step,
    evals: [],
    best,
    elapsedMs: step * 10,
    paramsSha256: 'x'.repeat(64),
    createdAt: new Date(0).toISOString(),
  };
  return {
    meta,
    params: [{ name: 'fc1.weight', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, step]) }],
    buffers: [],
    optimizerState: [{ name: 'fc1.weight.exp_avg', shape: [2, 3], data: new Float32Array(6).fill(0.5) }],
  };
}

let dir: string;
const warnings: string[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stride-ckpt-'));
  warnings.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkpoint format', () => {
  it('round-trips parameters, buffers, optimizer state and meta', () => {
    const ckpt = makeCheckpoint(7);
    const back = decodeCheckpoint(encodeCheckpoint(ckpt));
    expect(back.meta).toEqual(ckpt.meta);
    expect(back.params).toEqual(ckpt.params);
    expect(back.optimizerState).toEqual(ckpt.optimizerState);
    expect(back.buffers).toEqual([]);
  });

  it('stores the SHA-256 of the payload in the header, as WebCrypto computes it', async () => {
    const bytes = encodeCheckpoint(makeCheckpoint(1));
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('STRDCKPT');
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes.slice(48)));
    expect(Array.from(bytes.subarray(16, 48))).toEqual(Array.from(digest));
  });

  it.each([
    ['a flipped payload byte', (b: Uint8Array) => ((b[b.length - 3] ^= 0x40), b), /checksum mismatch/],
    ['a flipped checksum byte', (b: Uint8Array) => ((b[20] ^= 1), b), /checksum mismatch/],
    ['a truncated file', (b: Uint8Array) => b.subarray(0, b.length - 10), /checksum mismatch/],
    ['a file shorter than the header', (b: Uint8Array) => b.subarray(0, 20), /truncated: 20 bytes/],
    ['another format', (b: Uint8Array) => ((b[0] = 0x41), b), /not a Stride checkpoint/],
  ])('detects %s', (_title, damage, message) => {
    const bytes = damage(encodeCheckpoint(makeCheckpoint(1)).slice());
    expect(() => decodeCheckpoint(bytes, 'f.ckpt')).toThrow(CheckpointError);
    expect(() => decodeCheckpoint(bytes, 'f.ckpt')).toThrow(message);
  });

  it('rejects a checksummed file whose meta is not a valid job spec', () => {
    const bad = makeCheckpoint(1);
    const bytes = encodeCheckpoint({ ...bad, meta: { ...bad.meta, spec: { ...bad.meta.spec, batchSize: 0 } } });
    expect(() => decodeCheckpoint(bytes, 'f.ckpt')).toThrow(/f\.ckpt: meta\.spec is not a valid job spec: batchSize: must be an integer/);
  });
});

describe('CheckpointStore', () => {
  it('writes atomically: the final name appears complete, no temp file remains', async () => {
    const store = new CheckpointStore(dir);
    const { file } = await store.write(makeCheckpoint(5));
    expect(file).toBe(join(dir, checkpointFileName(5)));
    expect(await readdir(dir)).toEqual(['step-00000005.ckpt']);
    expect(decodeCheckpoint(new Uint8Array(await readFile(file))).meta.step).toBe(5);
  });

  it('removes temp files an interrupted write left behind', async () => {
    await writeFile(join(dir, '.step-00000009.ckpt.123.tmp'), 'half a checkpoint');
    const store = new CheckpointStore(dir, { onWarning: (m) => warnings.push(m) });
    expect(await store.list()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
    expect(warnings[0]).toMatch(/interrupted checkpoint write/);
  });

  it('keeps the newest K plus the best', async () => {
    const store = new CheckpointStore(dir, { keep: 2 });
    const best = { step: 2, testAccuracy: 0.9 };
    for (const step of [1, 2, 3, 4, 5, 6]) await store.write(makeCheckpoint(step, step >= 2 ? best : undefined));
    expect((await store.list()).map((e) => e.step)).toEqual([2, 5, 6]);
    // A new best: the old best goes once it is out of the newest K.
    await store.write(makeCheckpoint(7, { step: 7, testAccuracy: 0.95 }));
    expect((await store.list()).map((e) => e.step)).toEqual([6, 7]);
  });

  it('falls back to the previous checkpoint when the newest is corrupt, with a warning', async () => {
    const store = new CheckpointStore(dir, { onWarning: (m) => warnings.push(m) });
    await store.write(makeCheckpoint(1));
    await store.write(makeCheckpoint(2));
    const { file } = await store.write(makeCheckpoint(3));
    const bytes = new Uint8Array(await readFile(file));
    await writeFile(file, bytes.subarray(0, bytes.length - 100)); // torn write
    const latest = await store.loadLatest();
    expect(latest?.meta.step).toBe(2);
    expect(warnings.join('\n')).toMatch(/step-00000003\.ckpt is corrupt.*checksum mismatch/);
    // Set aside, never loaded again.
    expect((await readdir(dir)).sort()).toEqual(['step-00000001.ckpt', 'step-00000002.ckpt', 'step-00000003.ckpt.corrupt']);
  });

  it('returns undefined when no checkpoint verifies', async () => {
    const store = new CheckpointStore(dir, { onWarning: (m) => warnings.push(m) });
    expect(await store.loadLatest()).toBeUndefined();
    await writeFile(join(dir, checkpointFileName(4)), 'garbage');
    expect(await store.loadLatest()).toBeUndefined();
    expect(warnings).toHaveLength(1);
  });
});
