// Per-step and per-evaluation metrics, and the job's metrics.jsonl file (one JSON object a line).
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { MetricsRecord } from '@stride/protocol';
import { writeFileAtomic } from './checkpoint-store.ts';

export type { StepMetrics, EvalMetrics, SkippedStep, MetricsRecord, TaskMetrics } from '@stride/protocol';

/** A line of metrics.jsonl that is not a record: its number (from 1) and what is wrong with it. */
export interface InvalidMetricsLine {
  readonly line: number;
  readonly reason: string;
}

/** Options of `MetricsLog.read` and `truncateAfter`. */
export interface ReadOptions {
  /** Called for each line that is skipped (default: skipped silently). */
  onInvalidLine?: (invalid: InvalidMetricsLine) => void;
}

const RECORD_TYPES: ReadonlySet<unknown> = new Set<MetricsRecord['type']>(['step', 'eval', 'skip']);

/** Why a parsed line is not a metrics record, or undefined when it is one. */
function recordProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `expected a JSON object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`;
  }
  const { type, step } = value as { type?: unknown; step?: unknown };
  if (!RECORD_TYPES.has(type)) return `"type" must be "step", "eval" or "skip", got ${JSON.stringify(type) ?? 'nothing'}`;
  if (!Number.isSafeInteger(step) || (step as number) < 0) return `"step" must be an integer >= 0, got ${JSON.stringify(step) ?? 'nothing'}`;
  return undefined;
}

/** The records of a metrics.jsonl text with their lines; blank lines are ignored, the others that are not records reported. */
function parseLines(text: string, onInvalidLine?: (invalid: InvalidMetricsLine) => void): { text: string; record: MetricsRecord }[] {
  const out: { text: string; record: MetricsRecord }[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (!line.trim()) continue;
    let value: unknown;
    let reason: string | undefined;
    try {
      value = JSON.parse(line);
      reason = recordProblem(value);
    } catch (err) {
      // Typically a torn last line after a crash.
      reason = `not valid JSON (${(err as Error).message})`;
    }
    if (reason === undefined) out.push({ text: line, record: value as MetricsRecord });
    else onInvalidLine?.({ line: i + 1, reason });
  }
  return out;
}

/**
 * Appends records to metrics.jsonl. On resume from the checkpoint at step s, `truncateAfter(s)`
 * drops the records written after that checkpoint (they will be written again, identically up to
 * the timings), so the file reads as one uninterrupted run.
 */
export class MetricsLog {
  private handle?: FileHandle;
  private closing?: Promise<void>;
  /** Lines are written one after the other, in the order they were given. */
  private writing: Promise<void> = Promise.resolve();
  /** The first failed write of `appendLater`: reported by the next `append`, `flush` or `close`. */
  private failure?: Error;

  constructor(readonly file: string) {}

  /**
   * Keeps only the records that belong to the first `step` steps: step records with step < `step`
   * and eval records with step <= `step`. Lines that are not records (a torn last line, `null`, a
   * damaged line) are dropped and reported to `onInvalidLine`.
   */
  async truncateAfter(step: number, options: ReadOptions = {}): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const kept = parseLines(text, options.onInvalidLine)
      .filter(({ record: rec }) => ((rec.type === 'step' || rec.type === 'skip') && rec.step < step) || (rec.type === 'eval' && rec.step <= step))
      .map(({ text: line }) => line);
    await writeFileAtomic(this.file, kept.length ? `${kept.join('\n')}\n` : '');
  }

  /** Appends one record as a line, after the lines queued before it; resolves once it is written. */
  async append(record: MetricsRecord): Promise<void> {
    this.appendLater(record);
    await this.flush();
  }

  /**
   * Queues one record as a line and returns at once: the training loop does not wait for the disk
   * every step. `flush` waits for what is queued (the trainer flushes before every checkpoint, so
   * a checkpoint never records a step whose line is not on disk).
   */
  appendLater(record: MetricsRecord): void {
    const line = `${JSON.stringify(record)}\n`;
    this.writing = this.writing.then(async () => {
      if (this.failure) return;
      try {
        this.handle ??= await open(this.file, 'a');
        await this.handle.write(line);
      } catch (err) {
        this.failure = err as Error;
      }
    });
  }

  /** Waits for every queued line; throws the first write error. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.failure) throw this.failure;
  }

  /** Reads every record of a metrics.jsonl file; lines that are not records are skipped and reported to `onInvalidLine`. */
  static async read(file: string, options: ReadOptions = {}): Promise<MetricsRecord[]> {
    return parseLines(await readFile(file, 'utf8'), options.onInvalidLine).map(({ record }) => record);
  }

  /** Closes the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.writing;
      try {
        await this.handle?.close();
      } catch {
        // Already closed.
      }
    })();
    return this.closing;
  }
}
