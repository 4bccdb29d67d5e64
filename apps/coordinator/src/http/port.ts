// What the HTTP layer needs from the rest of the coordinator, and nothing more.
//
// The routes are written against this port, not against the Coordinator class, so the wire
// format stays put when the class changes and the routes can be read without knowing BullMQ.
// `adapter.ts` builds the port from the real Coordinator; the field names below are the
// minimum the HTTP layer reads (records are sent to clients as they are, extra fields included).

/** A job as the API returns it (the coordinator's JobRecord). Only `id` and `state.status` are read here. */
export interface JobView {
  readonly id: string;
  /** One named state with its payload; `status` is queued | running | paused | succeeded | failed | cancelled. */
  readonly state: { readonly status: string };
}

/** One step's metrics (a line of metrics.jsonl). */
export interface StepView {
  readonly jobId: string;
  readonly step: number;
  /** Training throughput over the step, when known. */
  readonly imagesPerSec?: number;
}

/** A worker as last seen through its heartbeat. */
export interface WorkerView {
  readonly id: string;
  /** False once its heartbeat is older than the liveness window. */
  readonly alive: boolean;
}

export interface CheckpointView {
  /** File name inside the job's checkpoint folder, e.g. `step-00000100.ckpt`. */
  readonly name: string;
}

/** Counts of one BullMQ queue. */
export interface QueueCountsView {
  readonly waiting: number;
  readonly active: number;
  readonly failed: number;
  readonly [state: string]: number;
}

/** Events pushed to `/api/events` subscribers (the SSE event name is `type`) and counted by `/metrics`. */
export type ApiEvent =
  /** A job changed state or was submitted: its whole record. */
  | { readonly type: 'job'; readonly data: JobView }
  /** One training step's metrics. */
  | { readonly type: 'step'; readonly data: StepView }
  /** One evaluation on the test split. */
  | { readonly type: 'eval'; readonly data: { readonly jobId: string; readonly step: number } }
  /** A checkpoint was written (its file name, not its path). */
  | { readonly type: 'checkpoint'; readonly data: { readonly jobId: string; readonly step: number; readonly name: string } }
  /** The live workers, from their heartbeats (every couple of seconds). */
  | { readonly type: 'workers'; readonly data: readonly WorkerView[] }
  /** A coordinator message worth showing (warnings, a job's log line). */
  | { readonly type: 'log'; readonly data: { readonly jobId?: string; readonly level: string; readonly message: string } };

/** The form's needs: what can be chosen, and the defaults a blank form starts from. */
export interface ApiConfigView {
  readonly datasets: readonly unknown[];
  readonly optimizers: readonly unknown[];
  readonly models: readonly string[];
  readonly defaults: unknown;
  readonly [key: string]: unknown;
}

export interface CoordinatorPort {
  /**
   * Validates a job spec exactly as the engine does (same messages as the CLI), without touching
   * Redis; returns the normalized spec or throws the engine's error naming the field.
   */
  validate(spec: unknown): unknown;
  /** Enqueues a validated job and returns its record. */
  submit(spec: unknown): Promise<JobView>;
  list(): Promise<readonly JobView[]>;
  /** undefined when no job has this id. */
  get(id: string): Promise<JobView | undefined>;
  cancel(id: string): Promise<JobView>;
  pause(id: string): Promise<JobView>;
  resume(id: string): Promise<JobView>;
  metrics(id: string): Promise<readonly unknown[]>;
  checkpoints(id: string): Promise<readonly CheckpointView[]>;
  /** Absolute path of a checkpoint file listed by `checkpoints(id)`. */
  checkpointPath(id: string, name: string): string;
  /** True when `name` follows the checkpoint file naming pattern. */
  isCheckpointName(name: string): boolean;
  workers(): Promise<readonly WorkerView[]>;
  queueCounts(): Promise<Readonly<Record<string, QueueCountsView>>>;
  /** Resolves when Redis answers a PING; rejects otherwise. */
  ping(): Promise<void>;
  /** False when Redis is known to be unreachable right now: calls that need it get a 503 at once. */
  redisReady(): boolean;
  /** Subscribes to every event; returns the unsubscribe function. */
  subscribe(listener: (event: ApiEvent) => void): () => void;
  /** Model names of the zoo. */
  zoo(): readonly string[];
  config(): ApiConfigView;
}
