// One job: state and controls, live charts, workers, checkpoints, spec.
import { datasetLabel, FINAL_STATES, hasTrainAccuracy, type EvalMetrics, type MetricName, type StepMetrics, type TaskName } from '@stride/protocol';
import { ApiError, getJson, postJson } from '../ui/api.ts';
import { LineChart } from '../ui/chart.ts';
import { $, h, keepCase, progressBar, replace, setProgress, setText } from '../ui/dom.ts';
import { ago, bytes, duration, num, pct, when } from '../ui/format.ts';
import { live } from '../ui/live.ts';
import { MetricsSeries, smooth, type OtherRecord } from '../ui/metrics.ts';
import { describeSpec, elapsedOf, progressOf } from '../ui/progress.ts';
import { jobsStore, workersStore } from '../ui/store.ts';
import { bestOf, formatMetric, metricInfo, primaryMetric, TASK_METRICS, taskOfJob } from '../ui/tasks.ts';
import type { Checkpoint, Job } from '../ui/types.ts';

const COLORS = {
  train: '#4f46e5',
  test: '#f97316',
  lr: '#0d9488',
  queue: '#eab308',
  compute: '#2563eb',
  reduce: '#db2777',
  publish: '#16a34a',
  step: '#475569',
  ips: '#7c3aed',
};

/** Colours of a task's test metrics, primary first. */
const METRIC_COLORS = ['#f97316', '#0d9488', '#db2777'];

/** The title of the chart of a task's metrics. */
const METRIC_CHART_TITLE: Record<TaskName, string> = {
  classification: 'Accuracy',
  localization: 'Localization: accuracy and box IoU',
  detection: 'Detection: mAP@0.5 on the test split',
  segmentation: 'Segmentation: mIoU and pixel accuracy on the test split',
};

/** The chart of a task's metrics: train accuracy where the task has one, then each test metric. */
function metricChart(task: TaskName): LineChart {
  const fmt = (v: number): string => pct(v);
  const train = hasTrainAccuracy(task)
    ? [
        { label: task === 'classification' ? 'train (batch)' : 'train class acc. (batch)', color: `${COLORS.train}38`, width: 1, format: fmt },
        { label: task === 'classification' ? 'train' : 'train class acc.', color: COLORS.train, format: fmt },
      ]
    : [];
  const tests = TASK_METRICS[task].map((key, i) => ({
    label: task === 'classification' ? 'test' : `test ${metricInfo(key).label}`,
    color: METRIC_COLORS[i % METRIC_COLORS.length],
    dash: true,
    points: true,
    width: i === 0 ? 2.25 : 1.75,
    format: fmt,
  }));
  return new LineChart({ title: METRIC_CHART_TITLE[task], yRange: [0, 1], yFormat: (v) => `${Math.round(v * 100)}%`, series: [...train, ...tests] });
}

const stat = (label: string | (Node | string)[], cls: string): HTMLElement => h('div', { class: 'stat' }, h('span', { class: 'k' }, label), h('span', { class: `v ${cls}` }, '—'));

/** A stat label whose metric name keeps its case (`mIoU`, `mAP@0.5`) in the upper-case labels. */
const metricLabel = (prefix: string, name: string): (Node | string)[] => keepCase(`${prefix} ${name}`);

