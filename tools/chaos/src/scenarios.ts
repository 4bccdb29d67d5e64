// The faults, by kind (workers, coordinator, Redis, numbers). Each scenario picks its moments from
// the seeded generator: target steps spread over the job, plus a random delay into the step so the
// fault lands mid-step. A full `npm run chaos` (2 runs of each) injects ≥ 20 faults of every kind.
import type { ChaosContext, CoordinatorProc, Scenario, WorkerFault, WorkerProc } from './harness.ts';

/** `count` distinct steps in [lo, total − 3], one per equal segment: faults spread over the job. */
export function pickSteps(ctx: { rng: () => number; totalSteps: number }, count: number, lo = 2): number[] {
  const span = Math.max(1, ctx.totalSteps - 3 - lo);
  return Array.from({ length: count }, (_, i) => lo + Math.floor(((i + ctx.rng()) * span) / count));
}

/** Waits for `step` completed steps, then up to `jitterMs` more. */
async function atStep(ctx: ChaosContext, step: number, jitterMs = 300): Promise<void> {
  await ctx.waitStep(step);
  await ctx.sleep(Math.floor(ctx.rng() * jitterMs));
}

const between = (ctx: { rng: () => number }, lo: number, hi: number): number => lo + Math.floor(ctx.rng() * (hi - lo + 1));

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

/** Polls the job's record through the API until `pred` holds; returns it. */
async function waitRecord(ctx: ChaosContext, id: string, pred: (r: any) => boolean, timeoutMs: number, what: string): Promise<any> {
  const end = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < end) {
    try {
      const res = await ctx.api('GET', `/api/jobs/${id}`);
      if (res.status === 200) {
        last = res.body;
        if (pred(last)) return last;
      }
    } catch {
      // The coordinator restarting: ask again.
    }
    await ctx.sleep(250);
  }
  throw new Error(`job ${id} did not become ${what} within ${timeoutMs / 1000} s (last state ${JSON.stringify(last?.state)})`);
}

/** The coordinator that printed the latest step line of the job (the one running it). */
function runningCoordinator(ctx: ChaosContext): CoordinatorProc {
  const re = new RegExp(`job ${ctx.jobId} step (\\d+)/`, 'g');
  let best: CoordinatorProc | undefined;
  let bestAt = -1;
  for (const c of ctx.coordinators) {
    if (!c.alive()) continue;
    const out = c.output();
    let at = -1;
    for (const m of out.matchAll(re)) at = m.index!;
    // Compare by the time order of the lines: the timestamps start each line.
    const line = at >= 0 ? out.slice(out.lastIndexOf('\n', at) + 1, at) : '';
    const ts = Date.parse(line.slice(0, 24));
    if (at >= 0 && ts > bestAt) {
      bestAt = ts;
      best = c;
    }
  }
  return best ?? ctx.coordinator();
}

const PLANNED_FAULT = (f: WorkerFault): string => `${f.do}${f.do === 'scale' ? ` ×${f.factor}` : ''} on step ${f.step} shard ${f.shard}${f.times === undefined ? ', every time' : `, ${f.times}×`}`;

/** Numeric faults: recorded as injected when the job reaches their step; checks the coordinator said what it did. */
async function numericFaults(ctx: ChaosContext, faults: WorkerFault[], expectLog: RegExp): Promise<void> {
  for (const f of [...faults].sort((a, b) => a.step - b.step)) {
    await ctx.waitStep(f.step);
    ctx.inject(`shard returns ${f.do === 'scale' ? `gradient ×${f.factor}` : f.do === 'nan' ? 'NaN' : '+Inf'}`, PLANNED_FAULT(f));
  }
  // The rejections of the last fault are logged before its step ends.
  await ctx.waitStep(Math.min(Math.max(...faults.map((f) => f.step)) + 2, ctx.totalSteps - 2));
  const out = ctx.coordinators.map((c) => c.output()).join('\n');
  const rejected = out.match(expectLog)?.length ?? 0;
  const skipped = out.match(/step \d+ skipped, parameters unchanged/g)?.length ?? 0;
  ctx.note(`${rejected} results rejected, ${skipped} steps skipped`);
  ctx.expect(rejected >= faults.length, `expected ≥ ${faults.length} rejections (${expectLog}), saw ${rejected}`);
}

