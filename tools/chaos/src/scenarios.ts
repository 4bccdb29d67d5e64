// The faults, in priority order. Each picks its moments from the seeded generator: `count` target
// steps spread over the job, plus a random delay into the step so the fault lands mid-step.
import type { ChaosContext, Scenario } from './harness.ts';

/** `count` distinct steps in [2, total − 3], one per equal segment: faults spread over the job. */
export function pickSteps(ctx: ChaosContext, count: number): number[] {
  const lo = 2;
  const span = Math.max(1, ctx.totalSteps - 3 - lo);
  return Array.from({ length: count }, (_, i) => lo + Math.floor(((i + ctx.rng()) * span) / count));
}

/** Waits for `step` completed steps, then up to `jitterMs` more. */
async function atStep(ctx: ChaosContext, step: number, jitterMs = 300): Promise<void> {
  await ctx.waitStep(step);
  await ctx.sleep(Math.floor(ctx.rng() * jitterMs));
}

/**
 * Signals the worker holding a training shard and starts a replacement at once. Resolves as soon as
 * the signal is sent, with `done`: the victim's exit code once the replacement is up too (the job
 * goes on meanwhile).
 */
async function hitWorkerMidShard(ctx: ChaosContext, signal: 'SIGKILL' | 'SIGTERM'): Promise<{ done: Promise<number | string> }> {
  const { worker, shardJob } = await ctx.workerMidShard();
  worker.child.kill(signal);
  ctx.inject(`worker ${signal}`, `${worker.id} holding ${shardJob}`);
  ctx.workers.splice(ctx.workers.indexOf(worker), 1);
  return { done: Promise.all([worker.exited, ctx.startWorker()]).then(([code]) => code) };
}

export function scenarios(quick: boolean): Scenario[] {
  return [
    {
      name: 'worker-kill',
      description: 'SIGKILL of the worker holding a shard, several times; a fresh worker each time',
      aof: false,
      workers: 2,
      async run(ctx) {
        const exits: Promise<number | string>[] = [];
        for (const s of pickSteps(ctx, quick ? 2 : 3)) {
          await atStep(ctx, s, 100);
          exits.push((await hitWorkerMidShard(ctx, 'SIGKILL')).done);
        }
        await Promise.all(exits);
      },
    },
    {
      name: 'worker-term',
      description: 'SIGTERM of the worker holding a shard (clean exit expected); a replacement started',
      aof: false,
      workers: 2,
      async run(ctx) {
        const exits: Promise<number | string>[] = [];
        for (const s of pickSteps(ctx, 2)) {
          await atStep(ctx, s, 100);
          exits.push((await hitWorkerMidShard(ctx, 'SIGTERM')).done);
        }
        for (const code of await Promise.all(exits)) ctx.expect(code === 0, `a SIGTERMed worker exited with ${code}, not 0`);
      },
    },
    {
      name: 'coordinator-kill',
      description: 'SIGKILL of the coordinator mid-step, started again after 0–2 s',
      aof: false,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 2)) {
          await atStep(ctx, s);
          await ctx.killCoordinator('SIGKILL');
          ctx.inject('coordinator SIGKILL');
          await ctx.sleep(Math.floor(ctx.rng() * 2000));
          await ctx.startCoordinator();
          ctx.inject('coordinator started');
        }
      },
    },
    {
      name: 'redis-restart',
      description: 'Redis SHUTDOWN (AOF flushed) mid-step, started again on the same port and directory after 0.5–3 s',
      aof: true,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 2)) {
          await atStep(ctx, s);
          await ctx.redis.shutdown();
          ctx.inject('redis SHUTDOWN');
          await ctx.sleep(500 + Math.floor(ctx.rng() * 2500));
          await ctx.redis.start();
          ctx.inject('redis started');
        }
      },
    },
    {
      name: 'redis-kill',
      description: 'Redis SIGKILL mid-step (AOF, fsync every second: up to 1 s of writes lost), restarted after 0.5–3 s',
      aof: true,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 2)) {
          await atStep(ctx, s);
          await ctx.redis.kill();
          ctx.inject('redis SIGKILL');
          await ctx.sleep(500 + Math.floor(ctx.rng() * 2500));
          await ctx.redis.start();
          ctx.inject('redis started');
        }
      },
    },
    {
      name: 'workers-gone',
      description: 'every worker SIGKILLed mid-step; new ones start 2–6 s later',
      aof: false,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, 1)) {
          await atStep(ctx, s);
          const gone = ctx.workers.splice(0);
          for (const w of gone) w.child.kill('SIGKILL');
          await Promise.all(gone.map((w) => w.exited));
          ctx.inject('all workers SIGKILL', `${gone.length} workers`);
          await ctx.sleep(2000 + Math.floor(ctx.rng() * 4000));
          ctx.inject('2 new workers starting');
          await Promise.all([ctx.startWorker(), ctx.startWorker()]);
        }
      },
    },
  ];
}
