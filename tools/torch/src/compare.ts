// Side by side with PyTorch: trains the same job in Stride (`stride train --local`) and in PyTorch
// (tools/torch/train_like_stride.py, Debian's python3-torch), back to back, and prints a table of
// the final metric and the wall time of each side.
//
//   node --import tsx tools/torch/src/compare.ts [resnet|unet|yolo ...] [--side both|stride|torch|nudged|none]
//        [--epochs N | --steps N] [--batch-size N] [--shards N] [--model NAME] [--base-channels N] [--threads N]
//        [--init stride|torch] [--train-samples N] [--test-samples N] [--seed N] [--run-name DIR[,DIR...]] [--table] [--json]
//
// Same architecture (the zoo spec, built by tools/torch/stride_torch.py), same initial values
// (Stride's, exported; `--init torch` draws them from torch's generator with the same init family),
// same data and sample order, same shards (batch norm per shard), same loss, optimizer, schedule,
// batch size and steps, same evaluation on the same test split. Each side's result is kept in
// node_modules/.cache/stride/compare/<task>/{stride,torch}.json; `--side` runs one side only and
// `--table` prints the table from the kept results. `--side nudged` trains PyTorch once more from the
// same initial values moved up by one float32 ulp (torch-nudged.json): the two PyTorch runs differ
// only by rounding, so their gap is the noise floor of the Stride / PyTorch comparison at that budget.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getZooSpec } from '@stride/cnn';
import { DATASET_SHAPES, normalizeJobSpec, type DatasetName, type JobSpec, type JobSpecInput } from '@stride/engine';
import { exportRun } from './export.ts';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CACHE = resolve(process.env.STRIDE_CACHE_DIR ?? join(ROOT, 'node_modules/.cache/stride'), 'compare');
const PYTHON = process.env.STRIDE_TORCH_PYTHON ?? '/usr/bin/python3';

/**
 * The comparisons and their default budgets, chosen to fit two shared cores (see the README):
 * `baseChannels` narrows a zoo model (the job then carries the full model spec).
 */
const TASKS = {
  resnet: { model: 'resnet8', dataset: 'fashion-mnist', epochs: 1, batchSize: 64, shards: 4, seed: 1 },
  unet: { model: 'unet', baseChannels: 4, dataset: 'mnist-segmentation', steps: 400, batchSize: 8, shards: 4, seed: 1, trainSamples: 3200, testSamples: 500, evalEvery: 100_000 },
  yolo: { model: 'yolo', baseChannels: 8, dataset: 'mnist-detection', steps: 400, batchSize: 16, shards: 4, seed: 1, trainSamples: 6400, testSamples: 500, evalEvery: 100_000 },
} as const satisfies Record<string, JobSpecInput & { baseChannels?: number }>;
type Comparison = keyof typeof TASKS;

const METRIC: Record<string, { key: 'testAccuracy' | 'mIoU' | 'mAP50'; label: string }> = {
  classification: { key: 'testAccuracy', label: 'test accuracy' },
  segmentation: { key: 'mIoU', label: 'mIoU' },
  detection: { key: 'mAP50', label: 'mAP@0.5' },
};

interface SideResult {
  value: number;
  wallSeconds: number;
  steps: number;
  threads: number;
  /** Load average (1 min) before and after the run: the machine is shared. */
  load: [number, number];
  detail: Record<string, unknown>;
}

interface Options {
  tasks: Comparison[];
  side: 'both' | 'stride' | 'torch' | 'nudged' | 'none';
  table: boolean;
  json: boolean;
  threads: number;
  /** PyTorch's threads; default 1: OpenMP's spinning barriers make 2 threads ~15× slower on a busy 2-core machine. */
  torchThreads: number;
  init: 'stride' | 'torch';
  /** Run directory names under the cache (several only with `--table`); default the comparison's name. */
  runNames: string[];
  overrides: Partial<JobSpecInput> & { baseChannels?: number };
}

class UsageError extends Error {
  override name = 'UsageError';
}

