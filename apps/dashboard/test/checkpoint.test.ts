import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildModel, encodeNamedArrays, getZooSpec, type NamedArray } from '@stride/cnn';
import { readCheckpoint, sha256 } from '../src/ui/checkpoint.ts';

/**
 * A checkpoint file written from the engine's documented layout (libs/engine checkpoint-format.ts),
 * independently of the engine's encoder (which this browser project may not import): "STRDCKPT",
 * uint32 LE version 1, 4 reserved bytes, SHA-256 of the payload, payload.
 */
function checkpointBytes(meta: Record<string, unknown>, params: readonly NamedArray[], buffers: readonly NamedArray[] = []): Uint8Array {
  const payload = encodeNamedArrays(
    [...params.map((p) => ({ name: `param/${p.name}`, shape: p.shape, data: p.data })), ...buffers.map((b) => ({ name: `buffer/${b.name}`, shape: b.shape, data: b.data }))],
    meta,
  );
  const out = new Uint8Array(48 + payload.length);
  out.set(new TextEncoder().encode('STRDCKPT'), 0);
  new DataView(out.buffer).setUint32(8, 1, true);
  out.set(createHash('sha256').update(payload).digest(), 16);
  out.set(payload, 48);
  return out;
}

describe('sha256 (the fallback for pages without crypto.subtle)', () => {
  for (const length of [0, 1, 55, 56, 63, 64, 65, 1000]) {
    it(`matches node:crypto for ${length} bytes`, () => {
      const bytes = new Uint8Array(length).map((_, i) => (i * 31 + 7) & 255);
      expect(Buffer.from(sha256(bytes)).toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    });
  }
});

describe('readCheckpoint', () => {
  const spec = getZooSpec('lenet5');
  const trained = buildModel(spec, { seed: 7 });
  const meta = {
    kind: 'stride-checkpoint',
    jobId: 'job-1',
    modelSpec: spec,
    normalization: { mean: [0.1307], std: [0.3081] },
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    step: 10,
  };
  const bytes = checkpointBytes(meta, trained.params);
  /** The message readCheckpoint refuses `file` with ('' when it reads it). */
  const refusal = (file: Uint8Array): Promise<string> =>
    readCheckpoint(file, 'ckpt').then(
      () => '',
      (err: Error) => err.message,
    );

  it('rebuilds the model with the stored parameters, bit for bit', async () => {
    const { model, meta: m } = await readCheckpoint(bytes, 'ckpt');
    expect(m.jobId).toBe('job-1');
    expect(model.params.map((p) => p.name)).toEqual(trained.params.map((p) => p.name));
    model.params.forEach((p, i) => expect(Buffer.from(p.data.buffer).equals(Buffer.from(trained.params[i].data.buffer))).toBe(true));
  });

  it('refuses a file whose payload was altered, naming the checksum', async () => {
    const bad = bytes.slice();
    bad[bad.length - 1] ^= 1;
    await expect(readCheckpoint(bad, 'ckpt')).rejects.toThrow(/ckpt: checksum mismatch/);
  });

  it('refuses normalization that does not fit the model, naming the field', async () => {
    const bad = (normalization: unknown): Promise<string> => refusal(checkpointBytes({ ...meta, normalization }, trained.params));
    expect(await bad(undefined)).toBe('ckpt: meta.normalization must be { mean, std }, got nothing');
    expect(await bad({ mean: [0.1, 0.2, 0.3], std: [0.3] })).toBe('ckpt: meta.normalization.mean must hold 1 number, one per input channel of the model, got 3 values');
    expect(await bad({ mean: [0.1], std: 0.3 })).toBe('ckpt: meta.normalization.std must hold 1 number, one per input channel of the model, got 0.3');
    expect(await bad({ mean: [null], std: [0.3] })).toBe('ckpt: meta.normalization.mean[0] must be a finite number, got null'); // NaN, as JSON writes it
    expect(await bad({ mean: ['0.1'], std: [0.3] })).toBe('ckpt: meta.normalization.mean[0] must be a finite number, got "0.1"');
    expect(await bad({ mean: [0.1], std: [0] })).toBe('ckpt: meta.normalization.std[0] must be a finite number > 0, got 0');
    expect(await bad({ mean: [0.1], std: [-1] })).toBe('ckpt: meta.normalization.std[0] must be a finite number > 0, got -1');
    expect(await bad({ mean: [Number.POSITIVE_INFINITY], std: [1] })).toBe('ckpt: meta.normalization.mean[0] must be a finite number, got null'); // Infinity
  });

  it('refuses class names that do not fit the model: one per class, strings of 1 to 255 characters', async () => {
    const bad = (classNames: unknown): Promise<string> => refusal(checkpointBytes({ ...meta, classNames }, trained.params));
    expect(await bad(meta.classNames.slice(0, 9))).toBe('ckpt: meta.classNames must hold 10 names, one per class of this classification model (output 10), got 9 values');
    expect(await bad([...meta.classNames, '10'])).toMatch(/must hold 10 names, .* got 11 values$/);
    expect(await bad(undefined)).toMatch(/must hold 10 names, .* got nothing$/);
    expect(await bad('0123456789')).toMatch(/must hold 10 names, .* got "0123456789"$/);
    expect(await bad([...meta.classNames.slice(0, 9), 9])).toBe('ckpt: meta.classNames[9] must be a string of 1 to 255 characters, got 9');
    expect(await bad([...meta.classNames.slice(0, 9), ''])).toBe('ckpt: meta.classNames[9] must be a string of 1 to 255 characters, got ""');
    expect(await bad([...meta.classNames.slice(0, 9), 'x'.repeat(256)])).toBe('ckpt: meta.classNames[9] must be a string of 1 to 255 characters, got a string of 256 characters');
    expect(await bad([{ name: 'cat' }, ...meta.classNames.slice(1)])).toBe('ckpt: meta.classNames[0] must be a string of 1 to 255 characters, got an object');
    // The longest name accepted.
    const { meta: ok } = await readCheckpoint(checkpointBytes({ ...meta, classNames: [...meta.classNames.slice(0, 9), 'x'.repeat(255)] }, trained.params), 'ckpt');
    expect(ok.classNames[9]).toHaveLength(255);
  });

  it('counts the classes of the vision models from their output: segmentation may leave the background unnamed', async () => {
    const digits = meta.classNames;
    const vision = async (zoo: string, opts: Record<string, number>, dataset: string, classNames: readonly string[]): Promise<string> => {
      const modelSpec = getZooSpec(zoo, opts);
      const m = buildModel(modelSpec, { seed: 1 });
      const bytes = checkpointBytes({ ...meta, spec: { dataset }, modelSpec, classNames }, m.params, m.buffers);
      return (await refusal(bytes)) || `ok ${classNames.length}`;
    };
    const unet = { height: 16, width: 16, numClasses: 11, depth: 2 };
    expect(await vision('unet', unet, 'mnist-segmentation', ['background', ...digits])).toBe('ok 11');
    expect(await vision('unet', unet, 'mnist-segmentation', digits)).toBe('ok 10');
    expect(await vision('unet', unet, 'mnist-segmentation', digits.slice(1))).toBe('ckpt: meta.classNames must hold 11 or 10 names, one per class of this segmentation model (output 11×16×16), got 9 values');
    const yolo = { height: 32, width: 32, numClasses: 3, gridSize: 4 };
    expect(await vision('yolo', yolo, 'mnist-detection', ['a', 'b', 'c'])).toBe('ok 3');
    expect(await vision('yolo', yolo, 'mnist-detection', digits)).toBe('ckpt: meta.classNames must hold 3 names, one per class of this detection model (output 8×4×4), got 10 values');
    const localizer = { height: 64, width: 64, numClasses: 10 };
    expect(await vision('localizer', localizer, 'mnist-localization', digits)).toBe('ok 10');
    expect(await vision('localizer', localizer, 'mnist-localization', digits.slice(0, 4))).toBe('ckpt: meta.classNames must hold 10 names, one per class of this localization model (output 14), got 4 values');
  });

  it('refuses something that is not a checkpoint', async () => {
    await expect(readCheckpoint(new TextEncoder().encode('x'.repeat(64)), 'file.png')).rejects.toThrow(/file.png: not a Stride checkpoint/);
    await expect(readCheckpoint(new Uint8Array(10), 'tiny')).rejects.toThrow(/tiny: truncated: 10 bytes/);
  });
});
