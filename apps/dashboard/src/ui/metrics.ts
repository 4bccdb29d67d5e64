// A job's metrics as the charts need them: step and eval records in order, joined on one x axis.
import type { EvalMetrics, StepMetrics } from '@stride/protocol';
import type { ChartData } from './chart.ts';

/** A metrics record of a kind the charts do not draw (`{ type: 'skip', step, reason }`, or newer kinds). */
export type OtherRecord = { readonly type: string } & Readonly<Record<string, unknown>>;

/** Step and eval metrics of one job, in step order, without duplicates. */
export class MetricsSeries {
  steps: StepMetrics[] = [];
  evals: EvalMetrics[] = [];

  /** Skipped steps (records `{ type: 'skip', step, reason }`): not drawn, counted. */
  skipped = 0;

  reset(records: readonly (StepMetrics | EvalMetrics | OtherRecord)[]): void {
    this.steps = [];
    this.evals = [];
    this.skipped = 0;
    for (const r of records) this.add(r);
  }

  /**
   * Adds a step or eval record unless one for its step is there already; returns true when added.
   * Other records (a skipped step, kinds this view does not know) are not drawn.
   */
  add(r: StepMetrics | EvalMetrics | OtherRecord): boolean {
    if (r.type === 'skip') this.skipped++;
    if (r.type !== 'step' && r.type !== 'eval') return false;
    return this.addRecord(r as StepMetrics | EvalMetrics);
  }

  private addRecord(r: StepMetrics | EvalMetrics): boolean {
    const list: (StepMetrics | EvalMetrics)[] = r.type === 'eval' ? this.evals : this.steps;
    const last = list[list.length - 1];
    if (last && last.step >= r.step) {
      if (list.some((x) => x.step === r.step)) return false;
      list.push(r);
      list.sort((a, b) => a.step - b.step);
      return true;
    }
    list.push(r);
    return true;
  }

  /**
   * Chart data over x = parameter version after the record (train step t → t + 1, an evaluation
   * at version v → v): `trainCols` hold one value per step record, `evalCols` one per eval record.
   */
  joined(trainCols: ArrayLike<number>[], evalCols: ArrayLike<number>[]): ChartData {
    const xs = new Set<number>();
    for (const s of this.steps) xs.add(s.step + 1);
    for (const e of this.evals) xs.add(e.step);
    const x = [...xs].sort((a, b) => a - b);
    const index = new Map(x.map((v, i) => [v, i]));
    const ys: (number | null)[][] = [...trainCols, ...evalCols].map(() => new Array<number | null>(x.length).fill(null));
    this.steps.forEach((s, r) => {
      const i = index.get(s.step + 1)!;
      trainCols.forEach((col, c) => (ys[c][i] = col[r]));
    });
    this.evals.forEach((e, r) => {
      const i = index.get(e.step)!;
      evalCols.forEach((col, c) => (ys[trainCols.length + c][i] = col[r]));
    });
    return { x, ys };
  }
}

/**
 * Exponential moving average, debiased like TensorBoard's smoothing (early values are not pulled
 * towards 0). Batch metrics are noisy; the smoothed line shows the trend, the raw one stays faint
 * behind it.
 */
export function smooth(values: readonly number[]): Float64Array {
  const weight = values.length > 200 ? 0.95 : values.length > 50 ? 0.9 : 0.6;
  const out = new Float64Array(values.length);
  let acc = 0;
  let norm = 0;
  for (let i = 0; i < values.length; i++) {
    acc = acc * weight + (1 - weight) * values[i];
    norm = norm * weight + (1 - weight);
    out[i] = acc / norm;
  }
  return out;
}
