// The work sharing of the LocalExecutor, used on both sides: every compute thread of a runShards
// call (worker threads and, optionally, the calling thread) takes the next shard index from one
// counter in shared memory until none is left. One message per thread per call, whatever the
// number of shards, and no thread waits while another has shards queued.
import { wallClock, type JobContext, type ShardResult, type ShardTask } from './executor.ts';
import type { ShardComputer } from './shard.ts';

/** A runShards call as a compute thread sees it. */
export interface LocalShardsRequest {
  readonly type: 'shards';
  readonly job: JobContext;
  /** Parameter version held in `state`. */
  readonly version: number;
  /** The packed state of that version, float32, shared read-only with every thread. */
  readonly state: SharedArrayBuffer;
  /** Every task of the call (their pixels are views of one shared buffer: sent without a copy). */
  readonly tasks: readonly ShardTask[];
  /** Int32 [1]: the index of the next task nobody has taken. */
  readonly claim: SharedArrayBuffer;
  /** `wallClock()` when the call started. */
  readonly queuedAt: number;
  /**
   * Per task (train calls): where its gradient and buffers go, `job.stateLength` float32 of
   * shared memory (see `ShardComputer.compute`); results then carry views of it.
   */
  readonly out?: readonly SharedArrayBuffer[];
}

/** A computed task of a call, by its index in `LocalShardsRequest.tasks`. */
export interface ClaimedShard {
  readonly index: number;
  readonly result: ShardResult;
}

/** Computes tasks of `req` on this thread, taking indices from its counter until none are left. */
export function claimShards(computer: ShardComputer, req: LocalShardsRequest, workerId: string, signal?: AbortSignal): ClaimedShard[] {
  const claim = new Int32Array(req.claim);
  const done: ClaimedShard[] = [];
  for (let index = Atomics.add(claim, 0, 1); index < req.tasks.length; index = Atomics.add(claim, 0, 1)) {
    const startedAt = wallClock();
    if (computer.version !== req.version) computer.setState(req.version, new Float32Array(req.state));
    const fetchMs = wallClock() - startedAt;
    const out = req.out?.[index];
    const result = computer.compute(req.tasks[index], { queueMs: Math.max(0, startedAt - req.queuedAt), workerId }, out && new Float32Array(out));
    done.push({ index, result: { ...result, timing: { enqueuedAt: req.queuedAt, startedAt, fetchMs, uploadMs: 0, doneAt: wallClock() } } });
    if (signal?.aborted) {
      // Nobody takes another task of the call.
      Atomics.store(claim, 0, req.tasks.length);
      break;
    }
  }
  return done;
}

/**
 * The tasks with their pixels copied into one SharedArrayBuffer (views of it), so threads receive
 * them without a copy each: into `into` when it is large enough, else into a new one.
 */
export function shareImages(tasks: readonly ShardTask[], into?: SharedArrayBuffer): { tasks: ShardTask[]; buffer: SharedArrayBuffer } {
  let bytes = 0;
  for (const t of tasks) bytes += t.images.byteLength;
  const buffer = into !== undefined && into.byteLength >= bytes ? into : new SharedArrayBuffer(bytes);
  const shared = new Uint8Array(buffer);
  let offset = 0;
  const copies = tasks.map((t) => {
    const images = shared.subarray(offset, offset + t.images.byteLength);
    images.set(t.images);
    offset += t.images.byteLength;
    return { ...t, images };
  });
  return { tasks: copies, buffer };
}
