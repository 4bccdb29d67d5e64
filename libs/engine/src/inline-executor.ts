// An Executor that computes shards on the calling thread, one after another. For tests, tiny
// jobs and as the reference the other executors must match bit for bit.
import type { Executor, JobContext, ShardResult, ShardTask } from './executor.ts';
import { ShardComputer, stateFromBytes } from './shard.ts';

export class InlineExecutor implements Executor {
  private readonly computers = new Map<string, ShardComputer>();
  private readonly published = new Map<string, { version: number; state: Float32Array }>();

  async publishParams(job: JobContext, version: number, state: Uint8Array): Promise<void> {
    if (state.byteLength !== job.stateLength * 4) {
      throw new RangeError(`InlineExecutor.publishParams: job ${job.jobId} version ${version}: ${state.byteLength} bytes, expected ${job.stateLength * 4}`);
    }
    // A copy: the caller keeps ownership of `state`.
    this.published.set(job.jobId, { version, state: new Float32Array(stateFromBytes(state)) });
  }

  async runShards(job: JobContext, tasks: readonly ShardTask[], signal?: AbortSignal): Promise<ShardResult[]> {
    let computer = this.computers.get(job.jobId);
    if (!computer) {
      computer = new ShardComputer(job);
      this.computers.set(job.jobId, computer);
    }
    const results: ShardResult[] = [];
    for (const task of tasks) {
      signal?.throwIfAborted();
      const published = this.published.get(job.jobId);
      if (published && computer.version !== published.version) computer.setState(published.version, published.state);
      results.push(computer.compute(task, { queueMs: 0, workerId: 'inline' }));
      // Let timers and abort signals run between shards.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return results;
  }

  async releaseJob(jobId: string): Promise<void> {
    this.computers.delete(jobId);
    this.published.delete(jobId);
  }

  async close(): Promise<void> {
    this.computers.clear();
    this.published.clear();
  }
}
