// `--independent`: the same 1-thread LeNet-5 training as the bench's first row, in one process per
// core, all at once. Nothing is shared and nothing waits for anything, so their total is what this
// machine's cores give the workload without any synchronisation: the ceiling of a one-process,
// n-thread run (and of PyTorch's). The gap between it and our n-thread figure is the cost of the
// step's serial parts and of handing shards to threads; the gap between it and n × the 1-thread
// figure is the cores slowing each other (shared caches, memory, clock, or vCPUs that share a
// physical core).
//
// Run as a child: `node --import tsx tools/bench/src/independent.ts <schedule JSON> <batch> <numerics>`
// prints one JSON line { median, windows } (images/s of its timed windows).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SERVICE_NODE_OPTIONS } from '@stride/queue';
import { median } from './stats.ts';
import { type Schedule, setBenchNumerics, trainOneThread } from './training.ts';

/** One run of `processes` simultaneous 1-thread trainings. */
export interface IndependentRun {
  processes: number;
  /** Median images/s of each process. */
  each: number[];
  /** Their sum. */
  total: number;
}

const SELF = fileURLToPath(import.meta.url);

/** Starts `processes` 1-thread trainings at once and waits for all of them. */
export async function benchIndependent(processes: number, batch: number, s: Schedule, numerics: 'exact' | 'fma'): Promise<IndependentRun> {
  const runs = Array.from({ length: processes }, () => runChild([JSON.stringify(s), String(batch), numerics]));
  const each = (await Promise.all(runs)).map((r) => r.median);
  return { processes, each, total: each.reduce((a, b) => a + b, 0) };
}

function runChild(args: string[]): Promise<{ median: number; windows: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...SERVICE_NODE_OPTIONS, '--import', 'tsx', SELF, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => void (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => void (err = (err + c.toString()).slice(-2000)));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`independent training process exited with ${code}: ${err}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as { median: number; windows: number[] });
      } catch {
        reject(new Error(`independent training process printed no result: ${out.slice(-500)} ${err}`));
      }
    });
  });
}

/** Summary lines: the total against our n-thread and n × 1-thread figures. */
export function formatIndependent(runs: readonly IndependentRun[], oneThread: number, nThreads: number): string[] {
  if (runs.length === 0) return [];
  const n = runs[0].processes;
  const total = median(runs.map((r) => r.total));
  const each = runs.map((r) => r.each.map((v) => Math.round(v).toLocaleString('en-US')).join(' + ')).join('; ');
  const lines = [`${n} independent 1-thread trainings at once (one process each, nothing shared): ${Math.round(total).toLocaleString('en-US')} images/s in all (median of ${runs.length}; per run ${each})`];
  if (Number.isFinite(oneThread)) lines.push(`  vs ${n} × the 1-thread figure: ${(total / (n * oneThread)).toFixed(2)} (below 1: the cores slow each other)`);
  if (Number.isFinite(nThreads)) lines.push(`  our ${n}-thread training / this ceiling: ${(nThreads / total).toFixed(2)} (below 1: the step's serial parts and the hand-offs between threads)`);
  return lines;
}

if (process.argv[1] === SELF) {
  const [schedule, batch, numerics] = process.argv.slice(2);
  if (numerics !== 'exact' && numerics !== 'fma') throw new RangeError(`numerics must be exact or fma, got ${numerics}`);
  setBenchNumerics(numerics);
  const run = await trainOneThread(Number(batch), JSON.parse(schedule) as Schedule);
  process.stdout.write(`${JSON.stringify({ median: run.median, windows: run.windows })}\n`);
  process.exit(0);
}
