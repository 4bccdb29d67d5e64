// The JSON part of a checkpoint file (libs/engine checkpoint-format.ts has the binary layout):
// what it takes to resume the job, and to run the trained model anywhere, the browser included.
import type { ModelSpec } from '@stride/cnn';
import type { StoredBest } from './job.ts';
import type { EvalMetrics, StepMetrics } from './metrics.ts';
import type { JobSpec } from './spec.ts';

/** The JSON part of a checkpoint. */
export interface CheckpointMeta {
  readonly kind: 'stride-checkpoint';
  readonly jobId: string;
  /** The normalised job spec the run was started with. */
  readonly spec: JobSpec;
  /** The resolved model spec (a zoo name in `spec.model` resolved), enough to rebuild the model anywhere. */
  readonly modelSpec: ModelSpec;
  /** Per-channel input normalisation, `(pixel/255 - mean[c]) / std[c]`, and the class names, for inference. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly classNames: readonly string[];
  /** Optimizer steps applied so far = the parameter version stored = the next step's index. */
  readonly step: number;
  /** Data position of the next step: its epoch and its batch index inside the epoch. */
  readonly epoch: number;
  readonly batchIndex: number;
  /** Steps of the whole run and steps per epoch, for progress displays. */
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  /** `optimizer.stepCount` (equals `step`). */
  readonly optimizerStepCount: number;
  /** Every evaluation so far (small), the last step's metrics; the full history is in metrics.jsonl. */
  readonly evals: readonly EvalMetrics[];
  readonly lastStep?: StepMetrics;
  /**
   * The best evaluation so far by the task's primary metric (its step has a checkpoint):
   * `{ step, metric, value }`, plus `testAccuracy` for classification. Checkpoints written before
   * the vision tasks hold `{ step, testAccuracy }` only; read them with `normalizeBest`.
   */
  readonly best?: StoredBest;
  /** Training wall time accumulated over all runs of the job, ms. */
  readonly elapsedMs: number;
  /** SHA-256 hex of the canonical parameter bytes (`paramsToBytes`). */
  readonly paramsSha256: string;
  /** ISO time of writing. */
  readonly createdAt: string;
}