function parseArgs(argv: string[]): Options {
  const o: Options = { tasks: [], side: 'both', table: false, json: false, threads: 2, torchThreads: 1, init: 'stride', runNames: [], overrides: {} };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < 1) throw new UsageError(`${flag}: expected an integer >= 1, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string | undefined => argv[++i];
    if (Object.hasOwn(TASKS, a)) o.tasks.push(a as Comparison);
    else if (a === '--side') {
      const v = next();
      if (v !== 'both' && v !== 'stride' && v !== 'torch' && v !== 'nudged' && v !== 'none') throw new UsageError(`--side: expected both, stride, torch, nudged or none (export only), got ${v ?? 'nothing'}`);
      o.side = v;
    } else if (a === '--init') {
      const v = next();
      if (v !== 'stride' && v !== 'torch') throw new UsageError(`--init: expected stride or torch, got ${v ?? 'nothing'}`);
      o.init = v;
    } else if (a === '--table') o.table = true;
    else if (a === '--run-name') {
      const v = next();
      const names = v?.split(',') ?? [];
      if (names.length === 0 || names.some((n) => !/^[A-Za-z0-9_.-]{1,64}$/.test(n))) throw new UsageError(`--run-name: expected letters, digits, '.', '_' or '-' (a comma-separated list with --table), got ${v ?? 'nothing'}`);
      o.runNames = names;
    }
    else if (a === '--json') o.json = true;
    else if (a === '--threads') o.threads = int(a, next());
    else if (a === '--torch-threads') o.torchThreads = int(a, next());
    else if (a === '--epochs') o.overrides.epochs = int(a, next());
    else if (a === '--steps') o.overrides.steps = int(a, next());
    else if (a === '--batch-size') o.overrides.batchSize = int(a, next());
    else if (a === '--shards') o.overrides.shards = int(a, next());
    else if (a === '--train-samples') o.overrides.trainSamples = int(a, next());
    else if (a === '--test-samples') o.overrides.testSamples = int(a, next());
    else if (a === '--seed') {
      const v = next();
      const n = Number(v);
      if (v === undefined || !Number.isInteger(n) || n < 0) throw new UsageError(`--seed: expected an integer >= 0, got ${v ?? 'nothing'}`);
      o.overrides.seed = n;
    }
    else if (a === '--model') o.overrides.model = next();
    else if (a === '--base-channels') o.overrides.baseChannels = int(a, next());
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: compare.ts [${Object.keys(TASKS).join('|')} ...] [--side both|stride|torch|nudged|none] [--epochs N | --steps N] [--batch-size N] [--shards N] [--model NAME] [--base-channels N] [--threads N] [--torch-threads N] [--init stride|torch] [--train-samples N] [--test-samples N] [--seed N] [--run-name DIR[,DIR...]] [--table] [--json]\n`);
      process.exit(0);
    } else throw new UsageError(`unknown argument ${JSON.stringify(a)} (comparisons: ${Object.keys(TASKS).join(', ')})`);
  }
  if (o.overrides.epochs !== undefined && o.overrides.steps !== undefined) throw new UsageError('give either --epochs or --steps, not both');
  if (o.tasks.length === 0) o.tasks = Object.keys(TASKS) as Comparison[];
  if (o.runNames.length > 1 && (!o.table || o.tasks.length !== 1)) throw new UsageError('several --run-name values need --table and one comparison (they are printed together)');
  return o;
}

function jobSpecOf(task: Comparison, overrides: Options['overrides']): JobSpec {
  const { baseChannels, ...base }: Record<string, unknown> = { ...TASKS[task], ...overrides };
  if (overrides.epochs !== undefined) delete base.steps;
  if (overrides.steps !== undefined) delete base.epochs;
  if (baseChannels !== undefined && typeof base.model === 'string') {
    const info = DATASET_SHAPES[base.dataset as DatasetName];
    const [inChannels, height, width] = info.input;
    base.model = { ...getZooSpec(base.model, { inChannels, height, width, numClasses: info.numClasses, baseChannels: baseChannels as number }), name: `${base.model}-w${String(baseChannels)}` };
  }
  return normalizeJobSpec(base);
}

