import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuLabel, estimatedPeakGflops, flopsPerCycle, isReferenceCpu, pairedRatios, parseCpuInfo, type Machine } from '../src/stats.ts';

/** The fields of one processor of /proc/cpuinfo that the bench reads, as the kernel prints them. */
function cpuinfo(family: number, model: number, mhz: string, flags: string): string {
  return ['processor\t: 0', 'vendor_id\t: AuthenticAMD', `cpu family\t: ${family}`, `model\t\t: ${model}`, 'model name\t: AMD EPYC', 'stepping\t: 1', `cpu MHz\t\t: ${mhz}`, `flags\t\t: fpu sse sse2 ${flags} ht`, ''].join('\n');
}

function machine(text: string): Machine {
  return { cores: 2, ...parseCpuInfo(text), node: 'v20', loadStart: 0 };
}

describe('the bench machine description', () => {
  it('tells the reference EPYC (Zen 4, AVX-512) from a Zen 3 EPYC of the same model name, and estimates the other\'s peak', () => {
    const zen4 = machine(cpuinfo(25, 17, '3529.000', 'avx avx2 fma avx512f avx512bw'));
    const zen3 = machine(cpuinfo(25, 1, '2445.404', 'avx avx2 fma'));
    expect(zen3.cpuModel).toBe(zen4.cpuModel);
    expect(isReferenceCpu(zen4)).toBe(true);
    expect(isReferenceCpu(zen3)).toBe(false);
    expect(estimatedPeakGflops(zen3)).toBe(78);
    expect(estimatedPeakGflops(zen4)).toBe(113);
    expect(cpuLabel(zen3)).toBe('AMD EPYC, family 25 model 1, 2445 MHz, AVX2+FMA');
    expect(cpuLabel(zen4)).toBe('AMD EPYC, family 25 model 17, 3529 MHz, AVX-512');
  });

  it('counts 64 FLOP per cycle for AVX-512 cores with two full-width FMA units (Intel server cores, Zen 5), 32 for the others', () => {
    const xeon = machine(cpuinfo(6, 207, '2299.998', 'avx avx2 fma avx512f avx512bw'));
    expect(isReferenceCpu(xeon)).toBe(false);
    expect(flopsPerCycle(xeon)).toBe(64);
    expect(estimatedPeakGflops(xeon)).toBe(147);
    expect(flopsPerCycle(machine(cpuinfo(26, 2, '3000.000', 'avx avx2 fma avx512f')))).toBe(64);
    expect(flopsPerCycle(machine(cpuinfo(25, 17, '3529.000', 'avx avx2 fma avx512f')))).toBe(32);
    expect(flopsPerCycle(machine(cpuinfo(6, 85, '2000.000', 'avx avx2 fma')))).toBe(32);
    expect(flopsPerCycle(machine(cpuinfo(6, 85, '2000.000', 'avx')))).toBeUndefined();
  });

  it('has no estimate without AVX2+FMA or a clock, and reads this machine without failing', () => {
    expect(estimatedPeakGflops(machine(cpuinfo(6, 85, '2000.000', 'avx')))).toBeUndefined();
    expect(parseCpuInfo('model name\t: Something\n')).toEqual({ cpuModel: 'Something' });
    let text = '';
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return; // not Linux
    }
    const here = parseCpuInfo(text);
    expect(here.cpuModel).not.toBe('unknown');
    if (/^cpu family/m.test(text) && /^cpu MHz/m.test(text)) expect(here.cpu?.mhz).toBeGreaterThan(0);
  });
});

describe('pairedRatios', () => {
  it('divides repetition by repetition, over the repetitions both sides have, and marks missing figures', () => {
    expect(pairedRatios([10, 12, 9], [10, 15, 12])).toBe('1.00, 0.80, 0.75');
    expect(pairedRatios([10, 12, 9], [20])).toBe('0.50');
    expect(pairedRatios([10, NaN], [5, 4])).toBe('2.00, -');
    expect(pairedRatios([], [])).toBe('');
  });
});
