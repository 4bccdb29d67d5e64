// `stride train --local ...`: trains a job in this process with the local executor (its main thread and worker threads compute).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  DATASETS,
  datasetLabel,
  formatEvalMetrics,
  MAX_GENERATED_SAMPLES,
  jobPaths,
  jobSpecHash,
  LocalExecutor,
  normalizeJobSpec,
  Trainer,
  type JobSpec,
  type StepMetrics,
  type TrainResult,
} from '@stride/engine';
import { UsageError } from '../errors.ts';
import { formatDuration, intArg, nonNegativeNumberArg, positiveNumberArg, stepsOrEpochArg } from '../parse.ts';

interface TrainFlags {
  local?: boolean;
  spec?: string;
  model?: string;
  dataset?: string;
  trainSamples?: number;
  testSamples?: number;
  epochs?: number;
  steps?: number;
  batchSize?: number;
  shards?: number;
  seed?: number;
  optimizer?: string;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  schedule?: string;
  evalEvery?: number | 'epoch';
  evalShards?: number;
  evalSamples?: number;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  numerics?: 'exact' | 'fma';
  name?: string;
  out: string;
  jobId?: string;
  threads?: number;
  resume: boolean;
  logEvery: number;
  json?: boolean;
}

/** Reads a JSON file given on the command line; errors name the flag and the file. */
async function readJson(flag: string, file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The job spec from `--spec FILE` (if any) overridden by the individual flags, validated. */
export async function specFromFlags(o: TrainFlags): Promise<JobSpec> {
  const input: Record<string, unknown> = o.spec ? ((await readJson('--spec', o.spec)) as Record<string, unknown>) : {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new UsageError(`--spec: ${o.spec} must hold a JSON object`);
  if (o.model !== undefined) input.model = /\.json$/i.test(o.model) ? await readJson('--model', o.model) : o.model;
  if (o.dataset !== undefined) input.dataset = o.dataset;
  if (o.epochs !== undefined && o.steps !== undefined) throw new UsageError('give either --epochs or --steps, not both');
  if (o.epochs !== undefined) {
    input.epochs = o.epochs;
    delete input.steps;
  }
  if (o.steps !== undefined) {
    input.steps = o.steps;
    delete input.epochs;
  }
  const plain = { trainSamples: o.trainSamples, testSamples: o.testSamples, batchSize: o.batchSize, shards: o.shards, seed: o.seed, evalEvery: o.evalEvery, evalShards: o.evalShards, evalSamples: o.evalSamples, checkpointEvery: o.checkpointEvery, keepCheckpoints: o.keepCheckpoints, numerics: o.numerics, name: o.name };
  for (const [key, value] of Object.entries(plain)) if (value !== undefined) input[key] = value;

  const optimizerFlags = { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay };
  if (o.optimizer !== undefined || Object.values(optimizerFlags).some((v) => v !== undefined)) {
    const base = (input.optimizer ?? {}) as Record<string, unknown>;
    const type = o.optimizer ?? base.type ?? 'adam';
    // A new optimizer type starts from that type's defaults; flags override field by field.
    const optimizer: Record<string, unknown> = type === base.type ? { ...base } : { type, lr: type === 'sgd' ? 0.05 : 3e-3 };
    for (const [key, value] of Object.entries(optimizerFlags)) if (value !== undefined) optimizer[key] = value;
    input.optimizer = optimizer;
  }
  if (o.schedule !== undefined) input.schedule = { type: o.schedule };
  if (input.model === undefined) throw new UsageError('--model is required (a zoo name such as lenet5, or a model spec .json file)');
  if (input.dataset === undefined) input.dataset = 'mnist';
  return normalizeJobSpec(input);
}

/** Progress output: a redrawn line on a TTY, a line every `every` steps otherwise. */
class Progress {
  private readonly tty: boolean;
  private lastLen = 0;
  private readonly t0 = performance.now();
  private firstStep?: { step: number; at: number };

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly every: number,
  ) {
    this.tty = out.isTTY === true;
  }

  step(e: StepMetrics & { totalSteps: number }): void {
    const now = performance.now();
    this.firstStep ??= { step: e.step, at: now - e.stepMs };
    const done = e.step + 1;
    const rate = (now - this.firstStep.at) / (done - this.firstStep.step);
    const eta = formatDuration(rate * (e.totalSteps - done));
    const pct = ((100 * done) / e.totalSteps).toFixed(1).padStart(5);
    const text =
      `step ${done}/${e.totalSteps} ${pct}%  epoch ${e.epochProgress.toFixed(2)}  loss ${e.loss.toFixed(4)}  ${e.accuracy === undefined ? '' : `acc ${(100 * e.accuracy).toFixed(1)}%  `}` +
      `lr ${e.lr.toExponential(2)}  ${Math.round(e.imagesPerSec)} img/s  ETA ${eta}`;
    if (this.tty) this.redraw(text);
    else if (done % this.every === 0 || done === e.totalSteps) this.out.write(`${text}\n`);
  }

  line(text: string): void {
    if (this.tty && this.lastLen > 0) {
      this.out.write(`\r${' '.repeat(this.lastLen)}\r`);
      this.lastLen = 0;
    }
    this.out.write(`${text}\n`);
  }

  elapsed(): string {
    return formatDuration(performance.now() - this.t0);
  }

  private redraw(text: string): void {
    const cols = this.out.columns ?? 120;
    const shown = text.length >= cols ? text.slice(0, cols - 1) : text;
    this.out.write(`\r${shown}${' '.repeat(Math.max(0, this.lastLen - shown.length))}`);
    this.lastLen = shown.length;
  }
}

async function runTrain(o: TrainFlags): Promise<void> {
  if (!o.local) throw new UsageError('stride train needs --local (train in this process); submit to a coordinator with `stride submit`');
  const spec = await specFromFlags(o);
  const dataDir = resolve(o.out);
  const jobId = o.jobId ?? `local-${jobSpecHash(spec).slice(0, 12)}`;
  // Progress to stderr when stdout carries the JSON result.
  const progress = new Progress(o.json ? process.stderr : process.stdout, o.logEvery);
  // This process does nothing else while it trains: its main thread is one of the compute threads.
  const executor = new LocalExecutor({ callerComputes: true, ...(o.threads === undefined ? {} : { threads: o.threads }) });
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts === 1) {
      progress.line('interrupt: pausing at the next step boundary (Ctrl-C again to quit at once)');
      controller.abort('pause');
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  let result: TrainResult;
  try {
    const trainer = new Trainer(spec, { executor, dataDir, jobId, signal: controller.signal, resume: o.resume });
    const paths = jobPaths(dataDir, jobId);
    progress.line(`job ${jobId} (${spec.name}): ${typeof spec.model === 'string' ? spec.model : 'custom model'} on ${datasetLabel(spec.dataset)}, batch ${spec.batchSize} in ${spec.shards} shards, ${executor.threads} thread(s); files in ${paths.dir}`);
    trainer.on('step', (e) => progress.step(e));
    trainer.on('eval', (e) => progress.line(`eval at step ${e.step} (epoch ${e.epochProgress.toFixed(2)}): ${formatEvalMetrics(e.task, e)}, loss ${e.testLoss.toFixed(4)} (${formatDuration(e.evalMs)})`));
    trainer.on('log', (e) => e.level !== 'error' && progress.line(`${e.level}: ${e.message}`));
    result = await trainer.run();
  } finally {
    process.off('SIGINT', onSigint);
    await executor.close();
  }

  if (result.status === 'succeeded') {
    progress.line(`done: ${result.steps} steps (${result.epochs.toFixed(2)} epochs), ${formatEvalMetrics(result.task, result)}, wall ${formatDuration(result.wallMs)}`);
  } else {
    progress.line(`${result.status} at step ${result.steps}/${result.totalSteps}; run the same command again to resume (checkpoint ${result.checkpoint})`);
  }
  progress.line(`paramsSha256 ${result.paramsSha256}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ ...result, name: spec.name, spec })}\n`);
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a job; --local trains in this process (its main thread and worker threads)')
    .option('--local', 'train in this process with the local executor')
    .option('--spec <file>', 'a JSON job spec; the flags below override its fields')
    .option('--model <name|file.json>', 'zoo model name (lenet5) or a model spec JSON file')
    .addOption(new Option('--dataset <name>', 'dataset (the generated mnist-localization / -detection / -segmentation sets select their task)').choices([...DATASETS]))
    .option('--train-samples <n>', 'generated datasets: training samples to generate (default 10000 localization, 5000 detection / segmentation)', intArg(1, MAX_GENERATED_SAMPLES))
    .option('--test-samples <n>', 'generated datasets: test samples to generate (default 2000 localization, 1000 detection / segmentation)', intArg(1, MAX_GENERATED_SAMPLES))
    .option('--epochs <n>', 'epochs to train (default 1)', intArg(1))
    .option('--steps <n>', 'optimizer steps to train, instead of epochs', intArg(1))
    .option('--batch-size <n>', 'global batch size B (default 64)', intArg(1))
    .option('--shards <n>', 'shards per step S, 1 <= S <= B (default 4)', intArg(1))
    .option('--seed <n>', 'seed of initialisation, shuffling and dropout (default 1)', intArg(0, 0xffffffff))
    .addOption(new Option('--optimizer <type>', 'optimizer (default adam)').choices(['sgd', 'adam', 'adamw']))
    .option('--lr <x>', 'learning rate (the peak for onecycle; default 3e-3)', positiveNumberArg)
    .option('--momentum <x>', 'SGD momentum', nonNegativeNumberArg)
    .option('--weight-decay <x>', 'weight decay', nonNegativeNumberArg)
    .addOption(new Option('--schedule <type>', 'learning-rate schedule (default onecycle)').choices(['constant', 'cosine', 'onecycle']))
    .option('--eval-every <n|epoch>', 'evaluate every N steps or every epoch (default epoch; always at the end)', stepsOrEpochArg)
    .option('--eval-shards <n>', 'shards of an evaluation (default 10)', intArg(1))
    .option('--eval-samples <n>', 'evaluate on the first N test samples (default: all)', intArg(1))
    .option('--checkpoint-every <n>', 'checkpoint every N steps (default 100)', intArg(1))
    .option('--keep-checkpoints <n>', 'newest checkpoints to keep, plus the best (default 3)', intArg(1))
    .addOption(new Option('--numerics <mode>', "kernel numerics: exact (default) or fma (fused multiply-adds: faster, last bits differ; every worker's CPU needs FMA)").choices(['exact', 'fma']))
    .option('--name <name>', 'job display name')
    .option('--out <dir>', 'data directory; the job lives in <dir>/jobs/<job id>/', 'out')
    .option('--job-id <id>', 'job id (default: local-<hash of the spec>, so the same command resumes the same job)')
    .option('--threads <n>', 'compute threads, the main thread of this process included (default: available parallelism)', intArg(1, 1024))
    .option('--no-resume', 'start over instead of resuming from the latest checkpoint')
    .option('--log-every <n>', 'without a TTY, print a progress line every N steps', intArg(1), 50)
    .option('--json', 'print one JSON object with the result at the end (progress goes to stderr)')
    .action((opts: TrainFlags) => runTrain(opts));
}
