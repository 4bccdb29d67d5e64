// Public face of @stride/coordinator: the job runner (the HTTP API builds on the Coordinator class).
export { Coordinator, JobStateError, JobNotFoundError } from './coordinator.ts';
export type { CoordinatorOptions, CoordinatorListener, StepEvent, CheckpointInfo } from './coordinator.ts';
export { readRecord, readAllRecords, writeRecord, recordFile, TERMINAL, addShardsToTally, UNKNOWN_WORKER } from './records.ts';
export type { JobRecord, WorkerTally } from './records.ts';
export { JobLease } from './lease.ts';
export { runCoordinator } from './run.ts';
export type { RunCoordinatorOptions } from './run.ts';
export type { ApiOptions } from './run.ts';
export { apiOptionsFromEnv } from './env.ts';
export { buildHttpServer, startHttpServer } from './http/server.ts';
export type { HttpServerOptions } from './http/server.ts';
export { coordinatorPort } from './http/adapter.ts';
