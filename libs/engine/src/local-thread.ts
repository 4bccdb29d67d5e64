// Thread side of the LocalExecutor: one ShardComputer per job, fed parameter versions from shared
// memory; takes shards of a runShards call from a counter shared with the other threads (and the
// calling thread, when it computes too) until none are left.
import { ShardComputer } from './shard.ts';
import { serveThread, threadIndex } from './thread-pool.ts';
import { claimShards, type ClaimedShard, type LocalShardsRequest } from './local-shards.ts';

/** Requests the LocalExecutor sends to its threads. */
export type LocalThreadRequest = LocalShardsRequest | { readonly type: 'release'; readonly jobId: string };

export type LocalThreadReply = { readonly done: readonly ClaimedShard[] } | { readonly released: string };

const index = threadIndex();
/** How long a thread waits for its next shards blocked rather than in its event loop (see `serveThread`). */
const PARK_MS = 20;
const computers = new Map<string, ShardComputer>();

serveThread<LocalThreadRequest, LocalThreadReply>(
  (req) => {
    if (req.type === 'release') {
      computers.delete(req.jobId);
      return { released: req.jobId };
    }
    let computer = computers.get(req.job.jobId);
    if (!computer) {
      computer = new ShardComputer(req.job);
      computers.set(req.job.jobId, computer);
    }
    return { done: claimShards(computer, req, `thread-${index ?? '?'}`) };
  },
  {
    // A step's next shards follow its reduction and optimizer step within milliseconds (longer
    // only for big models or at the end of an epoch): wait for them off the event loop.
    parkMs: PARK_MS,
    // Move the gradients and buffers to the main thread instead of copying them.
    transferOf: (reply) =>
      'done' in reply
        ? reply.done.flatMap(({ result }) => [result.gradient?.buffer, result.buffers?.buffer]).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer)
        : [],
  },
);