/** Runs a command; stderr goes to ours (progress), stdout is returned. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, no) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', no);
    child.on('close', (code) => (code === 0 ? ok(out) : no(new Error(`${cmd} ${args.join(' ')} exited with code ${code}`))));
  });
}

function lastJsonLine(text: string, what: string): Record<string, unknown> {
  const line = text.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`${what}: expected a JSON line at the end of its output, got ${JSON.stringify(line.slice(0, 200))}`);
  }
}

async function runStride(dir: string, spec: JobSpec, threads: number): Promise<SideResult> {
  const specFile = join(dir, 'spec.json');
  await writeFile(specFile, `${JSON.stringify(spec, null, 1)}\n`);
  const load0 = loadavg()[0];
  const args = ['tools/cli/bin/stride.js', 'train', '--local', '--spec', specFile, '--out', join(dir, 'stride'), '--job-id', 'compare', '--no-resume', '--json', '--threads', String(threads)];
  const r = lastJsonLine(await run(process.execPath, args), 'stride train');
  const task = (r.task as string | undefined) ?? 'classification';
  const value = r[METRIC[task].key];
  if (typeof value !== 'number') throw new Error(`stride train: its result has no ${METRIC[task].key}: ${JSON.stringify(r).slice(0, 300)}`);
  return { value, wallSeconds: (r.wallMs as number) / 1000, steps: r.steps as number, threads, load: [load0, loadavg()[0]], detail: { paramsSha256: r.paramsSha256, testLoss: r.testLoss, best: r.best } };
}

/** Mean training loss of each window of `every` steps (the last one may be shorter), from Stride's metrics log. */
async function strideLossCurve(dir: string, every: number): Promise<{ steps: number; loss: number }[]> {
  const text = await readFile(join(dir, 'stride', 'jobs', 'compare', 'metrics.jsonl'), 'utf8').catch(() => '');
  const sums = new Map<number, { loss: number; count: number; last: number }>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { type?: string; step?: number; loss?: number; count?: number };
    if (r.type !== 'step' || typeof r.step !== 'number' || typeof r.loss !== 'number' || typeof r.count !== 'number') continue;
    const w = Math.floor(r.step / every);
    const s = sums.get(w) ?? { loss: 0, count: 0, last: 0 };
    sums.set(w, { loss: s.loss + r.loss * r.count, count: s.count + r.count, last: Math.max(s.last, r.step + 1) });
  }
  return [...sums.keys()].sort((a, b) => a - b).map((w) => ({ steps: sums.get(w)!.last, loss: sums.get(w)!.loss / sums.get(w)!.count }));
}

/** The largest relative difference between the two sides' window losses, over the windows both have. */
function curveDifference(a: { steps: number; loss: number }[], b: { steps: number; loss: number }[]): { windows: number; maxRelative: number } | undefined {
  const theirs = new Map(b.map((p) => [p.steps, p.loss]));
  const pairs = a.filter((p) => theirs.has(p.steps)).map((p) => Math.abs(p.loss - theirs.get(p.steps)!) / Math.abs(theirs.get(p.steps)!));
  return pairs.length === 0 ? undefined : { windows: pairs.length, maxRelative: Math.max(...pairs) };
}

async function runTorch(dir: string, threads: number, init: string, nudge = false): Promise<SideResult> {
  const load0 = loadavg()[0];
  const r = lastJsonLine(await run(PYTHON, ['tools/torch/train_like_stride.py', 'train', dir, '--threads', String(threads), '--init', init, ...(nudge ? ['--nudge'] : [])]), 'train_like_stride.py');
  return { value: r.value as number, wallSeconds: r.wallSeconds as number, steps: r.steps as number, threads, load: [load0, loadavg()[0]], detail: { final: r.final, init: r.init, nudge: r.nudge, torch: r.torch, lossCurve: r.lossCurve, logEvery: r.logEvery } };
}

async function readResult(file: string): Promise<SideResult | undefined> {
  return readFile(file, 'utf8').then(
    (t) => JSON.parse(t) as SideResult,
    () => undefined,
  );
}

