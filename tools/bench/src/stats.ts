// Small helpers shared by the benchmarks: medians, timing windows, the machine description.
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * Best-of-`reps` rate of `fn`: each rep runs it for about `ms` milliseconds of wall time and
 * returns work / CPU second of this process (less disturbed than wall time by other processes on
 * a shared machine; the functions measured here are single-threaded).
 */
export function ratePerCpuSecond(fn: () => void, work: number, ms: number, reps = 3): number {
  for (let i = 0; i < 3; i++) fn(); // JIT tier-up of the JS glue and the WebAssembly functions
  let best = 0;
  for (let r = 0; r < reps; r++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let n = 0;
    do {
      fn();
      n++;
    } while (performance.now() - t0 < ms);
    const cpu = process.cpuUsage(cpu0);
    best = Math.max(best, (work * n) / ((cpu.user + cpu.system) / 1e6));
  }
  return best;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  node: string;
  /** 1-minute load average at the start and the end of the run: how busy the machine was. */
  loadStart: number;
  loadEnd?: number;
}

export function describeMachine(): Machine {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: leave it unknown.
  }
  return { cores: availableParallelism(), cpuModel, node: process.version, loadStart: loadavg()[0] };
}

/** fp32 FMA peak of one core of the reference machine (3.53 GHz × 32 FLOP/cycle, AVX-512). */
export const PEAK_GFLOPS_PER_CORE = 113;

/** The reference machine's CPU (../shared/anchors), whose peak is PEAK_GFLOPS_PER_CORE. */
export const REFERENCE_CPU = /AMD EPYC/;
