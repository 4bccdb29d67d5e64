// The job record: a job's lifecycle state on disk, `<dataDir>/jobs/<id>/job.json`, next to the
// engine's spec.json, metrics.jsonl and checkpoints/. Written atomically at every state change;
// the coordinator reads it back on restart to resume what was running.
import { readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { jobPaths, writeFileAtomic, type JobSpec, type JobState, type TrainResult } from '@stride/engine';
import { isJobId, type JobProgress } from '@stride/queue';

/** A job as the coordinator knows it. */
export interface JobRecord {
  readonly id: string;
  readonly name: string;
  /** Normalised spec. */
  readonly spec: JobSpec;
  /** One named state with its payload (queued, running, paused, succeeded, failed, cancelled). */
  readonly state: JobState;
  /** ISO times. */
  readonly submittedAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** Times a coordinator started or resumed the job. */
  readonly runs: number;
  /** Last progress known (live while it runs in this process). */
  readonly progress?: JobProgress;
  /** How the last run ended (succeeded, paused or cancelled). */
  readonly result?: TrainResult;
}

export const TERMINAL: ReadonlySet<JobState['status']> = new Set(['succeeded', 'failed', 'cancelled']);

export function recordFile(dataDir: string, id: string): string {
  return join(jobPaths(dataDir, id).dir, 'job.json');
}

/** The record of job `id`, or undefined when there is none (or it is unreadable: a torn write cannot happen, a hand edit can). */
export async function readRecord(dataDir: string, id: string): Promise<JobRecord | undefined> {
  let text: string;
  try {
    text = await readFile(recordFile(dataDir, id), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const rec = JSON.parse(text) as JobRecord;
    return rec && rec.id === id && typeof rec.state?.status === 'string' ? rec : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRecord(dataDir: string, record: JobRecord): Promise<void> {
  await mkdir(jobPaths(dataDir, record.id).dir, { recursive: true });
  await writeFileAtomic(recordFile(dataDir, record.id), `${JSON.stringify(record, null, 2)}\n`);
}

/** Every job record under `dataDir`. */
export async function readAllRecords(dataDir: string): Promise<JobRecord[]> {
  let names: string[];
  try {
    names = await readdir(join(dataDir, 'jobs'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const records = await Promise.all(names.filter(isJobId).map((id) => readRecord(dataDir, id)));
  return records.filter((r): r is JobRecord => r !== undefined);
}
