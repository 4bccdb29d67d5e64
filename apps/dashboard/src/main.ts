// The dashboard's entry: header, client-side routes, the live event stream.
import { dropStoredToken } from './ui/api.ts';
import { h, replace } from './ui/dom.ts';
import { live } from './ui/live.ts';
import { NAVIGATE_EVENT } from './ui/nav.ts';
import { tokenDialog } from './ui/token.ts';
import { jobsPage } from './pages/jobs.ts';
import { jobPage } from './pages/job.ts';
import { workersPage } from './pages/workers.ts';
import { submitPage } from './pages/submit.ts';
import { playgroundPage } from './pages/playground.ts';

/** A page draws itself into `root` and returns its cleanup (listeners, timers, charts). */
export type Page = (root: HTMLElement, params: Record<string, string>, query: URLSearchParams) => () => void;

interface Route {
  pattern: RegExp;
  keys: string[];
  page: Page;
  nav: string;
  title: string;
}

const route = (path: string, page: Page, nav: string, title: string): Route => {
  const keys: string[] = [];
  const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, k: string) => (keys.push(k), '([^/]+)'))}/?$`);
  return { pattern, keys, page, nav, title };
};

const routes: Route[] = [
  route('/', jobsPage, '/', 'Jobs'),
  route('/jobs', jobsPage, '/', 'Jobs'),
  route('/jobs/:id', jobPage, '/', 'Job'),
  route('/submit', submitPage, '/submit', 'Submit'),
  route('/workers', workersPage, '/workers', 'Workers'),
  route('/playground', playgroundPage, '/playground', 'Playground'),
];

const logo = (): SVGSVGElement => {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.innerHTML = '<path d="M3 11.5l3.2-3.2 2.3 2.3L13 5" stroke="white" stroke-width="1.9" fill="none" stroke-linecap="round" stroke-linejoin="round"/>';
  return svg;
};

const nav = h(
  'nav',
  { class: 'nav' },
  h('a', { href: '/', 'data-nav': '/' }, 'Jobs'),
  h('a', { href: '/submit', 'data-nav': '/submit' }, 'Submit'),
  h('a', { href: '/workers', 'data-nav': '/workers' }, 'Workers'),
  h('a', { href: '/playground', 'data-nav': '/playground' }, 'Playground'),
  h('a', { href: '/queues', 'data-external': '' }, 'Queues ↗'),
);
const conn = h('div', { class: 'conn', title: 'live event stream' }, h('span', { class: 'dot' }), h('span', { class: 'label' }, 'connecting'));
const main = h('main', { id: 'main' });
const app = document.getElementById('app')!;
replace(
  app,
  h('header', { class: 'topbar' }, h('a', { class: 'brand', href: '/' }, h('span', { class: 'logo' }, logo()), h('span', { class: 'text' }, 'Stride')), nav, conn),
  main,
  tokenDialog(),
);

live.onStatus((s) => {
  conn.className = `conn ${s}`;
  conn.querySelector('.label')!.textContent = s === 'open' ? 'live' : s;
});

let cleanup: (() => void) | undefined;

function render(): void {
  const path = location.pathname;
  cleanup?.();
  cleanup = undefined;
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
    for (const a of nav.querySelectorAll<HTMLAnchorElement>('a[data-nav]')) a.classList.toggle('active', a.dataset.nav === r.nav);
    document.title = `${r.title} · Stride`;
    const root = h('div', { class: 'page' });
    replace(main, root);
    cleanup = r.page(root, params, new URLSearchParams(location.search));
    window.scrollTo(0, 0);
    return;
  }
  replace(main, h('div', { class: 'card empty' }, h('h2', null, 'Not found'), h('p', null, `Nothing lives at ${path}. `, h('a', { href: '/' }, 'Back to the jobs'))));
}

/** Navigates inside the app without reloading (pages ask through `go` in ui/nav.ts). */
function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  render();
}

// Same-origin links are routed here, except those marked external (BullMQ's board is a separate app).
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest('a');
  if (!a || a.target || a.hasAttribute('download') || a.hasAttribute('data-external')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/queues')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);
window.addEventListener(NAVIGATE_EVENT, (e) => navigate((e as CustomEvent<string>).detail));

dropStoredToken();
live.start();
render();
