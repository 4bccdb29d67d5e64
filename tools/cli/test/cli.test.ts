import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SERVICE_NODE_OPTIONS } from '@stride/queue';
import { run, tempDirPerTest } from './run-cli.ts';

const BIN = fileURLToPath(new URL('../bin/stride.js', import.meta.url));

const tmp = tempDirPerTest('stride-cli-');

describe('stride CLI', () => {
  it.each([
    [['train', '--local', '--model', 'lenet5', '--lr', 'abc'], /--lr.*expected a finite number > 0, got "abc"/],
    [['train', '--local', '--model', 'lenet5', '--batch-size', '0'], /--batch-size.*expected an integer in \[1,/],
    [['train', '--local', '--model', 'lenet5', '--epochs', '1', '--steps', '5'], /either --epochs or --steps/],
    [['train', '--local', '--model', 'lenet5', '--batch-size', '4', '--shards', '5'], /shards: must be an integer in \[1, 4\], got 5/],
    [['train', '--local', '--model', 'nosuchnet'], /unknown zoo model "nosuchnet"/],
    [['train', '--local', '--dataset', 'mnist'], /--model is required/],
    [['train', '--model', 'lenet5'], /needs --local/],
    [['train', '--local', '--model', 'lenet5', '--schedule', 'sometimes'], /Allowed choices are constant, cosine, onecycle/],
    [['frobnicate'], /unknown command/],
  ])('%j exits with code 2 and says why', async (args, message) => {
    const { code, stderr } = await run(...args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it('trains with --local, prints the result as JSON, and inspects the checkpoint', async () => {
    const model = join(tmp.path, 'model.json');
    await writeFile(model, JSON.stringify({ input: [1, 28, 28], layers: [{ type: 'conv2d', outChannels: 2, kernelSize: 4, stride: 4 }, { type: 'relu' }, { type: 'flatten' }, { type: 'linear', outFeatures: 10 }] }));
    const out = join(tmp.path, 'out');
    const trained = await run('train', '--local', '--model', model, '--steps', '4', '--batch-size', '16', '--shards', '2', '--eval-samples', '300', '--threads', '1', '--optimizer', 'sgd', '--lr', '0.1', '--schedule', 'constant', '--out', out, '--job-id', 'cli', '--json');
    expect(trained.code, trained.stderr).toBe(0);
    const result = JSON.parse(trained.stdout.trim());
    expect(result).toMatchObject({ status: 'succeeded', steps: 4, jobId: 'cli' });
    expect(result.paramsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(result.testAccuracy).toBeGreaterThanOrEqual(0);
    expect(result.spec.optimizer).toMatchObject({ type: 'sgd', lr: 0.1 });
    expect(trained.stderr).toMatch(/step 4\/4 100\.0%/);
    expect(trained.stderr).toMatch(/test accuracy/);

    const file = join(out, 'jobs', 'cli', 'checkpoints', 'step-00000004.ckpt');
    const inspected = await run('checkpoint', 'inspect', file, '--json');
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ checksum: 'ok', step: 4, totalSteps: 4, jobId: 'cli', paramsSha256: result.paramsSha256 });
    const text = await run('checkpoint', 'inspect', file);
    expect(text.stdout).toMatch(/checksum ok/);
    expect(text.stdout).toMatch(/step 4\/4/);

    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(file, bytes);
    const corrupt = await run('checkpoint', 'inspect', file);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/checksum mismatch/);
  });

  it('the bin exits with code 2 on a bad flag', async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'train', '--local', '--model', 'lenet5', '--seed', '-3'], (error, _stdout, stderr) => resolve({ code: error ? (error as { code?: number }).code ?? null : 0, stderr }));
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/--seed/);
  });

  it('starts through its shebang (as npx does) with the node options of the services', async () => {
    const shebang = (await readFile(BIN, 'utf8')).split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${SERVICE_NODE_OPTIONS.join(' ')}`);
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(BIN, ['--help'], (error, out) => resolve({ code: error ? (error as { code?: number }).code ?? null : 0, stdout: out }));
    });
    expect(code).toBe(0);
    expect(stdout).toMatch(/Usage: stride/);
  });

  it('docker-compose.yml, the Dockerfile and `npm run bench` start Node with the node options of the services', async () => {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const want = ['node', ...SERVICE_NODE_OPTIONS, '--import', 'tsx'];
    const commands = [...(await readFile(join(root, 'docker-compose.yml'), 'utf8')).matchAll(/^\s*command: (\[.*\])$/gm)].map((m) => JSON.parse(m[1]) as string[]).filter((c) => c.some((a) => /^apps\/(coordinator|worker)\//.test(a)));
    const cmd = /^CMD (\[.*\])$/m.exec(await readFile(join(root, 'Dockerfile'), 'utf8'));
    const bench = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.bench.split(' ');
    expect(commands).toHaveLength(2);
    for (const c of [...commands, JSON.parse(cmd![1]) as string[], bench]) expect(c.slice(0, want.length)).toEqual(want);
  });
});
