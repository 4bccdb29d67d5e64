// Hostile input at the CLI (issue 7): job ids with ../ never become paths, names with terminal
// escapes are refused, and a tampered checkpoint is reported, never read. Usage errors exit 2.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, tempDirPerTest } from './run-cli.ts';

const tmp = tempDirPerTest('stride-cli-hostile-');

describe('stride CLI: hostile input', () => {
  it.each(['../../evil', '..', '.hidden', 'a/b', 'a\\b', 'x'.repeat(129), 'nul\u0000byte'])('train --job-id %j: exit 2, no file written anywhere', async (jobId) => {
    const out = join(tmp.path, 'data', 'out');
    const r = await run('train', '--local', '--model', 'lenet5', '--steps', '1', '--batch-size', '8', '--shards', '2', '--out', out, '--job-id', jobId);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/jobId: must be 1-128 characters/);
    expect(await readdir(tmp.path)).toEqual([]);
  });

  it.each(['../x', '.x', 'a/b'])('submit --job-id %j: exit 2 before Redis is touched', async (jobId) => {
    const prev = process.env.REDIS_URL;
    process.env.REDIS_URL = 'redis://127.0.0.1:9'; // nothing listens: a Redis call would fail differently
    try {
      const r = await run('submit', '--model', 'lenet5', '--steps', '1', '--job-id', jobId);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--job-id: must be 1-128 characters/);
    } finally {
      if (prev === undefined) delete process.env.REDIS_URL;
      else process.env.REDIS_URL = prev;
    }
  });

  it('a job name with a terminal escape: exit 2 naming the character', async () => {
    const r = await run('train', '--local', '--model', 'lenet5', '--steps', '1', '--out', join(tmp.path, 'o'), '--name', 'a\u001b[2Jb');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/name: must not contain control or bidirectional-override characters, found U\+001B at 1/);
  });

  it.each([
    ['random bytes', () => Uint8Array.from({ length: 300 }, (_, i) => (i * 151) & 255), /not a Stride checkpoint/],
    ['a checkpoint header with a forged payload', () => new Uint8Array([...new TextEncoder().encode('STRDCKPT'), 1, 0, 0, 0, 0, 0, 0, 0, ...new Uint8Array(32), 1, 2, 3]), /checksum mismatch/],
    ['an empty file', () => new Uint8Array(0), /truncated: 0 bytes/],
  ])('checkpoint inspect on %s: exit 1 with the reason, nothing printed as metadata', async (_title, bytes, message) => {
    const file = join(tmp.path, 'x.ckpt');
    await writeFile(file, bytes());
    const r = await run('checkpoint', 'inspect', file, '--json');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(file);
    expect(r.stdout).toBe('');
  });
});
