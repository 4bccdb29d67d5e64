// Public face of @stride/chaos: fault injection against real Stride processes.
import type { JobSpecInput } from '@stride/engine';

export { runScenario, referenceHash, seededRandom, CHAOS_COORDINATOR_ENV } from './harness.ts';
export type { ChaosContext, CoordinatorProc, FaultKind, Injection, RunOptions, RunReport, Scenario, WorkerFault, WorkerProc } from './harness.ts';
export { scenarios, pickSteps } from './scenarios.ts';
export { formatTable, formatKindTable, summarizeKinds, describeInjections } from './report.ts';
export type { KindSummary } from './report.ts';
export { runSoak, formatSoak } from './soak.ts';
export type { SoakReport } from './soak.ts';
export { RedisServer, TcpProxy, freePort, spawnNode, spawnProcess, startWorker, killAll, COORDINATOR_MAIN, WORKER_MAIN } from './procs.ts';
export type { Spawned } from './procs.ts';

/**
 * LeNet-5, 4 shards of 16 images (tens of ms each: still hit mid-shard), a checkpoint every 10
 * steps. Steps take ~100 ms on two workers, so the job is long enough in wall time for faults whose
 * recovery takes seconds (process start, lock expiry).
 */
export const CHAOS_SPEC: JobSpecInput = { model: 'lenet5', dataset: 'mnist', steps: 120, batchSize: 64, shards: 4, seed: 7, checkpointEvery: 10, evalShards: 2, evalSamples: 200 };

/** `--quick`: the same job, shorter. */
export const CHAOS_SPEC_QUICK: JobSpecInput = { ...CHAOS_SPEC, steps: 48, checkpointEvery: 8 };
