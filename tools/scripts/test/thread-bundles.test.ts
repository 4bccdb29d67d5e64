import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { THREAD_ENTRIES } from '../src/thread-bundles.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../src/thread-bundles.ts', import.meta.url));

/** The `-thread.ts` modules that the sources start ThreadPools on (`new URL('./x-thread.ts', import.meta.url)`). */
function poolEntries(): string[] {
  const found = new Set<string>();
  for (const top of ['libs', 'apps']) {
    for (const pkg of readdirSync(join(ROOT, top))) {
      const src = join(ROOT, top, pkg, 'src');
      if (!existsSync(src)) continue;
      for (const file of readdirSync(src).filter((f) => f.endsWith('.ts'))) {
        for (const m of readFileSync(join(src, file), 'utf8').matchAll(/new URL\('\.\/([\w-]+-thread\.ts)', import\.meta\.url\)/g)) found.add(`${top}/${pkg}/src/${m[1]}`);
      }
    }
  }
  return [...found].sort();
}

describe('thread-bundles script', () => {
  it('lists every module the sources start threads on', () => {
    expect(poolEntries()).toEqual([...THREAD_ENTRIES].sort());
  });

  it('builds a bundle for each, and says where', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT], { cwd: ROOT, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(' -> ')[0])).toEqual([...THREAD_ENTRIES]);
    for (const line of lines) {
      const bundle = line.split(' -> ')[1];
      expect(existsSync(bundle), bundle).toBe(true);
      expect(basename(bundle)).toMatch(/^[\w-]+-thread-[0-9a-f]{12}\.mjs$/);
    }
  });
});
