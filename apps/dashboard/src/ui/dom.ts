// A few DOM helpers: enough to build the dashboard's views without a framework.

type Child = Node | string | number | null | undefined | false | readonly Child[];
type Attrs = Record<string, unknown>;

/**
 * Creates an element. Attributes: `class`, `style` (string), `on<event>` handlers (`onclick`),
 * `dataset` (object), booleans (`disabled: true`), anything else as an attribute string.
 * `null`, `undefined` and `false` attributes and children are skipped.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (key === 'value' && 'value' in el) {
        (el as unknown as { value: string }).value = String(value);
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Sets the text of `el` only when it changed (avoids layout work on every live update). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** An element's descendant that must exist (views query the parts they update). */
export function $(root: ParentNode, selector: string): HTMLElement {
  const el = root.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`dashboard: no element matches ${selector}`);
  return el;
}

/** A progress bar: a div.bar holding a div.fill whose width is the fraction done. */
export function progressBar(fraction: number, state?: string): HTMLDivElement {
  const bar = h('div', { class: `bar${state ? ` bar-${state}` : ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div', { class: 'fill' }));
  setProgress(bar, fraction);
  return bar;
}

export function setProgress(bar: HTMLElement, fraction: number, state?: string): void {
  const pct = Math.max(0, Math.min(100, fraction * 100));
  const fill = bar.firstElementChild as HTMLElement;
  const width = `${pct.toFixed(2)}%`;
  if (fill.style.width !== width) fill.style.width = width;
  bar.setAttribute('aria-valuenow', pct.toFixed(0));
  if (state !== undefined) bar.className = `bar bar-${state}`;
}

/**
 * Text for an upper-cased label in which the words that carry their own capitals (`mIoU`,
 * `mAP@0.5`, `IoU`) keep their case: those words are wrapped in `span.case`.
 */
export function keepCase(text: string): (Node | string)[] {
  return text.split(/(\s+)/).map((word) => (/[A-Z]/.test(word) ? h('span', { class: 'case' }, word) : word));
}
