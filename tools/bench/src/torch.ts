// The PyTorch reference (tools/bench/torch_lenet.py), run as a separate process with Debian's
// python3-torch. Never run at the same time as our own measurements: PyTorch with 2 threads
// collapses when another process holds a core.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Schedule } from './training.ts';

export interface TorchRun {
  mode: 'train' | 'infer';
  threads: number;
  batch: number;
  windows: number[];
  median: number;
  /** Images per second over the warm-up steps. */
  warmupRate: number;
  torch: string;
  blas: string[];
}

const SCRIPT = fileURLToPath(new URL('../torch_lenet.py', import.meta.url));
const PYTHON = process.env.STRIDE_BENCH_PYTHON ?? '/usr/bin/python3';

/** Why PyTorch cannot run here, or null when it can. */
export function torchUnavailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found (set STRIDE_BENCH_PYTHON)`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
  if (probe.status !== 0) return `${PYTHON} cannot import torch (apt-get install python3-torch): ${probe.stderr.trim().split('\n').pop() ?? ''}`;
  return null;
}

/** One PyTorch measurement; `mnistDir` holds the IDX files. */
export function runTorch(mode: 'train' | 'infer', threads: number, s: Schedule, mnistDir: string): TorchRun {
  const args = [SCRIPT, mode, String(threads), String(s.warmup), String(s.stepsPerWindow), String(s.windows)];
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', env: { ...process.env, MNIST_DIR: mnistDir }, timeout: 900_000 });
  if (r.status !== 0) throw new Error(`torch_lenet.py ${mode} ${threads}: exit ${r.status ?? r.signal}: ${r.stderr.trim().slice(-500)}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as TorchRun;
}
