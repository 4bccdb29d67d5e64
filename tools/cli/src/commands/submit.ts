// `stride submit`: enqueues a training job for the coordinators, straight into the jobs queue
// through Redis; with --follow, shows its progress until it ends.
import type { Command, Option } from 'commander';
import { formatEvalMetrics } from '@stride/engine';
import { JobsClient, resolveTransportConfig, type JobProgress, checkRedis, isJobId } from '@stride/queue';
import { UsageError } from '../errors.ts';
import { formatDuration } from '../parse.ts';
import { specFromFlags } from './train.ts';

/** The flags of `stride train` that make the job spec; `submit` takes the same ones. */
const SPEC_FLAGS = [
  '--spec',
  '--model',
  '--dataset',
  '--epochs',
  '--steps',
  '--batch-size',
  '--shards',
  '--seed',
  '--optimizer',
  '--lr',
  '--momentum',
  '--weight-decay',
  '--schedule',
  '--eval-every',
  '--eval-shards',
  '--eval-samples',
  '--checkpoint-every',
  '--keep-checkpoints',
  '--numerics',
  '--name',
];

type SubmitFlags = Parameters<typeof specFromFlags>[0] & { follow?: boolean; json?: boolean; jobId?: string };

/** One progress line. */
export function formatProgress(p: JobProgress): string {
  const parts = [`${p.status}`, `step ${p.step}/${p.totalSteps}`];
  if (p.totalSteps > 0) parts.push(`${((100 * p.step) / p.totalSteps).toFixed(1)}%`);
  if (p.epochProgress !== undefined) parts.push(`epoch ${p.epochProgress.toFixed(2)}`);
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.accuracy !== undefined) parts.push(`acc ${(100 * p.accuracy).toFixed(1)}%`);
  if (p.imagesPerSec !== undefined) parts.push(`${Math.round(p.imagesPerSec)} img/s`);
  if (p.etaMs !== undefined) parts.push(`ETA ${formatDuration(p.etaMs)}`);
  if (p.testAccuracy !== undefined) parts.push(`test ${(100 * p.testAccuracy).toFixed(2)}%`);
  for (const [key, label] of [['locAccuracy', 'loc acc'], ['meanIoU', 'mean IoU'], ['mAP50', 'mAP@0.5'], ['mIoU', 'mIoU'], ['pixelAccuracy', 'pixel acc']] as const) {
    const v = p[key];
    if (v !== undefined) parts.push(`${label} ${(100 * v).toFixed(2)}%`);
  }
  return parts.join('  ');
}

async function runSubmit(o: SubmitFlags): Promise<void> {
  const spec = await specFromFlags(o);
  // Job ids become file and key names: refuse `../x` as a bad flag, before touching Redis.
  if (o.jobId !== undefined && !isJobId(o.jobId)) throw new UsageError(`--job-id: must be 1-128 characters of A-Z a-z 0-9 _ . - not starting with a dot, got ${JSON.stringify(o.jobId)}`);
  const config = resolveTransportConfig();
  await checkRedis(config); // a wrong password or no Redis: say so now, instead of retrying silently
  const client = new JobsClient(config);
  const out = o.json ? process.stderr : process.stdout;
  try {
    const { jobId } = await client.submit(spec, { jobId: o.jobId });
    out.write(`submitted job ${jobId} (${spec.name})\n`);
    if (!o.follow) {
      if (o.json) process.stdout.write(`${JSON.stringify({ jobId, spec })}\n`);
      return;
    }
    const tty = out.isTTY === true;
    let lastLine = 0;
    let lastLen = 0;
    const stop = new AbortController();
    const onSigint = (): void => stop.abort(new Error(`stopped following job ${jobId} (it goes on; follow it again or cancel it from the API)`));
    process.once('SIGINT', onSigint);
    let outcome;
    try {
      outcome = await client.follow(
        jobId,
        (p) => {
          const text = formatProgress(p);
          if (tty) {
            out.write(`\r${text}${' '.repeat(Math.max(0, lastLen - text.length))}`);
            lastLen = text.length;
          } else if (Date.now() - lastLine >= 5000 || p.status !== 'running') {
            lastLine = Date.now();
            out.write(`${text}\n`);
          }
        },
        { signal: stop.signal },
      );
    } finally {
      process.off('SIGINT', onSigint);
      if (tty && lastLen > 0) out.write('\n');
    }
    if (outcome.state === 'missing') throw new Error(`job ${jobId} disappeared from the queue`);
    if (outcome.state === 'failed') throw new Error(`job ${jobId} failed: ${outcome.reason}`);
    const r = outcome.result;
    out.write(`job ${jobId} ${r.status}: ${r.steps}/${r.totalSteps} steps, ${formatEvalMetrics(r.task, r)}, wall ${formatDuration(r.elapsedMs)}\nparamsSha256 ${r.paramsSha256}\n`);
    if (o.json) process.stdout.write(`${JSON.stringify({ ...r, jobId, name: spec.name, spec })}\n`);
    if (r.status !== 'succeeded') throw new Error(`job ${jobId} ended ${r.status}`);
  } finally {
    await client.close();
  }
}

export function registerSubmit(program: Command): void {
  const train = program.commands.find((c) => c.name() === 'train');
  if (!train) throw new UsageError('registerSubmit: register the train command first (submit takes its job spec flags)');
  const submit = program
    .command('submit')
    .description('submit a training job to the coordinators through Redis (REDIS_URL, STRIDE_QUEUE_PREFIX); same job flags as train');
  for (const option of train.options as Option[]) if (SPEC_FLAGS.includes(option.long ?? '')) submit.addOption(option);
  submit
    .option('--job-id <id>', 'job id (default: a new unique id)')
    .option('--follow', 'show progress until the job ends; exit 0 when it succeeds')
    .option('--json', 'print one JSON object (with paramsSha256 and testAccuracy when following); progress goes to stderr')
    .action((o: SubmitFlags) => runSubmit(o));
}
