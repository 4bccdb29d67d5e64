// The HTTP port over the real Coordinator: fills the few gaps between what the class offers and
// what the routes need (submit returns an id, checkpoints carry server paths, no Redis ping, one
// subscription for every event), and nothing else.
import { basename, join } from 'node:path';
import { Redis } from 'ioredis';
import { zooNames, type OptimizerSpec, type ScheduleSpec } from '@stride/cnn';
import { DATASETS, DATASET_SHAPES, jobPaths, normalizeJobSpec } from '@stride/engine';
import type { TransportConfig } from '@stride/queue';
import type { Coordinator } from '../coordinator.ts';
import { ServiceUnavailableError } from './errors.ts';
import type { ApiConfigView, ApiEvent, CheckpointView, CoordinatorPort } from './port.ts';

/** `step-00000100.ckpt`: the engine's checkpoint file names (CheckpointStore). */
export const CHECKPOINT_NAME = /^step-\d{8,}\.ckpt$/;

/** The choices the form offers (the cnn lib validates them; it exports no list of its own). */
const OPTIMIZERS: readonly OptimizerSpec['type'][] = ['sgd', 'adam', 'adamw'];
const SCHEDULES: readonly ScheduleSpec['type'][] = ['constant', 'step', 'cosine', 'onecycle'];

export interface CoordinatorPortOptions {
  /** Where the coordinator's Redis is; a separate, non-queuing client answers `/healthz`. */
  config: TransportConfig;
}

/** A port plus the resources it owns. */
export interface OwnedCoordinatorPort extends CoordinatorPort {
  /** Closes the health-check client. Idempotent. Does not close the coordinator. */
  close(): Promise<void>;
}

/** Builds the HTTP port of a started (or starting) Coordinator. */
export function coordinatorPort(coordinator: Coordinator, options: CoordinatorPortOptions): OwnedCoordinatorPort {
  // The coordinator's own client waits for Redis forever (training pauses, it does not fail);
  // the API wants to know *now*, so it gets a client that fails fast instead of queueing.
  const health = new Redis(options.config.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectionName: `stride-api-health-${coordinator.id}`,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  health.on('error', () => {
    // Reported by ping() / redisReady(); ioredis keeps reconnecting.
  });

  const checkpointDir = (id: string): string => jobPaths(coordinator.dataDir, id).checkpoints;
  let closing: Promise<void> | undefined;

  const port: OwnedCoordinatorPort = {
    validate: (spec) => normalizeJobSpec(spec),

    async submit(spec) {
      const id = await coordinator.submit(spec as Parameters<Coordinator['submit']>[0]);
      const record = await coordinator.get(id);
      if (!record) throw new Error(`job ${id} was submitted but has no record`);
      return record;
    },
    list: () => coordinator.list(),
    get: (id) => coordinator.get(id),
    cancel: (id) => coordinator.cancel(id),
    pause: (id) => coordinator.pause(id),
    resume: (id) => coordinator.resume(id),
    metrics: (id) => coordinator.metrics(id),

    async checkpoints(id) {
      const list = await coordinator.checkpoints(id);
      // The file's name only: server paths are none of the client's business.
      return list.map(({ file, ...rest }): CheckpointView & typeof rest => ({ name: basename(file), ...rest }));
    },
    checkpointPath: (id, name) => join(checkpointDir(id), basename(name)),
    isCheckpointName: (name) => CHECKPOINT_NAME.test(name),

    async workers() {
      // listWorkers returns only workers whose heartbeat is recent.
      return (await coordinator.workers()).map((w) => ({ ...w, alive: true }));
    },
    async queueCounts() {
      const counts = await coordinator.queueCounts();
      return Object.fromEntries(Object.entries(counts).map(([q, c]) => [q, { waiting: 0, active: 0, failed: 0, ...c }]));
    },

    async ping() {
      if (health.status !== 'ready') throw new ServiceUnavailableError(`Redis is unreachable (connection ${health.status})`);
      await health.ping();
    },
    redisReady: () => health.status === 'ready',

    subscribe(listener) {
      const send = (event: ApiEvent): void => listener(event);
      const offs = [
        coordinator.on('job', (data) => send({ type: 'job', data })),
        coordinator.on('step', (data) => send({ type: 'step', data })),
        coordinator.on('eval', (data) => send({ type: 'eval', data })),
        coordinator.on('checkpoint', ({ file, ...rest }) => send({ type: 'checkpoint', data: { ...rest, name: basename(file) } })),
        coordinator.on('workers', (workers) => send({ type: 'workers', data: workers.map((w) => ({ ...w, alive: true })) })),
        coordinator.on('log', (data) => send({ type: 'log', data })),
      ];
      return () => {
        for (const off of offs) off();
      };
    },

    zoo: () => zooNames(),
    config(): ApiConfigView {
      return {
        datasets: DATASETS.map((name) => ({ name, ...DATASET_SHAPES[name] })),
        models: zooNames(),
        optimizers: OPTIMIZERS,
        schedules: SCHEDULES,
        // The engine's own defaults: what a spec naming only a model and a dataset becomes.
        defaults: normalizeJobSpec({ model: zooNames().includes('lenet5') ? 'lenet5' : zooNames()[0], dataset: DATASETS[0] }),
      };
    },

    close() {
      closing ??= health.quit().then(
        () => undefined,
        () => health.disconnect(),
      );
      return closing;
    },
  };
  return port;
}
