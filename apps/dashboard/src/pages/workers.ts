// Workers and queues: who is alive, how much each has done, what waits in the queues.
import { h, replace } from '../ui/dom.ts';
import { ago, duration, num } from '../ui/format.ts';
import { workersStore } from '../ui/store.ts';
import type { Worker } from '../ui/types.ts';

/** Shards per second of one worker since it started, from its counters. */
function throughput(w: Worker, now: number): number | undefined {
  if (w.shardsDone === undefined || w.startedAt === undefined) return undefined;
  const secs = ((w.lastSeen ?? now) - w.startedAt) / 1000;
  return secs > 0 ? w.shardsDone / secs : undefined;
}

/** Busy share of the worker's threads since it started, 0..1. */
function utilisation(w: Worker, now: number): number | undefined {
  if (w.busyMs === undefined || w.startedAt === undefined || !w.threads) return undefined;
  const ms = ((w.lastSeen ?? now) - w.startedAt) * w.threads;
  return ms > 0 ? Math.min(1, w.busyMs / ms) : undefined;
}

function workerCard(w: Worker, now: number): HTMLElement {
  const st = (k: string, v: string): HTMLElement => h('div', { class: 'stat' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v));
  const util = utilisation(w, now);
  const tput = throughput(w, now);
  return h(
    'div',
    { class: 'card worker', 'data-worker': w.id },
    h('div', { class: 'card-head' }, h('div', { class: 'wid', title: w.id }, w.host ? `${w.host} · pid ${w.pid ?? '?'}` : w.id), h('span', { class: `alive${w.alive ? '' : ' dead'}` }, w.alive ? (w.state === 'closing' ? 'closing' : 'alive') : 'gone')),
    h(
      'div',
      { class: 'stats' },
      st('threads', w.threads === undefined ? '—' : String(w.threads)),
      st('in hand', w.active === undefined ? '—' : String(w.active)),
      st('shards done', num(w.shardsDone)),
      st('failed', num(w.shardsFailed)),
      st('throughput', tput === undefined ? '—' : `${num(tput)} shards/s`),
      st('busy', util === undefined ? '—' : `${Math.round(util * 100)} %`),
      st('up for', w.startedAt === undefined ? '—' : duration(now - w.startedAt)),
      st('last heartbeat', ago(w.lastSeen, now)),
    ),
  );
}

export function workersPage(root: HTMLElement): () => void {
  const summary = h('div', { class: 'sub' });
  const banner = h('div');
  const grid = h('div', { class: 'workers' });
  const queues = h('div');
  replace(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Workers'), summary), h('div', { class: 'btn-row' }, h('a', { class: 'btn', href: '/queues', 'data-external': '' }, 'BullMQ board ↗'))),
    banner,
    grid,
    h('div', { class: 'card section' }, h('div', { class: 'card-head' }, h('h2', null, 'Queues'), h('a', { href: '/queues', 'data-external': '' }, 'open the board ↗')), queues),
  );

  let frame = 0;
  const draw = (): void => {
    frame = 0;
    const now = Date.now();
    replace(banner, workersStore.error ? h('div', { class: 'banner error' }, workersStore.error.message) : null);
    const list = workersStore.list();
    const alive = list.filter((w) => w.alive);
    const threads = alive.reduce((a, w) => a + (w.threads ?? 0), 0);
    summary.textContent = workersStore.loaded ? `${alive.length} alive · ${threads} compute threads` : 'loading…';
    replace(grid, list.length ? list.map((w) => workerCard(w, now)) : workersStore.loaded ? h('div', { class: 'card empty', style: 'grid-column:1/-1' }, 'No worker is connected. Start one with ', h('code', null, 'npm start -w apps/worker'), '.') : null);

    const names = Object.keys(workersStore.queues).sort();
    if (names.length === 0) {
      replace(queues, h('p', { class: 'muted' }, workersStore.loaded ? 'No queue counts.' : 'loading…'));
      return;
    }
    const states = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed'].filter((s) => names.some((n) => s in workersStore.queues[n]));
    replace(
      queues,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data queues' },
          h('thead', null, h('tr', null, h('th', null, 'queue'), states.map((s) => h('th', { class: 'num' }, s)))),
          h('tbody', null, names.map((n) => h('tr', { 'data-queue': n }, h('td', { class: 'mono' }, n), states.map((s) => h('td', { class: 'num' }, num(workersStore.queues[n][s] ?? 0)))))),
        ),
      ),
    );
  };
  const schedule = (): void => {
    frame ||= requestAnimationFrame(draw);
  };
  const unsubscribe = workersStore.subscribe(schedule);
  void workersStore.refresh();
  // Heartbeats arrive as events; queue counts and ages are refreshed here.
  const timer = setInterval(() => void workersStore.refresh(), 3000);
  return () => {
    unsubscribe();
    clearInterval(timer);
    cancelAnimationFrame(frame);
  };
}
