// Jobs list: every job with its state and progress, updated live.
import { $, h, keepCase, progressBar, replace, setProgress, setText } from '../ui/dom.ts';
import { ago, num } from '../ui/format.ts';
import { describeSpec, progressOf } from '../ui/progress.ts';
import { jobsStore } from '../ui/store.ts';
import { bestOf, formatMetric, latestPrimary, primaryMetric, taskOfJob } from '../ui/tasks.ts';
import type { Job } from '../ui/types.ts';

interface Row {
  el: HTMLAnchorElement;
  update(job: Job): void;
}

function jobRow(job: Job): Row {
  const badge = h('span', { class: 'badge' });
  const bar = progressBar(0);
  const el = h(
    'a',
    { class: 'job-row', href: `/jobs/${encodeURIComponent(job.id)}`, 'data-job': job.id },
    h('div', { class: 'title' }, h('div', { class: 'name' }), h('div', { class: 'meta spec' }), h('div', { class: 'meta when' })),
    h('div', { class: 'progress-cell' }, h('div', { class: 'line' }, badge, h('span', { class: 'steps' })), bar, h('div', { class: 'line' }, h('span', { class: 'epoch' }), h('span', { class: 'eta' }))),
    h('div', { class: 'stat' }, h('span', { class: 'k' }, 'images/s'), h('span', { class: 'v ips' })),
    h('div', { class: 'stat' }, h('span', { class: 'k' }, 'loss'), h('span', { class: 'v loss' })),
    h('div', { class: 'stat metric' }, h('span', { class: 'k' }, 'test acc.'), h('span', { class: 'v acc' })),
  );
  const update = (j: Job): void => {
    const status = j.state.status;
    const p = progressOf(j, jobsStore.imagesPerSec.get(j.id));
    setText($(el, '.name'), j.name);
    setText($(el, '.spec'), describeSpec(j));
    setText($(el, '.when'), `${j.id} · ${j.finishedAt ? `ended ${ago(j.finishedAt)}` : `submitted ${ago(j.submittedAt)}`}`);
    badge.className = `badge ${status}`;
    setText(badge, status);
    setText($(el, '.steps'), p.stepText);
    setProgress(bar, p.fraction, status);
    setText($(el, '.epoch'), p.epochText);
    setText($(el, '.eta'), status === 'running' ? `ETA ${p.etaText}` : '');
    setText($(el, '.ips'), p.speedText.replace(' img/s', ''));
    setText($(el, '.loss'), num(j.progress?.loss));
    // The task's primary metric: the latest evaluation, else the best one recorded.
    const task = taskOfJob(j);
    const metric = primaryMetric(task);
    const latest = latestPrimary(j, jobsStore.lastEval.get(j.id));
    const best = latest === undefined ? bestOf(j) : undefined;
    const label = task === 'classification' ? 'test acc.' : `${best ? 'best' : 'test'} ${metric.label}`;
    const k = $(el, '.metric .k');
    if (k.dataset.label !== label) {
      k.dataset.label = label;
      replace(k, keepCase(label)); // mIoU, mAP@0.5 keep their case in the upper-case label
    }
    $(el, '.metric').title = metric.help;
    setText($(el, '.acc'), formatMetric(latest ?? best?.value));
    el.dataset.task = task;
  };
  update(job);
  return { el, update };
}

export function jobsPage(root: HTMLElement): () => void {
  const summary = h('div', { class: 'sub' });
  const list = h('div', { class: 'job-list' });
  const banner = h('div');
  replace(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Training jobs'), summary), h('div', { class: 'btn-row' }, h('a', { class: 'btn primary', href: '/submit' }, '+ New job'))),
    banner,
    list,
  );

  const rows = new Map<string, Row>();
  let frame = 0;
  const draw = (): void => {
    frame = 0;
    replace(banner, jobsStore.error ? h('div', { class: 'banner error' }, jobsStore.error.message) : null);
    const jobs = jobsStore.list();
    const running = jobs.filter((j) => j.state.status === 'running').length;
    setText(summary, jobsStore.loaded ? `${running} running · ${jobs.length} in total` : 'loading…');
    if (jobsStore.loaded && jobs.length === 0) {
      replace(list, h('div', { class: 'card empty' }, h('p', null, 'No jobs yet.'), h('a', { class: 'btn primary', href: '/submit' }, 'Submit the first one')));
      rows.clear();
      return;
    }
    const ordered: HTMLElement[] = [];
    const seen = new Set<string>();
    for (const j of jobs) {
      let row = rows.get(j.id);
      if (row) row.update(j);
      else rows.set(j.id, (row = jobRow(j)));
      ordered.push(row.el);
      seen.add(j.id);
    }
    for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
    // Re-append only when the order or membership changed (keeps hover and focus).
    const current = [...list.children];
    if (current.length !== ordered.length || current.some((el, i) => el !== ordered[i])) replace(list, ordered);
  };
  const schedule = (): void => {
    frame ||= requestAnimationFrame(draw);
  };
  const unsubscribe = jobsStore.subscribe(schedule);
  void jobsStore.refresh();
  schedule();
  // Relative times ("2 min ago") age without events.
  const timer = setInterval(schedule, 5000);
  return () => {
    unsubscribe();
    clearInterval(timer);
    cancelAnimationFrame(frame);
  };
}
