// Thread side of the shard processor: one ShardComputer per recent job, fed parameter versions
// from shared memory. Runs inside the processor's ThreadPool (see processor.ts).
import { serveThread, ShardComputer, wallClock, type JobContext, type ShardResult, type ShardTask } from '@stride/engine';

/** What the processor sends a thread: everything to compute one shard, or a ping (answered once the thread is up). */
export type ShardThreadRequest = ShardRequest | { readonly type: 'ping' };

interface ShardRequest {
  readonly type: 'shard';
  readonly context: JobContext;
  /** Parameter version held in `state`. */
  readonly version: number;
  /** The packed state of that version, float32, shared read-only by every thread. */
  readonly state: SharedArrayBuffer;
  readonly task: ShardTask;
  readonly queueMs: number;
  readonly workerId: string;
}

/**
 * Models kept per thread. A worker serves jobs one after the other for days: older models are
 * dropped (and rebuilt if their job comes back) instead of piling up.
 */
const MAX_MODELS = 2;
const computers = new Map<string, ShardComputer>();

function computerFor(context: JobContext): ShardComputer {
  let computer = computers.get(context.jobId);
  if (computer) {
    // Re-insert: Map iteration order is insertion order, so the first key is the least recently used.
    computers.delete(context.jobId);
  } else {
    computer = new ShardComputer(context);
    while (computers.size >= MAX_MODELS) computers.delete(computers.keys().next().value!);
  }
  computers.set(context.jobId, computer);
  return computer;
}

serveThread<ShardThreadRequest, ShardResult | 'pong'>(
  (req) => {
    if (req.type === 'ping') return 'pong';
    const startedAt = wallClock();
    const computer = computerFor(req.context);
    if (computer.version !== req.version) computer.setState(req.version, new Float32Array(req.state));
    const fetchMs = wallClock() - startedAt;
    const result = computer.compute(req.task, { queueMs: req.queueMs, workerId: req.workerId });
    // The thread's part of the timeline (the processor adds Redis's): when it took the shard, loading the version.
    return { ...result, timing: { startedAt, fetchMs, uploadMs: 0, doneAt: wallClock() } };
  },
  {
    // Move the gradient and buffers to the main thread instead of copying them.
    transferOf: (r) => (r === 'pong' ? [] : [r.gradient?.buffer, r.buffers?.buffer].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer)),
  },
);