export function jobPage(root: HTMLElement, params: Record<string, string>): () => void {
  const id = params.id;
  const cleanups: (() => void)[] = [];
  const title = h('h1', null, id);
  const sub = h('div', { class: 'sub' });
  const badge = h('span', { class: 'badge' });
  const banner = h('div');
  const action = (name: 'pause' | 'resume' | 'cancel', label: string, cls = ''): HTMLButtonElement =>
    h('button', { class: `btn ${cls}`, 'data-action': name, onclick: () => void act(name) }, label);
  const buttons = { pause: action('pause', 'Pause'), resume: action('resume', 'Resume'), cancel: action('cancel', 'Cancel', 'danger') };
  const bar = progressBar(0);
  const errorBox = h('div', { class: 'error-box', hidden: true });
  const skippedNote = h('p', { class: 'muted skipped', hidden: true, style: 'margin:12px 0 0;font-size:0.85rem' });

  const charts = {
    loss: new LineChart({
      title: 'Loss',
      yLog: true,
      series: [
        { label: 'train (batch)', color: `${COLORS.train}38`, width: 1 },
        { label: 'train', color: COLORS.train },
        { label: 'test', color: COLORS.test, dash: true, points: true, width: 2.25 },
      ],
    }),
    lr: new LineChart({ title: 'Learning rate', series: [{ label: 'lr', color: COLORS.lr, format: (v) => v.toExponential(2) }], yFormat: (v) => v.toExponential(1) }),
    time: new LineChart({
      title: 'Step time breakdown (ms, smoothed)',
      series: [
        { label: 'total', color: COLORS.step },
        { label: 'queue', color: COLORS.queue },
        { label: 'compute', color: COLORS.compute },
        { label: 'reduce', color: COLORS.reduce },
        { label: 'publish', color: COLORS.publish },
      ],
    }),
    ips: new LineChart({
      title: 'Throughput (images/s)',
      series: [
        { label: 'per step', color: `${COLORS.ips}38`, width: 1 },
        { label: 'smoothed', color: COLORS.ips },
      ],
    }),
  };
  // The metrics chart and the task's stats are drawn once the job (hence its task) is known.
  let task: TaskName | undefined;
  let accuracyChart: LineChart | undefined;
  const accuracyCard = h('div', { class: 'card metric-card' }, h('div', { class: 'chart-empty' }, 'loading…'));
  cleanups.push(() => {
    Object.values(charts).forEach((c) => c.destroy());
    accuracyChart?.destroy();
  });

  const workersBox = h('div');
  const checkpointsBox = h('div');
  const specBox = h('div');

  replace(
    root,
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('div', { class: 'btn-row', style: 'align-items:center' }, title, badge), sub),
      h('div', { class: 'btn-row' }, buttons.pause, buttons.resume, buttons.cancel),
    ),
    banner,
    h(
      'div',
      { class: 'card' },
      h('div', { class: 'progress-big' }, h('div', { class: 'line' }, h('span', { class: 'steps' }), h('span', { class: 'epoch' }), h('span', { class: 'eta' })), bar),
      h(
        'div',
        { class: 'stats' },
        stat('images / s', 'ips'),
        stat('train loss', 'loss'),
        stat('test loss', 'tloss'),
        stat('learning rate', 'lr'),
        stat('elapsed', 'elapsed'),
      ),
      errorBox,
      skippedNote,
    ),
    h('div', { class: 'grid grid-2 section' }, h('div', { class: 'card' }, charts.loss.element), accuracyCard),
    h('div', { class: 'grid grid-3 section' }, h('div', { class: 'card' }, charts.lr.element), h('div', { class: 'card' }, charts.time.element), h('div', { class: 'card' }, charts.ips.element)),
    h('div', { class: 'grid grid-2 section' }, h('div', { class: 'card' }, h('h2', null, 'Workers that served it'), workersBox), h('div', { class: 'card' }, h('h2', null, 'Checkpoints'), checkpointsBox)),
    h('div', { class: 'card section' }, h('h2', null, 'Job spec'), specBox),
  );

  const showError = (err: unknown): void => {
    replace(banner, h('div', { class: 'banner error' }, (err as Error).message));
  };

  // ---- the task: its stats and its metrics chart ----
  const metricStatClass = (key: MetricName): string => (key === 'testAccuracy' ? 'tacc' : `m-${key}`);
  const setTask = (t: TaskName): void => {
    if (t === task) return;
    task = t;
    const statsEl = $(root, '.stats');
    for (const el of statsEl.querySelectorAll('[data-task-stat]')) el.remove();
    const tloss = $(statsEl, '.tloss').parentElement!;
    const extra: HTMLElement[] = [];
    if (hasTrainAccuracy(t)) extra.push(stat(t === 'classification' ? 'train acc.' : 'train class acc.', 'acc'));
    const testStats = TASK_METRICS[t].map((key) => {
      const info = metricInfo(key);
      const el = stat(t === 'classification' ? 'test acc.' : t === 'localization' && key === 'testAccuracy' ? 'test class acc.' : metricLabel('test', info.label), metricStatClass(key));
      el.title = info.help;
      return el;
    });
    const best = stat(metricLabel('best', primaryMetric(t).label), 'best');
    best.title = `the best evaluation by ${primaryMetric(t).label}; its checkpoint is kept`;
    for (const el of [...extra, ...testStats, best]) el.dataset.taskStat = '';
    extra.forEach((el) => tloss.before(el));
    tloss.after(...testStats, best);
    accuracyChart?.destroy();
    accuracyChart = metricChart(t);
    replace(accuracyCard, accuracyChart.element);
    accuracyCard.dataset.task = t;
    root.dataset.task = t;
    drawCharts();
  };

  // ---- header, progress, stats ----
  const drawJob = (): void => {
    const job = jobsStore.jobs.get(id);
    if (!job) return;
    setTask(taskOfJob(job));
    const status = job.state.status;
    const p = progressOf(job, jobsStore.imagesPerSec.get(id));
    setText(title, job.name);
    setText(sub, `${describeSpec(job)} · ${id} · submitted ${when(job.submittedAt)}`);
    badge.className = `badge ${status}`;
    setText(badge, status);
    buttons.pause.disabled = !(status === 'running' || status === 'queued');
    buttons.resume.disabled = status !== 'paused';
    buttons.cancel.disabled = FINAL_STATES.has(status);
    setProgress(bar, p.fraction, status);
    setText($(root, '.progress-big .steps'), p.stepText);
    setText($(root, '.progress-big .epoch'), p.epochText);
    setText($(root, '.progress-big .eta'), status === 'running' ? `ETA ${p.etaText}` : job.finishedAt ? `ended ${ago(job.finishedAt)}` : '');
    const last = series.steps[series.steps.length - 1];
    const lastEval = series.evals[series.evals.length - 1];
    setText($(root, '.stats .ips'), p.speedText.replace(' img/s', ''));
    setText($(root, '.stats .loss'), num(job.progress?.loss ?? last?.loss));
    if (task && hasTrainAccuracy(task)) setText($(root, '.stats .acc'), pct(job.progress?.accuracy ?? last?.accuracy));
    setText($(root, '.stats .tloss'), num(lastEval?.testLoss ?? job.progress?.testLoss));
    const result = job.state.status === 'succeeded' ? job.state.result : job.result;
    for (const key of task ? TASK_METRICS[task] : []) {
      setText($(root, `.stats .${metricStatClass(key)}`), formatMetric(lastEval?.[key] ?? job.progress?.[key] ?? result?.[key]));
    }
    const best = bestOf(job) ?? bestOfEvals(task);
    setText($(root, '.stats .best'), best ? `${formatMetric(best.value)} · step ${best.step}` : '—');
    skippedNote.hidden = series.skipped === 0;
    setText(skippedNote, `${series.skipped} step${series.skipped === 1 ? ' was' : 's were'} skipped (non-finite or outlier gradients): the parameters stayed as they were.`);
    setText($(root, '.stats .lr'), last ? last.lr.toExponential(2) : '—');
    setText($(root, '.stats .elapsed'), duration(elapsedOf(job)));
    const error = job.state.status === 'failed' ? job.state.error : undefined;
    errorBox.hidden = error === undefined;
    setText(errorBox, error ?? '');
    drawWorkers(job);
    const specKey = `${job.runs}|${job.startedAt}|${job.finishedAt}`;
    if (specKey !== drawnSpec) {
      drawnSpec = specKey;
      drawSpec(job);
    }
  };

  const drawWorkers = (job: Job): void => {
    const list = job.workers;
    if (!list || list.length === 0) {
      // No shard result used yet. Every live worker takes shards from the one shards queue, so
      // while a job runs, they all serve it.
      const alive = workersStore.list().filter((w) => w.alive);
      if (job.state.status === 'running' && alive.length > 0) {
        replace(
          workersBox,
          h('p', { class: 'muted', style: 'margin-top:0;font-size:0.85rem' }, 'Serving it now: every live worker takes its shards from the shared queue.'),
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'data' },
              h('thead', null, h('tr', null, h('th', null, 'worker'), h('th', { class: 'num' }, 'threads'), h('th', { class: 'num' }, 'in hand'), h('th', { class: 'num' }, 'shards done'))),
              h('tbody', null, alive.map((w) => h('tr', null, h('td', { class: 'mono' }, w.host ? `${w.host} · ${w.pid}` : w.id), h('td', { class: 'num' }, w.threads ?? '—'), h('td', { class: 'num' }, w.active ?? '—'), h('td', { class: 'num' }, num(w.shardsDone))))),
            ),
          ),
        );
      } else {
        const why = job.state.status === 'queued' ? 'Not started yet.' : job.state.status === 'running' ? 'No live worker: the job waits for one.' : 'No worker results recorded for this job.';
        replace(workersBox, h('p', { class: 'muted' }, why));
      }
      return;
    }
    const total = list.reduce((a, w) => a + w.shards, 0);
    replace(
      workersBox,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data' },
          h('thead', null, h('tr', null, h('th', null, 'worker'), h('th', { class: 'num' }, 'shards'), h('th', { class: 'num' }, 'share'), h('th', { class: 'num' }, 'compute'), h('th', null, 'last result'))),
          h(
            'tbody',
            null,
            [...list]
              .sort((a, b) => b.shards - a.shards || a.id.localeCompare(b.id))
              .map((w) =>
                h(
                  'tr',
                  null,
                  h('td', { class: 'mono', title: w.id }, w.host && !w.id.startsWith(`${w.host}:`) ? `${w.host} · ${w.id}` : w.id),
                  h('td', { class: 'num' }, w.shards),
                  h('td', { class: 'num' }, pct(total ? w.shards / total : 0, 0)),
                  h('td', { class: 'num' }, w.computeMs === undefined ? '—' : duration(w.computeMs)),
                  h('td', { title: w.lastSeen ? when(w.lastSeen) : '' }, w.lastSeen ? ago(w.lastSeen) : '—'),
                ),
              ),
          ),
        ),
      ),
    );
  };

  let drawnSpec = '';
  const drawSpec = (job: Job): void => {
    const s = job.spec;
    const rows: [string, string][] = [
      ['name', job.name],
      ['model', typeof s.model === 'string' ? s.model : `${s.model.name ?? 'custom'} (${s.model.layers.length} layers)`],
      ['dataset', datasetLabel(s.dataset)],
      ['task', taskOfJob(job)],
      ...(s.trainSamples !== undefined ? [['samples', `${s.trainSamples} train, ${s.testSamples ?? '—'} test (generated)`] as [string, string]] : []),
      ['length', s.epochs !== undefined ? `${s.epochs} epoch${s.epochs === 1 ? '' : 's'}` : `${s.steps} steps`],
      ['batch size', String(s.batchSize)],
      ['shards per step', String(s.shards)],
      ['optimizer', `${s.optimizer.type}, lr ${s.optimizer.lr}`],
      ['schedule', s.schedule.type],
      ['seed', String(s.seed)],
      ['kernel numerics', s.numerics ?? 'exact'],
      ['evaluation', s.evalEvery === 'epoch' ? 'every epoch' : `every ${s.evalEvery} steps`],
      ['checkpoints', `every ${s.checkpointEvery} steps, keep ${s.keepCheckpoints}`],
      ['runs', String(job.runs ?? 0)],
      ['started', job.startedAt ? when(job.startedAt) : '—'],
      ['ended', job.finishedAt ? when(job.finishedAt) : '—'],
    ];
    replace(specBox, h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
  };

  // ---- metrics ----
  const series = new MetricsSeries();
  /** The best evaluation seen by the task's primary metric, when the record does not say (a running job). */
  const bestOfEvals = (t: TaskName | undefined): { step: number; value: number } | undefined => {
    if (!t) return undefined;
    const key = primaryMetric(t).key;
    let best: { step: number; value: number } | undefined;
    for (const e of series.evals) {
      const v = e[key];
      if (typeof v === 'number' && Number.isFinite(v) && (!best || v > best.value)) best = { step: e.step, value: v };
    }
    return best;
  };
  const drawCharts = (): void => {
    const steps = series.steps;
    const col = (f: (s: StepMetrics) => number): number[] => steps.map(f);
    const loss = col((s) => s.loss);
    charts.loss.setData(series.joined([loss, smooth(loss)], [series.evals.map((e) => e.testLoss)]));
    if (task && accuracyChart) {
      const acc = hasTrainAccuracy(task) ? col((s) => s.accuracy ?? Number.NaN) : [];
      const train = hasTrainAccuracy(task) ? [acc, smooth(acc)] : [];
      const evalCol = (key: MetricName): (number | null)[] => series.evals.map((e) => e[key] ?? null);
      accuracyChart.setData(series.joined(train, TASK_METRICS[task].map(evalCol) as ArrayLike<number>[]));
    }
    const x = steps.map((s) => s.step + 1);
    charts.lr.setData({ x, ys: [col((s) => s.lr)] });
    charts.time.setData({ x, ys: [(s: StepMetrics) => s.stepMs, (s: StepMetrics) => s.queueMs, (s: StepMetrics) => s.computeMs, (s: StepMetrics) => s.reduceMs + s.optimizerMs, (s: StepMetrics) => s.publishMs].map((f) => Array.from(smooth(col(f)))) });
    const ips = col((s) => s.imagesPerSec);
    charts.ips.setData({ x, ys: [ips, Array.from(smooth(ips))] });
  };
  const loadMetrics = async (): Promise<void> => {
    const { metrics } = await getJson<{ metrics: (StepMetrics | EvalMetrics | OtherRecord)[] }>(`/api/jobs/${encodeURIComponent(id)}/metrics`);
    // Keep what the live stream added during the fetch.
    const live = [...series.steps, ...series.evals];
    series.reset(metrics);
    for (const r of live) series.add(r);
    drawCharts();
    drawJob();
  };

  // ---- checkpoints ----
  let checkpointsLoading = false;
  const loadCheckpoints = async (): Promise<void> => {
    if (checkpointsLoading) return;
    checkpointsLoading = true;
    try {
      const { checkpoints } = await getJson<{ checkpoints: Checkpoint[] }>(`/api/jobs/${encodeURIComponent(id)}/checkpoints`);
      drawCheckpoints(checkpoints);
    } catch (err) {
      replace(checkpointsBox, h('p', { class: 'muted' }, (err as Error).message));
    } finally {
      checkpointsLoading = false;
    }
  };
  const drawCheckpoints = (list: Checkpoint[]): void => {
    const job = jobsStore.jobs.get(id);
    const bestStep = job ? bestOf(job)?.step : undefined;
    if (list.length === 0) {
      replace(checkpointsBox, h('p', { class: 'muted' }, 'None written yet.'));
      return;
    }
    const sorted = [...list].sort((a, b) => b.step - a.step);
    replace(
      checkpointsBox,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data checkpoints' },
          h('thead', null, h('tr', null, h('th', null, 'file'), h('th', { class: 'num' }, 'step'), h('th', { class: 'num hide-sm' }, 'size'), h('th', null, ''))),
          h(
            'tbody',
            null,
            sorted.map((c) => {
              const href = `/api/jobs/${encodeURIComponent(id)}/checkpoints/${encodeURIComponent(c.name)}`;
              return h(
                'tr',
                null,
                h('td', null, h('a', { class: 'mono', href, download: `${id}-${c.name}` }, c.name), c.step === bestStep ? h('span', { class: 'badge succeeded', style: 'margin-left:6px' }, 'best') : null),
                h('td', { class: 'num' }, c.step),
                h('td', { class: 'num hide-sm' }, bytes(c.bytes)),
                h('td', { class: 'num' }, h('a', { href: `/playground?job=${encodeURIComponent(id)}&checkpoint=${encodeURIComponent(c.name)}` }, 'try it')),
              );
            }),
          ),
        ),
      ),
    );
  };

  // ---- actions ----
  const act = async (name: 'pause' | 'resume' | 'cancel'): Promise<void> => {
    if (name === 'cancel' && !confirm('Cancel this job? It stops at the next step boundary and keeps its checkpoints.')) return;
    const btn = buttons[name];
    btn.disabled = true;
    try {
      const job = await postJson<Job>(`/api/jobs/${encodeURIComponent(id)}/${name}`);
      replace(banner);
      if (job && typeof job === 'object' && 'state' in job) jobsStore.upsert(job);
    } catch (err) {
      showError(err);
    } finally {
      drawJob();
    }
  };

  // ---- wiring ----
  let frame = 0;
  const schedule = (): void => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      drawJob();
    });
  };
  cleanups.push(jobsStore.subscribe(schedule));
  cleanups.push(() => cancelAnimationFrame(frame));
  cleanups.push(
    live.on('step', (ev) => {
      if (ev.jobId === id && series.add({ ...ev, type: 'step' })) drawCharts();
    }),
  );
  cleanups.push(
    live.on('eval', (ev) => {
      if (ev.jobId === id && series.add({ ...ev, type: 'eval' })) drawCharts();
    }),
  );
  cleanups.push(
    live.on('checkpoint', (ev) => {
      if (ev.jobId === id) void loadCheckpoints();
    }),
  );
  let lastState: string | undefined;
  cleanups.push(
    live.on('job', (job) => {
      if (job.id !== id) return;
      // The retention policy deletes old checkpoints without an event: refresh on state changes.
      if (job.state.status !== lastState) void loadCheckpoints();
      lastState = job.state.status;
    }),
  );
  cleanups.push(workersStore.subscribe(schedule));
  cleanups.push(
    live.onStatus((s) => {
      if (s === 'open' && lastState !== undefined) void loadMetrics().catch(showError);
    }),
  );
  // Elapsed time and the live workers' counters change without job events.
  const tick = setInterval(() => {
    if (jobsStore.jobs.get(id)?.state.status === 'running') {
      schedule();
      void workersStore.refresh();
    }
  }, 3000);
  cleanups.push(() => clearInterval(tick));

  void (async () => {
    try {
      const job = await getJson<Job>(`/api/jobs/${encodeURIComponent(id)}`);
      lastState = job.state.status;
      jobsStore.upsert(job);
      await Promise.all([loadMetrics(), loadCheckpoints()]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        replace(root, h('div', { class: 'card empty' }, h('h2', null, 'No such job'), h('p', null, err.message), h('a', { href: '/' }, 'Back to the jobs')));
      } else {
        showError(err);
      }
    }
  })();

  return () => cleanups.forEach((fn) => fn());
}
