// `stride checkpoint inspect FILE`: verifies a checkpoint's checksum and prints its metadata.
import { readFile, stat } from 'node:fs/promises';
import { Command } from 'commander';
import { datasetLabel, decodeCheckpoint, formatEvalMetrics, normalizeBest, type Checkpoint } from '@stride/engine';
import { UsageError } from '../errors.ts';
import { formatDuration } from '../parse.ts';

function count(arrays: Checkpoint['params']): number {
  let n = 0;
  for (const a of arrays) n += a.data.length;
  return n;
}

async function inspect(file: string, o: { json?: boolean }): Promise<void> {
  let bytes: Uint8Array;
  try {
    const buf = await readFile(file);
    bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const ckpt = decodeCheckpoint(bytes, file); // throws CheckpointError on a bad checksum
  const { meta } = ckpt;
  const summary = {
    file,
    bytes: (await stat(file)).size,
    checksum: 'ok',
    jobId: meta.jobId,
    name: meta.spec.name,
    model: typeof meta.spec.model === 'string' ? meta.spec.model : (meta.modelSpec.name ?? 'custom'),
    dataset: meta.spec.dataset,
    step: meta.step,
    totalSteps: meta.totalSteps,
    epoch: meta.epoch,
    batchIndex: meta.batchIndex,
    epochs: meta.step / meta.stepsPerEpoch,
    parameters: count(ckpt.params),
    parameterArrays: ckpt.params.length,
    buffers: count(ckpt.buffers),
    optimizer: meta.spec.optimizer,
    schedule: meta.spec.schedule,
    optimizerStepCount: meta.optimizerStepCount,
    lastEval: meta.evals.at(-1),
    best: meta.best,
    elapsedMs: meta.elapsedMs,
    paramsSha256: meta.paramsSha256,
    createdAt: meta.createdAt,
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...summary, meta })}\n`);
    return;
  }
  const best = normalizeBest(meta.best);
  const lines = [
    `${file}: Stride checkpoint, ${summary.bytes} bytes, checksum ok`,
    `job        ${meta.jobId} (${summary.name})`,
    `model      ${summary.model}: ${summary.parameters} parameters in ${summary.parameterArrays} arrays${summary.buffers ? `, ${summary.buffers} buffer values` : ''}`,
    `dataset    ${datasetLabel(meta.spec.dataset)}, batch ${meta.spec.batchSize} in ${meta.spec.shards} shards, seed ${meta.spec.seed}`,
    `progress   step ${meta.step}/${meta.totalSteps} (epoch ${summary.epochs.toFixed(2)}; next: epoch ${meta.epoch} batch ${meta.batchIndex}), trained for ${formatDuration(meta.elapsedMs)}`,
    `optimizer  ${JSON.stringify(meta.spec.optimizer)}, schedule ${JSON.stringify(meta.spec.schedule)}, ${meta.optimizerStepCount} updates`,
    `last eval  ${summary.lastEval ? `step ${summary.lastEval.step}: ${formatEvalMetrics(summary.lastEval.task ?? meta.spec.task, summary.lastEval)}, loss ${summary.lastEval.testLoss.toFixed(4)}` : 'none'}`,
    `best       ${best ? `step ${best.step}: ${best.metric} ${(100 * best.value).toFixed(2)}%` : 'none'}`,
    `params     sha256 ${meta.paramsSha256}`,
    `written    ${meta.createdAt}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerCheckpoint(program: Command): void {
  const checkpoint = program.command('checkpoint').description('work with checkpoint files');
  checkpoint
    .command('inspect')
    .description("verify a checkpoint's checksum and print its metadata")
    .argument('<file>', 'checkpoint file (.ckpt)')
    .option('--json', 'print the metadata as one JSON object')
    .action((file: string, opts: { json?: boolean }) => inspect(file, opts));
}
