import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalExecutor, train } from '../src/index.ts';

describe('LeNet-5 on MNIST with the local executor', () => {
  const executor = new LocalExecutor({ threads: 2 });
  let dataDir: string | undefined;
  afterAll(async () => {
    await executor.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('learns: > 90% test accuracy after 150 steps at batch 64 with the default optimizer', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'stride-lenet-'));
    const result = await train({ model: 'lenet5', dataset: 'mnist', steps: 150, evalSamples: 2000 }, { executor, dataDir, jobId: 'lenet' });
    expect(result.status).toBe('succeeded');
    expect(result.testAccuracy).toBeGreaterThan(0.9);
  });
});
