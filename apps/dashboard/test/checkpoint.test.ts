import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildModel, encodeNamedArrays, getZooSpec, type NamedArray } from '@stride/cnn';
import { readCheckpoint, sha256 } from '../src/ui/checkpoint.ts';

/**
 * A checkpoint file written from the engine's documented layout (libs/engine checkpoint-format.ts),
 * independently of the engine's encoder (which this browser project may not import): "STRDCKPT",
 * uint32 LE version 1, 4 reserved bytes, SHA-256 of the payload, payload.
 */
function checkpointBytes(meta: Record<string, unknown>, params: readonly NamedArray[]): Uint8Array {
  const payload = encodeNamedArrays(
    params.map((p) => ({ name: `param/${p.name}`, shape: p.shape, data: p.data })),
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

  it('refuses something that is not a checkpoint', async () => {
    await expect(readCheckpoint(new TextEncoder().encode('x'.repeat(64)), 'file.png')).rejects.toThrow(/file.png: not a Stride checkpoint/);
    await expect(readCheckpoint(new Uint8Array(10), 'tiny')).rejects.toThrow(/tiny: truncated: 10 bytes/);
  });
});
