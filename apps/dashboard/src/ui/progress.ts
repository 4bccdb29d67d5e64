// How far a job is, in the words of the views: steps, epoch, ETA, throughput.
import { datasetLabel } from '@stride/protocol';
import { duration, num } from './format.ts';
import type { Job } from './types.ts';

export interface Progress {
  /** Steps applied. */
  readonly step: number;
  /** Steps of the whole run; 0 until the run has started. */
  readonly total: number;
  /** 0..1. */
  readonly fraction: number;
  /** `step 120 / 938`. */
  readonly stepText: string;
  /** `epoch 1 / 2` or `epoch 1.4`. */
  readonly epochText: string;
  /** `3 min 20 s`, `—` when unknown or finished. */
  readonly etaText: string;
  /** `1 234 img/s`, `—` when not running. */
  readonly speedText: string;
}

/** Steps applied, from the live progress, else from the state's payload. */
export function stepOf(job: Job): number {
  const s = job.state;
  if (job.progress) return job.progress.step;
  if (s.status === 'succeeded') return s.result.steps;
  return 'step' in s ? s.step : 0;
}

export function totalOf(job: Job): number {
  const s = job.state;
  if (s.status === 'succeeded') return s.result.totalSteps;
  if ('totalSteps' in s && s.totalSteps > 0) return s.totalSteps;
  return job.progress?.totalSteps ?? job.result?.totalSteps ?? 0;
}

/** `imagesPerSec`: a smoothed figure to show instead of the last step's, when the caller has one. */
export function progressOf(job: Job, imagesPerSec?: number): Progress {
  const status = job.state.status;
  const step = stepOf(job);
  const total = totalOf(job);
  const fraction = status === 'succeeded' ? 1 : total > 0 ? Math.min(1, step / total) : 0;
  const stepText = total > 0 ? `step ${step} / ${total}` : `step ${step}`;

  const epochs = job.spec.epochs;
  const epochProgress = job.progress?.epochProgress;
  let epochText: string;
  if (epochs !== undefined) {
    const current = step === 0 ? 0 : epochProgress === undefined ? 1 : Math.min(epochs, Math.floor(epochProgress) + 1);
    epochText = `epoch ${status === 'succeeded' ? epochs : current} / ${epochs}`;
  } else {
    epochText = epochProgress === undefined ? 'epoch —' : `epoch ${num(epochProgress, 2)}`;
  }

  const running = status === 'running';
  const ips = imagesPerSec ?? job.progress?.imagesPerSec;
  return {
    step,
    total,
    fraction,
    stepText,
    epochText,
    etaText: running ? duration(job.progress?.etaMs) : '—',
    speedText: running && ips !== undefined ? `${num(ips)} img/s` : '—',
  };
}

/** Training time: the engine's figure once a run ended, else since the job started. */
export function elapsedOf(job: Job, now = Date.now()): number | undefined {
  if (job.state.status === 'succeeded') return job.state.result.elapsedMs;
  if (job.result && job.state.status !== 'running') return job.result.elapsedMs;
  if (!job.startedAt) return undefined;
  const end = job.finishedAt ? Date.parse(job.finishedAt) : now;
  return end - Date.parse(job.startedAt);
}

/** `lenet5 · mnist · batch 64 × 4 shards`. */
export function describeSpec(job: Job): string {
  const s = job.spec;
  const model = typeof s.model === 'string' ? s.model : (s.model.name ?? 'custom model');
  return `${model} · ${datasetLabel(s.dataset)} · batch ${s.batchSize} × ${s.shards} shard${s.shards === 1 ? '' : 's'}`;
}
