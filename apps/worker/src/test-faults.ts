// Test-only faults for the fault-injection harness (tools/chaos): a worker that crashes on one
// shard, or returns a corrupt gradient for it. Inert unless STRIDE_TEST_FAULTS is set, which
// nobody does outside the harness.
//
//   STRIDE_TEST_FAULTS='[{"do":"crash","step":12,"shard":1}, {"do":"scale","step":30,"shard":0,"factor":1e6,"times":1}]'
//
// Each fault matches a training shard (step, shard, optionally jobId):
//   crash        the worker process exits (code 70) as soon as it takes the shard, holding its lock;
//   nan / inf    the shard's gradient is computed, then its first value is set to NaN / +Infinity;
//   scale        the shard's gradient is computed, then multiplied by `factor`.
// `times` (optional) limits a fault to its first n hits across all workers of the queue (counted
// in Redis); without it the fault hits every time.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BlobStore, Keys, ShardReturn } from '@stride/queue';

export interface TestFault {
  readonly do: 'crash' | 'nan' | 'inf' | 'scale';
  readonly step: number;
  readonly shard: number;
  readonly jobId?: string;
  readonly factor?: number;
  readonly times?: number;
}

/** The faults of STRIDE_TEST_FAULTS (empty when unset); throws naming the entry that is wrong. */
export function parseTestFaults(raw: string | undefined): TestFault[] {
  if (raw === undefined || raw === '') return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch (err) {
    throw new Error(`STRIDE_TEST_FAULTS: not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(list)) throw new Error('STRIDE_TEST_FAULTS: expected a JSON array of faults');
  return list.map((f: Partial<TestFault>, i) => {
    const where = `STRIDE_TEST_FAULTS[${i}]`;
    if (!f || typeof f !== 'object') throw new Error(`${where}: expected an object`);
    if (!['crash', 'nan', 'inf', 'scale'].includes(f.do as string)) throw new Error(`${where}.do: expected crash, nan, inf or scale, got ${JSON.stringify(f.do)}`);
    for (const k of ['step', 'shard'] as const) if (!Number.isInteger(f[k]) || f[k]! < 0) throw new Error(`${where}.${k}: expected an integer >= 0, got ${JSON.stringify(f[k])}`);
    if (f.do === 'scale' && !(typeof f.factor === 'number' && Number.isFinite(f.factor))) throw new Error(`${where}.factor: expected a finite number, got ${JSON.stringify(f.factor)}`);
    if (f.times !== undefined && !(Number.isInteger(f.times) && f.times >= 1)) throw new Error(`${where}.times: expected an integer >= 1, got ${JSON.stringify(f.times)}`);
    return f as TestFault;
  });
}

type Process = (job: Job) => Promise<ShardReturn>;

/** Wraps a shard processor with the faults (returns it unchanged when there are none). */
export function withTestFaults(process_: Process, faults: readonly TestFault[], deps: { redis: Redis; keys: Keys; store: BlobStore; log: (line: string) => void }): Process {
  if (faults.length === 0) return process_;
  return async (job) => {
    const d = job.data as { jobId?: string; kind?: string; step?: number; shard?: number };
    const index = d.kind === 'train' ? faults.findIndex((f) => f.step === d.step && f.shard === d.shard && (f.jobId === undefined || f.jobId === d.jobId)) : -1;
    if (index < 0) return process_(job);
    const fault = faults[index];
    if (fault.times !== undefined) {
      const hits = await deps.redis.incr(`${deps.keys.prefix}:test-fault:${d.jobId}:${index}`);
      if (hits > fault.times) return process_(job);
    }
    if (fault.do === 'crash') {
      deps.log(`test fault: crashing on shard job ${job.id} (step ${d.step} shard ${d.shard})`);
      process.exit(70);
    }
    const ret = await process_(job);
    const context = await deps.store.getContext(ret.jobId);
    const grad = await deps.store.getGradient(ret.jobId, ret.step, ret.shard, { gradientLength: context.gradientLength, bufferLength: context.bufferLength });
    if (!grad) throw new Error(`test fault: gradient of shard job ${job.id} is missing`);
    const g = grad.gradient;
    if (fault.do === 'nan') g[0] = NaN;
    else if (fault.do === 'inf') g[0] = Infinity;
    else for (let i = 0; i < g.length; i++) g[i] *= fault.factor!;
    await deps.store.putGradient(grad);
    deps.log(`test fault: ${fault.do}${fault.do === 'scale' ? ` ×${fault.factor}` : ''} on the gradient of shard job ${job.id}`);
    return ret;
  };
}