/** Keeps `n` workers alive (restarting crashed ones with the same faults); returns a stop function and the crash count. */
function superviseWorkers(ctx: ChaosContext, n: number): { stop: () => Promise<void>; crashes: () => number } {
  let crashes = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const w of [...ctx.workers]) {
        if (w.alive()) continue;
        ctx.workers.splice(ctx.workers.indexOf(w), 1);
        crashes++;
      }
      while (!stopped && ctx.workers.length < n) await ctx.startWorker();
      await ctx.sleep(200).catch(() => (stopped = true));
    }
  })();
  return {
    crashes: () => crashes,
    stop: async () => {
      stopped = true;
      await loop.catch(() => undefined);
    },
  };
}

export function scenarios(quick: boolean): Scenario[] {
  return [
    // -- workers ------------------------------------------------------------------------------------
    {
      name: 'worker-kill',
      kind: 'workers',
      description: 'SIGKILL of the worker holding a shard, several times; a fresh worker each time',
      aof: false,
      workers: 2,
      async run(ctx) {
        const exits: Promise<number | string>[] = [];
        for (const s of pickSteps(ctx, quick ? 2 : 7)) {
          await atStep(ctx, s, 100);
          exits.push((await hitWorkerMidShard(ctx, 'SIGKILL')).done);
        }
        await Promise.all(exits);
      },
    },
    {
      name: 'worker-term',
      kind: 'workers',
      description: 'SIGTERM of the worker holding a shard (clean exit expected); a replacement started',
      aof: false,
      workers: 2,
      async run(ctx) {
        const exits: Promise<number | string>[] = [];
        for (const s of pickSteps(ctx, quick ? 2 : 3)) {
          await atStep(ctx, s, 100);
          exits.push((await hitWorkerMidShard(ctx, 'SIGTERM')).done);
        }
        for (const code of await Promise.all(exits)) ctx.expect(code === 0, `a SIGTERMed worker exited with ${code}, not 0`);
        ctx.note('SIGTERMed workers finished their shard and exited 0');
      },
    },
    {
      name: 'worker-freeze',
      kind: 'workers',
      description: 'SIGSTOP of the worker holding a shard for 6.5–9 s (its lock lasts 5 s), then SIGCONT',
      aof: false,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 3)) {
          await atStep(ctx, s, 100);
          const { worker, shardJob } = await ctx.workerMidShard();
          worker.child.kill('SIGSTOP');
          ctx.inject('worker SIGSTOP', `${worker.id} holding ${shardJob}`);
          await ctx.sleep(between(ctx, 6500, 9000)).finally(() => worker.child.kill('SIGCONT'));
          ctx.recover('worker SIGCONT');
        }
        ctx.note(`frozen workers alive again: ${ctx.workers.filter((w) => w.alive()).length}/${ctx.workers.length}`);
      },
    },
    {
      name: 'worker-netcut',
      kind: 'workers',
      description: 'the workers cut off from Redis (TCP proxy drops and refuses connections) for 2–6 s, then reconnected',
      aof: false,
      workers: 2,
      proxy: true,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 4)) {
          await atStep(ctx, s);
          ctx.proxy!.cut();
          ctx.inject('workers cut off from Redis');
          await ctx.sleep(between(ctx, 2000, 6000)).finally(() => ctx.proxy!.restore());
          ctx.recover('network back');
        }
        ctx.expect(
          ctx.workers.every((w) => w.alive()),
          'a worker died of the network cut',
        );
        ctx.note('workers reconnected by themselves');
      },
    },
    {
      name: 'workers-gone',
      kind: 'workers',
      description: 'every worker SIGKILLed mid-step; new ones start 2–6 s later',
      aof: false,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 2)) {
          await atStep(ctx, s);
          const gone = ctx.workers.splice(0);
          for (const w of gone) w.child.kill('SIGKILL');
          await Promise.all(gone.map((w) => w.exited));
          ctx.inject('all workers SIGKILL', `${gone.length} workers`);
          await ctx.sleep(between(ctx, 2000, 6000));
          ctx.recover('2 new workers starting');
          await Promise.all([ctx.startWorker(), ctx.startWorker()]);
        }
      },
    },
    {
      name: 'poison-shard',
      kind: 'workers',
      description: 'a shard that crashes every worker that takes it: the step fails after bounded attempts and the job is paused with the reason; workers without the fault then resume it',
      aof: false,
      workers: 2,
      timeoutMs: 1_200_000,
      workerFaults: (rng, total) => [{ do: 'crash', step: 8 + Math.floor(rng() * (total - 20)), shard: Math.floor(rng() * 4) }],
      async run(ctx) {
        const t0 = Date.now();
        const supervisor = superviseWorkers(ctx, 2);
        ctx.inject('poison shard planted');
        let record: any;
        try {
          record = await waitRecord(ctx, ctx.jobId, (r) => r.state?.status === 'paused' || r.state?.status === 'failed', 900_000, 'paused');
        } finally {
          await supervisor.stop();
        }
        const reason: string = record.state.reason ?? record.state.error ?? '';
        ctx.note(`paused after ${supervisor.crashes()} worker crashes in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${reason.slice(0, 160)}`);
        ctx.expect(record.state.status === 'paused', `the job ended ${record.state.status}, not paused`);
        ctx.expect(/poison|crashed or froze every worker/.test(reason), `the pause reason does not name the poison shard: ${reason}`);
        ctx.expect(supervisor.crashes() <= 6, `${supervisor.crashes()} worker crashes before the pause (bound: 4 stalls + slack)`);
        // The cause removed (workers without the test fault), the user resumes the job.
        const faulty: WorkerProc[] = ctx.workers.splice(0);
        for (const w of faulty) w.child.kill('SIGKILL');
        await Promise.all(faulty.map((w) => w.exited));
        await Promise.all([ctx.startWorker({ STRIDE_TEST_FAULTS: '' }), ctx.startWorker({ STRIDE_TEST_FAULTS: '' })]);
        const res = await ctx.api('POST', `/api/jobs/${ctx.jobId}/resume`);
        ctx.recover('fixed workers, job resumed', `HTTP ${res.status}`);
        ctx.expect(res.status === 200, `resume answered ${res.status}: ${JSON.stringify(res.body)}`);
      },
    },

    // -- coordinator --------------------------------------------------------------------------------
    {
      name: 'coordinator-kill',
      kind: 'coordinator',
      description: 'SIGKILL of the coordinator mid-step, started again after 0–2 s',
      aof: false,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 6)) {
          await atStep(ctx, s);
          await ctx.killCoordinator('SIGKILL');
          ctx.inject('coordinator SIGKILL');
          await ctx.sleep(Math.floor(ctx.rng() * 2000));
          await ctx.startCoordinator();
          ctx.recover('coordinator started');
        }
      },
    },
    {
      name: 'coordinator-crash-points',
      kind: 'coordinator',
      // Twelve coordinator starts: minutes each on a loaded machine.
      timeoutMs: 2_400_000,
      description: 'the coordinator SIGKILLs itself right after enqueueing a step’s shards, in the middle of a checkpoint write (temp file written, not renamed), right after the optimizer step; restarted each time',
      aof: false,
      workers: 2,
      async run(ctx) {
        const points = ['shards-enqueued', 'checkpoint-write', 'optimizer-step'] as const;
        const plan = Array.from({ length: quick ? 1 : 4 }, () => points).flat();
        // The first coordinator (started by the harness) is replaced by one armed with the first point.
        await ctx.waitStep(2);
        await ctx.killCoordinator('SIGTERM');
        ctx.recover('coordinator stopped (SIGTERM) to arm the first crash point');
        for (const point of plan) {
          const n = point === 'checkpoint-write' ? between(ctx, 1, 2) : between(ctx, 3, 14);
          const c = await ctx.startCoordinator({ STRIDE_TEST_CRASH_AT: `${point}@${n}` });
          const code = await Promise.race([c.exited, ctx.sleep(400_000).then(() => 'still running')]);
          ctx.expect(code === 'SIGKILL' && c.output().includes(`test crash point ${point}@${n}`), `coordinator armed with ${point}@${n} ended with ${code}`);
          ctx.inject(`coordinator SIGKILL at ${point}`, `${point}@${n}`);
          await ctx.sleep(Math.floor(ctx.rng() * 1000));
        }
        await ctx.startCoordinator();
        ctx.recover('coordinator started (no crash point)');
        const out = ctx.coordinators.map((c) => c.output()).join('\n');
        const leftovers = out.match(/left behind by an interrupted checkpoint write/g)?.length ?? 0;
        ctx.note(`${leftovers} interrupted checkpoint temp files found and removed on restart`);
      },
    },
    {
      name: 'coordinator-second',
      kind: 'coordinator',
      description: 'a second coordinator on the same jobs; then the one running the job is frozen (SIGSTOP) past its lock and lease, the other takes over, the frozen one wakes up (SIGCONT): fenced, it writes nothing',
      aof: false,
      workers: 2,
      async run(ctx) {
        // Early: a coordinator takes a while to start on a loaded machine.
        await atStep(ctx, between(ctx, 1, 4));
        const second = ctx.startCoordinator();
        ctx.inject('second coordinator started on the same jobs');
        const idle = await second;
        ctx.expect(!idle.output().includes(`job ${ctx.jobId} step`), 'the second coordinator ran steps of the job while the first still held it');
        // A freeze lasts ~15 s and the other coordinator runs the job meanwhile, so a target step
        // picked in advance may be long past (or the job over) when the previous freeze ends: the
        // first freeze lands early in the job, the next ones as soon as the previous one is judged.
        const freezes = quick ? 1 : 2;
        const nearEnd = (i: number): boolean => {
          if (ctx.step() < ctx.totalSteps - 3) return false;
          ctx.note(`the job reached step ${ctx.step()} of ${ctx.totalSteps} before freeze ${i + 1}: no more freezes`);
          return true;
        };
        for (let i = 0; i < freezes; i++) {
          if (i > 0 && nearEnd(i)) break;
          await atStep(ctx, i === 0 ? between(ctx, 5, Math.min(20, ctx.totalSteps >> 2)) : ctx.step() + 1);
          if (nearEnd(i)) break;
          const victim = runningCoordinator(ctx);
          const before = victim.output().length;
          victim.child.kill('SIGSTOP');
          ctx.inject('coordinator running the job SIGSTOP', `pid ${victim.pid}`);
          // Lock 5 s + stalled check 2.5 s + lease 5 s, and a little more for the takeover.
          await ctx.sleep(between(ctx, 14_000, 17_000)).finally(() => victim.child.kill('SIGCONT'));
          ctx.recover('SIGCONT', `pid ${victim.pid}`);
          // The woken process says so within a few seconds (longer on a loaded machine).
          const saysFenced = (): boolean => /lost its lease|another runner holds it|fencing token|lease lost/.test(victim.output().slice(before));
          for (let waited = 0; waited < 10_000 && !saysFenced(); waited += 500) await ctx.sleep(500);
          const woke = victim.output().slice(before);
          const fenced = saysFenced();
          const other = runningCoordinator(ctx);
          ctx.note(`${fenced ? 'woken coordinator fenced off' : 'woken coordinator said nothing about its lease'}; the job runs on pid ${other.pid}`);
          ctx.expect(fenced, `the coordinator woken after SIGSTOP did not notice it lost the job: ${woke.slice(-600)}`);
        }
      },
    },

    // -- Redis --------------------------------------------------------------------------------------
    {
      name: 'redis-restart',
      kind: 'redis',
      description: 'Redis SHUTDOWN (AOF flushed) mid-step, started again on the same port and directory after 0.5–3 s',
      aof: true,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 7)) {
          await atStep(ctx, s);
          await ctx.redis.shutdown();
          ctx.inject('redis SHUTDOWN');
          await ctx.sleep(500 + Math.floor(ctx.rng() * 2500));
          await ctx.redis.start();
          ctx.recover('redis started');
        }
      },
    },
    {
      name: 'redis-kill',
      kind: 'redis',
      description: 'Redis SIGKILL mid-step (AOF, fsync every second: up to 1 s of writes lost), restarted after 0.5–3 s',
      aof: true,
      workers: 2,
      async run(ctx) {
        for (const s of pickSteps(ctx, quick ? 1 : 7)) {
          await atStep(ctx, s);
          await ctx.redis.kill();
          ctx.inject('redis SIGKILL');
          await ctx.sleep(500 + Math.floor(ctx.rng() * 2500));
          await ctx.redis.start();
          ctx.recover('redis started');
        }
      },
    },
    {
      name: 'redis-maxmemory',
      kind: 'redis',
      description: 'Redis maxmemory set to half of what it uses (noeviction: every write refused) for 1.5–4 s mid-step; a job submitted meanwhile gets a 503 and leaves nothing behind',
      aof: false,
      workers: 2,
      async run(ctx) {
        let refused = 0;
        for (const s of pickSteps(ctx, quick ? 1 : 6)) {
          await atStep(ctx, s);
          const before = await ctx.api('GET', '/api/jobs');
          const info = await ctx.redisClient.info('memory');
          const used = Number(/used_memory:(\d+)/.exec(info)?.[1]);
          // Half of what it uses: freeing a step's blobs meanwhile cannot bring it back under the limit.
          await ctx.redisClient.config('SET', 'maxmemory', String(Math.max(1, Math.floor(used / 2))));
          ctx.inject('redis maxmemory reached', `used ${(used / 1048576).toFixed(1)} MiB`);
          try {
            await ctx.sleep(300);
            const res = await ctx.api('POST', '/api/jobs', { model: 'lenet5', dataset: 'mnist', steps: 5, batchSize: 16, shards: 2 });
            const after = await ctx.api('GET', '/api/jobs');
            const nBefore = before.body?.jobs?.length;
            const nAfter = after.body?.jobs?.length;
            if (res.status === 503) refused++;
            ctx.expect(res.status === 503, `a job submitted while Redis was full got HTTP ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
            ctx.expect(after.status === 200 && nAfter === nBefore, `jobs listed before/after the refused submission: ${nBefore}/${nAfter} (HTTP ${after.status})`);
            await ctx.sleep(between(ctx, 1200, 3700));
          } finally {
            await ctx.redisClient.config('SET', 'maxmemory', '0');
          }
          ctx.recover('maxmemory lifted');
        }
        ctx.note(`${refused} submissions refused with 503 while Redis was full; nothing half-enqueued`);
      },
    },

    // -- numbers ------------------------------------------------------------------------------------
    {
      name: 'numbers-nonfinite',
      kind: 'numbers',
      description: 'shards return NaN or +Inf gradients: half transiently (rejected, recomputed, accepted), half on every attempt (rejected, recomputed 3 times, then the step skipped and recorded, parameters unchanged)',
      aof: false,
      workers: 2,
      workerFaults(rng, total) {
        // Transient NaN, persistent NaN, transient +Inf (twice), persistent +Inf, and again.
        const kinds: Omit<WorkerFault, 'step' | 'shard'>[] = [{ do: 'nan', times: 1 }, { do: 'nan' }, { do: 'inf', times: 2 }, { do: 'inf' }];
        return pickSteps({ rng, totalSteps: total }, quick ? 4 : 8, 3).map((step, i) => ({ ...kinds[i % 4], step, shard: Math.floor(rng() * 4) }));
      },
      async run(ctx) {
        await numericFaults(ctx, ctx.workerFaults, /rejected \(non-finite\)/g);
      },
    },
    {
      name: 'numbers-huge',
      kind: 'numbers',
      description: 'a shard gradient ×10^6: mostly transiently (caught by the per-shard norm check against the step median, recomputed), one in four on every attempt (step skipped and recorded)',
      aof: false,
      workers: 2,
      workerFaults(rng, total) {
        const steps = pickSteps({ rng, totalSteps: total }, quick ? 4 : 8, 3);
        return steps.map((step, i) => ({ do: 'scale' as const, factor: 1e6, step, shard: Math.floor(rng() * 4), ...(i % 4 === 2 ? {} : { times: 1 }) }));
      },
      async run(ctx) {
        await numericFaults(ctx, ctx.workerFaults, /gradient norm .* the step's median/g);
      },
    },
    {
      name: 'numbers-blowup',
      kind: 'numbers',
      description: 'jobs with a learning rate that makes the loss blow up (Adam lr 1–30), submitted during the run: each detected and paused with the reason',
      aof: false,
      workers: 2,
      async run(ctx) {
        const lrs = quick ? [10] : [1, 3, 10, 30];
        const steps = pickSteps(ctx, lrs.length);
        const checks: Promise<void>[] = [];
        for (const [i, lr] of lrs.entries()) {
          await atStep(ctx, steps[i]);
          const res = await ctx.api('POST', '/api/jobs', { model: 'lenet5', dataset: 'mnist', steps: 60, batchSize: 32, shards: 2, seed: 11 + i, optimizer: { type: 'adam', lr }, schedule: { type: 'constant' } });
          ctx.inject(`job submitted with Adam lr ${lr}`, `HTTP ${res.status}`);
          ctx.expect(res.status === 201, `submitting the lr ${lr} job answered ${res.status}`);
          if (res.status !== 201) continue;
          checks.push(
            (async () => {
              const rec = await waitRecord(ctx, res.body.id, (r) => ['paused', 'failed', 'succeeded'].includes(r.state?.status), 180_000, 'paused');
              const reason: string = rec.state.reason ?? rec.state.error ?? '';
              ctx.note(`lr ${lr}: ${rec.state.status} at step ${rec.state.step}: ${reason.replace(/^job \S+: /, '').slice(0, 120)}`);
              ctx.expect(rec.state.status === 'paused' && /blew up|diverged/.test(reason), `the lr ${lr} job ended ${rec.state.status} (${reason})`);
            })(),
          );
        }
        await Promise.all(checks);
      },
    },
  ];
}
