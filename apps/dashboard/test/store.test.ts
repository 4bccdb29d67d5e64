// The jobs store under out-of-order answers: a job list fetched before a job was cancelled, and
// answered after the `cancelled` event, does not bring the job back to `running` (the race behind
// the flaky "cancels a running job" browser test: the list is refetched whenever the event stream
// reconnects). The API is a stubbed fetch whose answer the test releases.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { JobState } from '@stride/protocol';
import { JobsStore } from '../src/ui/store.ts';
import type { Job } from '../src/ui/types.ts';

const SPEC = { name: 'j', model: 'lenet5', dataset: 'mnist', steps: 100, batchSize: 8, shards: 2, seed: 1, optimizer: { type: 'adam', lr: 0.003 }, schedule: { type: 'constant' }, evalEvery: 'epoch', evalShards: 1 };

function job(id: string, state: JobState, updatedAt: string): Job {
  return { id, name: id, spec: SPEC, state, submittedAt: '2026-01-01T00:00:00.000Z', updatedAt, runs: 1 } as unknown as Job;
}

/** Stubs fetch with one pending answer to GET /api/jobs; returns the function that sends it. */
function pendingJobList(): (jobs: Job[]) => void {
  let answer!: (jobs: Job[]) => void;
  const body = new Promise<Job[]>((resolve) => (answer = resolve));
  vi.stubGlobal(
    'fetch',
    vi.fn(async (path: string) => {
      expect(path).toBe('/api/jobs');
      return new Response(JSON.stringify({ jobs: await body }), { status: 200, headers: { 'content-type': 'application/json' } });
    }),
  );
  return answer;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('JobsStore', () => {
  it('a job list older than an event does not undo it; newer records and new jobs in the list are taken', async () => {
    const store = new JobsStore();
    store.upsert(job('a', { status: 'running', step: 5, totalSteps: 100 }, '2026-01-01T00:00:01.000Z'));
    store.upsert(job('b', { status: 'running', step: 1, totalSteps: 100 }, '2026-01-01T00:00:01.000Z'));
    const answer = pendingJobList();
    const refreshing = store.refresh();
    // While the list is on its way, job a is cancelled (its event arrives first).
    store.upsert(job('a', { status: 'cancelled', step: 6, totalSteps: 100 }, '2026-01-01T00:00:03.000Z'));
    answer([
      job('a', { status: 'running', step: 5, totalSteps: 100 }, '2026-01-01T00:00:01.000Z'), // read before the cancel
      job('b', { status: 'paused', step: 2, totalSteps: 100 }, '2026-01-01T00:00:02.000Z'), // newer than the store's
      job('c', { status: 'queued' }, '2026-01-01T00:00:02.500Z'), // not seen before
    ]);
    await refreshing;
    expect(store.loaded).toBe(true);
    expect(store.error).toBeUndefined();
    expect(Object.fromEntries(store.list().map((j) => [j.id, j.state.status]))).toEqual({ a: 'cancelled', b: 'paused', c: 'queued' });
    // A final state also wins over a record that claims a later time but is not final.
    store.upsert(job('a', { status: 'running', step: 7, totalSteps: 100 }, '2026-01-01T00:00:09.000Z'));
    expect(store.jobs.get('a')?.state.status).toBe('cancelled');
  });
});
