// The workers tally kept in a job record: pure accounting, no Redis.
import { describe, expect, it } from 'vitest';
import type { ShardsUsed } from '@stride/engine';
import { addShardsToTally, UNKNOWN_WORKER, type WorkerTally } from '../src/index.ts';

const used = (kind: 'train' | 'eval', step: number, shards: [string | undefined, number][]): ShardsUsed => ({
  jobId: 'j',
  kind,
  step,
  shards: shards.map(([workerId, computeMs]) => ({ workerId, computeMs })),
});

describe('addShardsToTally', () => {
  it('counts shards and compute time per worker, train and eval alike, in first-seen order', () => {
    const hosts = new Map([['a:1:x', 'a']]);
    let tally = addShardsToTally(undefined, used('train', 0, [['a:1:x', 10], ['b:2:y', 20], ['a:1:x', 5]]), (id) => hosts.get(id), 't0');
    tally = addShardsToTally(tally, used('eval', 1, [['b:2:y', 1], [undefined, 2]]), (id) => hosts.get(id), 't1');
    expect(tally).toEqual<WorkerTally[]>([
      { id: 'a:1:x', host: 'a', shards: 2, computeMs: 15, lastSeen: 't0' },
      { id: 'b:2:y', shards: 2, computeMs: 21, lastSeen: 't1' },
      { id: UNKNOWN_WORKER, shards: 1, computeMs: 2, lastSeen: 't1' },
    ]);
  });

  it('returns a new array and keeps a host once seen after the worker is gone from the heartbeats', () => {
    const before: WorkerTally[] = [{ id: 'a:1:x', host: 'a', shards: 4, computeMs: 40, lastSeen: 't0' }];
    const after = addShardsToTally(before, used('train', 7, [['a:1:x', 3], ['a:1:x', 4]]), () => undefined, 't2');
    expect(after).toEqual([{ id: 'a:1:x', host: 'a', shards: 6, computeMs: 47, lastSeen: 't2' }]);
    expect(before[0].shards).toBe(4);
  });
});
