// The job record: a job's lifecycle state on disk, `<dataDir>/jobs/<id>/job.json`, next to the
// engine's spec.json, metrics.jsonl and checkpoints/. Written atomically at every state change
// and, while the job runs, after every checkpoint (with its workers tally); the coordinator reads
// it back on restart to resume what was running.
import { readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { jobPaths, writeFileAtomic, type ShardsUsed } from '@stride/engine';
import { FINAL_STATES, type JobRecord, type WorkerTally } from '@stride/protocol';
import { isJobId } from '@stride/queue';

export type { JobRecord, WorkerTally } from '@stride/protocol';

/** The tally id of results that carry no worker id. */
export const UNKNOWN_WORKER = 'unknown';

/**
 * `tally` with the shards of one step or evaluation added (a new array; `tally` is not changed),
 * in first-seen order. `hostOf` names a worker's host when known; a host seen before is kept.
 */
export function addShardsToTally(tally: readonly WorkerTally[] | undefined, used: ShardsUsed, hostOf: (id: string) => string | undefined, at: string): WorkerTally[] {
  const out = [...(tally ?? [])];
  const index = new Map(out.map((w, i) => [w.id, i]));
  for (const { workerId, computeMs } of used.shards) {
    const id = workerId ?? UNKNOWN_WORKER;
    const i = index.get(id);
    const prev = i === undefined ? undefined : out[i];
    const host = hostOf(id) ?? prev?.host;
    const next: WorkerTally = {
      id,
      ...(host === undefined ? {} : { host }),
      shards: (prev?.shards ?? 0) + 1,
      computeMs: (prev?.computeMs ?? 0) + computeMs,
      lastSeen: at,
    };
    if (i === undefined) {
      index.set(id, out.length);
      out.push(next);
    } else {
      out[i] = next;
    }
  }
  return out;
}

/** Statuses a job does not leave. */
export const TERMINAL = FINAL_STATES;

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