interface Row {
  comparison: Comparison;
  /** Its run directory's name. */
  run: string;
  task: string;
  model: string;
  dataset: string;
  budget: string;
  metric: string;
  stride?: SideResult;
  torch?: SideResult;
  /** PyTorch again from the initial values moved up by one ulp (`--side nudged`). */
  nudged?: SideResult;
  /** PyTorch minus nudged PyTorch, in points: what rounding alone moves the metric. */
  rounding?: number;
  /** The two PyTorch runs' training-loss curves, compared as `lossCurve`. */
  roundingCurve?: { windows: number; maxRelative: number };
  /** Stride minus PyTorch, in points. */
  difference?: number;
  /** Training loss, mean of each window of 50 steps: the largest relative difference between the sides. */
  lossCurve?: { windows: number; maxRelative: number };
  withinTolerance?: boolean;
}

const pct = (v: number | undefined): string => (v === undefined ? '—' : `${(100 * v).toFixed(2)} %`);
const secs = (s: SideResult | undefined): string => (s === undefined ? '—' : `${Math.round(s.wallSeconds)} s`);

function printTable(rows: Row[]): void {
  const nudged = rows.some((r) => r.nudged);
  const lines = [['comparison', 'model / dataset', 'budget', 'metric', 'Stride', 'PyTorch', 'Δ (points)', 'Stride wall', 'PyTorch wall', 'train-loss curves', ...(nudged ? ['PyTorch, init +1 ulp', 'Δ PyTorch runs', 'their train-loss curves'] : [])]];
  for (const r of rows) {
    const points = (d: number | undefined): string => (d === undefined ? '—' : d.toFixed(2));
    const apart = (c: Row['lossCurve']): string => (c ? `≤ ${(100 * c.maxRelative).toFixed(1)} % apart (${c.windows} windows)` : '—');
    lines.push([r.run === r.comparison ? r.comparison : `${r.comparison} (${r.run})`, `${r.model} / ${r.dataset}`, r.budget, r.metric, pct(r.stride?.value), pct(r.torch?.value), points(r.difference), secs(r.stride), secs(r.torch), apart(r.lossCurve), ...(nudged ? [pct(r.nudged?.value), points(r.rounding), apart(r.roundingCurve)] : [])]);
  }
  const widths = lines[0].map((_, c) => Math.max(...lines.map((l) => l[c].length)));
  for (const l of lines) process.stdout.write(`${l.map((cell, c) => cell.padEnd(widths[c])).join('  ')}\n`);
  const judged = rows.filter((r) => r.withinTolerance !== undefined);
  const missing = rows.length - judged.length;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  // Several runs of one comparison (seeds): the mean difference is judged, not each run's.
  const seeds = rows.length > 1 && rows.every((r) => r.comparison === rows[0].comparison);
  const meanDifference = seeds && judged.length > 0 ? mean(judged.map((r) => r.difference!)) : undefined;
  const verdict =
    judged.length === 0 ? 'not judged (a side is missing)' : meanDifference !== undefined ? `${meanDifference >= -1.5 ? 'yes' : 'NO'}, on the mean over ${judged.length} runs (${meanDifference.toFixed(2)} points)` : judged.every((r) => r.withinTolerance) ? 'yes' : 'NO';
  const rounding = rows.filter((r) => r.rounding !== undefined);
  if (seeds && rounding.length > 1) {
    process.stdout.write(`${rows[0].comparison}: two PyTorch runs one ulp apart at the start end ${mean(rounding.map((r) => Math.abs(r.rounding!))).toFixed(2)} points apart on average over ${rounding.length} runs (${rounding.map((r) => Math.abs(r.rounding!).toFixed(2)).join(', ')}); Stride and PyTorch ${judged.length > 0 ? `${mean(judged.map((r) => Math.abs(r.difference!))).toFixed(2)} points apart on average over ${judged.length}` : '—'}\n`);
  } else {
    for (const r of rounding) process.stdout.write(`${r.comparison}: two PyTorch runs one ulp apart at the start end ${Math.abs(r.rounding!).toFixed(2)} points apart: below that, a single run cannot tell the implementations apart\n`);
  }
  process.stdout.write(`load average (1 min) now ${loadavg()[0].toFixed(2)}; Stride within 1.5 points of PyTorch or better: ${verdict}${judged.length > 0 && missing > 0 ? ` (${missing} run${missing === 1 ? '' : 's'} missing a side)` : ''}\n`);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const rows: Row[] = [];
  const runs = o.tasks.length === 1 && o.runNames.length > 0 ? o.runNames.map((name) => ({ comparison: o.tasks[0], name })) : o.tasks.map((comparison) => ({ comparison, name: comparison }));
  for (const { comparison, name } of runs) {
    const dir = join(CACHE, name);
    // `--table` describes the runs as they were made: their kept spec, not today's defaults.
    const kept = o.table ? await readFile(join(dir, 'spec.json'), 'utf8').then((t) => normalizeJobSpec(JSON.parse(t) as JobSpecInput), () => undefined) : undefined;
    const spec = kept ?? jobSpecOf(comparison, o.overrides);
    if (!o.table) {
      const exported = await exportRun(spec, dir, join(CACHE, 'data'));
      // What `--table` describes the run by, whichever sides run.
      await writeFile(join(dir, 'spec.json'), `${JSON.stringify(spec, null, 1)}\n`);
      process.stderr.write(`compare ${comparison}: ${spec.name}, ${exported.totalSteps} steps of ${spec.batchSize} in ${spec.shards} shards; files in ${dir}\n`);
      if (o.side === 'both' || o.side === 'stride') await writeFile(join(dir, 'stride.json'), JSON.stringify(await runStride(dir, spec, o.threads), null, 1));
      if (o.side === 'both' || o.side === 'torch') await writeFile(join(dir, 'torch.json'), JSON.stringify(await runTorch(dir, o.torchThreads, o.init), null, 1));
      if (o.side === 'nudged') await writeFile(join(dir, 'torch-nudged.json'), JSON.stringify(await runTorch(dir, o.torchThreads, o.init, true), null, 1));
    }
    const task = (await readFile(join(dir, 'job.json'), 'utf8').then((t) => (JSON.parse(t) as { task: string }).task, () => 'classification'));
    const stride = await readResult(join(dir, 'stride.json'));
    const torch = await readResult(join(dir, 'torch.json'));
    const nudged = await readResult(join(dir, 'torch-nudged.json'));
    const difference = stride && torch ? 100 * (stride.value - torch.value) : undefined;
    const torchCurve = torch?.detail.lossCurve as { steps: number; loss: number }[] | undefined;
    const lossCurve = torchCurve ? curveDifference(await strideLossCurve(dir, (torch!.detail.logEvery as number | undefined) ?? 50), torchCurve) : undefined;
    const nudgedCurve = nudged?.detail.lossCurve as { steps: number; loss: number }[] | undefined;
    const roundingCurve = torchCurve && nudgedCurve ? curveDifference(nudgedCurve, torchCurve) : undefined;
    const budget = spec.epochs !== undefined ? `${spec.epochs} epoch${spec.epochs > 1 ? 's' : ''} × B ${spec.batchSize}` : `${spec.steps} steps × B ${spec.batchSize}`;
    rows.push({ comparison, run: name, task, model: typeof spec.model === 'string' ? spec.model : (spec.model.name ?? 'model'), dataset: typeof spec.dataset === 'string' ? spec.dataset : spec.dataset.type, budget, metric: METRIC[task].label, stride, torch, nudged, rounding: torch && nudged ? 100 * (torch.value - nudged.value) : undefined, roundingCurve, difference, lossCurve, withinTolerance: difference === undefined ? undefined : difference >= -1.5 });
  }
  if (o.json) process.stdout.write(`${JSON.stringify({ rows, loadAverage: loadavg() })}\n`);
  else printTable(rows);
}

main().catch((err: unknown) => {
  process.stderr.write(`compare: ${err instanceof UsageError || err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
