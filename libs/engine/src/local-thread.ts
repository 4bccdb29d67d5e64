// Thread side of the LocalExecutor: one ShardComputer per job, fed parameter versions from shared memory.
import { wallClock, type JobContext, type ShardResult, type ShardTask } from './executor.ts';
import { ShardComputer } from './shard.ts';
import { serveThread, threadIndex } from './thread-pool.ts';

/** Requests the LocalExecutor sends to its threads. */
export type LocalThreadRequest =
  | {
      readonly type: 'shard';
      readonly job: JobContext;
      /** Parameter version held in `state`. */
      readonly version: number;
      /** The packed state of that version, float32, shared read-only with every thread. */
      readonly state: SharedArrayBuffer;
      readonly task: ShardTask;
      /** `wallClock()` when the task was queued. */
      readonly queuedAt: number;
    }
  | { readonly type: 'release'; readonly jobId: string };

export type LocalThreadReply = ShardResult | { readonly released: string };

const index = threadIndex();
const computers = new Map<string, ShardComputer>();

serveThread<LocalThreadRequest, LocalThreadReply>(
  (req) => {
    if (req.type === 'release') {
      computers.delete(req.jobId);
      return { released: req.jobId };
    }
    const startedAt = wallClock();
    const queueMs = Math.max(0, startedAt - req.queuedAt);
    let computer = computers.get(req.job.jobId);
    if (!computer) {
      computer = new ShardComputer(req.job);
      computers.set(req.job.jobId, computer);
    }
    if (computer.version !== req.version) computer.setState(req.version, new Float32Array(req.state));
    const fetchMs = wallClock() - startedAt;
    const result = computer.compute(req.task, { queueMs, workerId: `thread-${index ?? '?'}` });
    // The gradient travels with the reply (transferred, not copied): nothing to upload.
    return { ...result, timing: { enqueuedAt: req.queuedAt, startedAt, fetchMs, uploadMs: 0, doneAt: wallClock() } };
  },
  {
    // Move the gradient and buffers to the main thread instead of copying them.
    transferOf: (reply) => ('kind' in reply ? [reply.gradient?.buffer, reply.buffers?.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer) : []),
  },
);
