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
 * `ours[i] / theirs[i]` for each repetition both have, formatted with two decimals and joined by
 * commas ('-' where a figure is missing or not finite). On a shared machine the spread of these
 * paired ratios says how far the ratio of the medians can be trusted.
 */
export function pairedRatios(ours: readonly number[], theirs: readonly number[]): string {
  const n = Math.min(ours.length, theirs.length);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = ours[i] / theirs[i];
    out.push(Number.isFinite(r) && r > 0 ? r.toFixed(2) : '-');
  }
  return out.join(', ');
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
  /** From /proc/cpuinfo, when there is one: "model name" alone does not tell EPYC generations apart. */
  cpu?: CpuId;
  node: string;
  /** 1-minute load average at the start and the end of the run: how busy the machine was. */
  loadStart: number;
  loadEnd?: number;
}

export interface CpuId {
  family: number;
  model: number;
  /** The clock /proc/cpuinfo reports (in a VM, the host's nominal one). */
  mhz: number;
  avx512: boolean;
  /** AVX2 with FMA: 2 × 8-wide fused multiply-adds per cycle on the AMD and Intel cores seen here. */
  avx2Fma: boolean;
}

/** Parses the first processor of a /proc/cpuinfo text. */
export function parseCpuInfo(text: string): { cpuModel: string; cpu?: CpuId } {
  const field = (name: string): string | undefined => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim();
  const cpuModel = field('model name') ?? 'unknown';
  const family = Number(field('cpu family'));
  const model = Number(field('model'));
  const mhz = Number(field('cpu MHz'));
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  if (![family, model, mhz].every(Number.isFinite)) return { cpuModel };
  return { cpuModel, cpu: { family, model, mhz, avx512: flags.has('avx512f'), avx2Fma: flags.has('avx2') && flags.has('fma') } };
}

export function describeMachine(): Machine {
  let info: ReturnType<typeof parseCpuInfo> = { cpuModel: 'unknown' };
  try {
    info = parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // Not Linux: leave it unknown.
  }
  return { cores: availableParallelism(), ...info, node: process.version, loadStart: loadavg()[0] };
}

/** "AMD EPYC, family 25 model 1, 2445 MHz, AVX2+FMA". */
export function cpuLabel(m: Machine): string {
  if (!m.cpu) return m.cpuModel;
  const c = m.cpu;
  return `${m.cpuModel}, family ${c.family} model ${c.model}, ${Math.round(c.mhz)} MHz, ${c.avx512 ? 'AVX-512' : c.avx2Fma ? 'AVX2+FMA' : 'no AVX2+FMA'}`;
}

/** fp32 FMA peak of one core of the reference machine (3.53 GHz × 32 FLOP/cycle, AVX-512). */
export const PEAK_GFLOPS_PER_CORE = 113;

/**
 * The reference machine's CPU (../shared/anchors: AMD EPYC Zen 4, family 25 from model 0x10 on,
 * with AVX-512), whose peak is PEAK_GFLOPS_PER_CORE. Zen 3 EPYCs (family 25 below model 0x10, no
 * AVX-512) have the same model name.
 */
export function isReferenceCpu(m: Machine): boolean {
  return /AMD EPYC/.test(m.cpuModel) && (m.cpu === undefined || (m.cpu.family === 25 && m.cpu.model >= 0x10 && m.cpu.avx512));
}

/**
 * fp32 FLOP per cycle of one core, from its family and flags: 64 for AVX-512 cores with two full
 * 16-wide FMA units (Intel server cores, family 6, from Ice Lake on — some older Skylake-SP SKUs
 * have one — and AMD Zen 5, family 26); 32 for two 8-wide FMAs (Zen 3, Zen 4 — whose AVX-512 is
 * double-pumped — and AVX2 Intel cores); undefined without AVX2+FMA.
 */
export function flopsPerCycle(m: Machine): number | undefined {
  const c = m.cpu;
  if (!c?.avx2Fma) return undefined;
  return c.avx512 && (c.family === 6 || c.family === 26) ? 64 : 32;
}

/**
 * One core's fp32 peak estimated from /proc/cpuinfo: clock × `flopsPerCycle`; undefined when the
 * CPU has no AVX2+FMA or no clock is known. (The kernels are 128-bit WebAssembly SIMD: they can
 * reach a quarter of a 64-FLOP core's peak, half of a 32-FLOP one's.)
 */
export function estimatedPeakGflops(m: Machine): number | undefined {
  const perCycle = flopsPerCycle(m);
  return perCycle !== undefined && m.cpu!.mhz > 0 ? Math.round((m.cpu!.mhz / 1000) * perCycle) : undefined;
}
