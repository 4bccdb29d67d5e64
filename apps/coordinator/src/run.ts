// Runs a coordinator until SIGTERM/SIGINT: shared by `stride coordinator` and apps/coordinator/src/main.ts.
import { redactUrl, resolveTransportConfig } from '@stride/queue';
import { Coordinator, type CoordinatorOptions } from './coordinator.ts';

/** Options of `runCoordinator`; unset fields come from the environment (REDIS_URL, STRIDE_QUEUE_PREFIX, STRIDE_DATA_DIR). */
export interface RunCoordinatorOptions extends Partial<Omit<CoordinatorOptions, 'config'>> {
  redisUrl?: string;
  prefix?: string;
  /** Print every step (default: steps every 10 s, evaluations, state changes, warnings). */
  verbose?: boolean;
}

/**
 * Starts a coordinator, logs what it does to stderr, and resolves once a signal has closed it.
 * The first SIGTERM/SIGINT stops running jobs at a step boundary, checkpoints them and hands them
 * back to the queue; a second one exits at once (the jobs are resumed from their last checkpoint
 * anyway).
 */
export async function runCoordinator(options: RunCoordinatorOptions = {}): Promise<void> {
  const { redisUrl, prefix, verbose, ...rest } = options;
  const config = resolveTransportConfig({ redisUrl, prefix });
  const coordinator = new Coordinator({ config, ...rest });
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let lastStepLog = 0;
  coordinator.on('job', (r) => log(`job ${r.id} ${r.state.status}${r.state.status === 'failed' ? `: ${r.state.error}` : ''}`));
  coordinator.on('step', (e) => {
    if (!verbose && Date.now() - lastStepLog < 10_000) return;
    lastStepLog = Date.now();
    log(`job ${e.jobId} step ${e.step + 1}/${e.totalSteps} loss ${e.loss.toFixed(4)} acc ${(e.accuracy * 100).toFixed(1)}% ${e.imagesPerSec.toFixed(0)} img/s`);
  });
  coordinator.on('eval', (e) => log(`job ${e.jobId} eval at step ${e.step}: test accuracy ${(e.testAccuracy * 100).toFixed(2)}% loss ${e.testLoss.toFixed(4)}`));
  coordinator.on('log', (e) => {
    if (e.level !== 'info' || verbose) log(`${e.level}: ${e.message}`);
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) process.exit(130);
    log(`coordinator ${coordinator.id}: ${signal}, checkpointing running jobs and handing them back`);
    void coordinator.close();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await coordinator.start();
    log(`coordinator ${coordinator.id}: ${redactUrl(config.redisUrl)}, prefix ${config.prefix}, data ${coordinator.dataDir}`);
    await coordinator.closed;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  log(`coordinator ${coordinator.id}: closed`);
}
