// Line charts on uPlot: sized to their container, redrawn at most a few times a second however
// fast metrics arrive.
import uPlot from 'uplot';
import { h } from './dom.ts';
import { num } from './format.ts';

export interface SeriesSpec {
  label: string;
  color: string;
  /** Dashed stroke (used for test-set series). */
  dash?: boolean;
  /** Stroke width in CSS px. Default 1.75. */
  width?: number;
  /** Draw points: series with few values (evaluations) read better with them. */
  points?: boolean;
  /** Value formatter for the legend. Default `num`. */
  format?: (v: number) => string;
}

export interface ChartOptions {
  title: string;
  series: SeriesSpec[];
  /** Fixed y range (accuracy: [0, 1]); default: fit the data. */
  yRange?: [number, number];
  /** Logarithmic y axis (loss over many steps). */
  yLog?: boolean;
  /** Formats y tick labels. Default `num`. */
  yFormat?: (v: number) => string;
  /** Plot height in px. Default 200. */
  height?: number;
}

/** The x values and one column per series; null where a series has no value at that x. */
export interface ChartData {
  x: number[];
  ys: ArrayLike<number | null>[];
}

const MIN_REDRAW_MS = 250;

/** The last non-null value of a column. */
function latest(col: ArrayLike<number | null | undefined>): number | null {
  for (let i = col.length - 1; i >= 0; i--) {
    const v = col[i];
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

/** Powers of ten covering [min, max]. */
function decades(min: number, max: number): number[] {
  const out: number[] = [];
  if (!(min > 0 && max > 0)) return out;
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) out.push(10 ** e);
  return out;
}

const show = (v: number | null | undefined, format: (v: number) => string): string => (v === null || v === undefined ? '—' : format(v));

export class LineChart {
  readonly element: HTMLElement;
  private plot?: uPlot;
  private data: ChartData;
  private pending = false;
  private lastDraw = 0;
  private readonly resizer: ResizeObserver;
  private readonly body: HTMLElement;
  private readonly empty: HTMLElement;

  constructor(private readonly options: ChartOptions) {
    this.data = { x: [], ys: options.series.map(() => []) };
    this.body = h('div', { class: 'chart-body' });
    this.empty = h('div', { class: 'chart-empty' }, 'waiting for data…');
    this.element = h('figure', { class: 'chart' }, h('figcaption', null, options.title), this.body, this.empty);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.body);
  }

  /** Replaces the data; the chart redraws soon (throttled). */
  setData(data: ChartData): void {
    if (data.ys.length !== this.options.series.length) {
      throw new Error(`chart ${this.options.title}: ${this.options.series.length} series, got ${data.ys.length} columns`);
    }
    this.data = data;
    this.schedule();
  }

  destroy(): void {
    this.resizer.disconnect();
    this.plot?.destroy();
    this.plot = undefined;
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, MIN_REDRAW_MS - (performance.now() - this.lastDraw));
    setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
  }

  private width(): number {
    return Math.max(200, Math.floor(this.body.clientWidth));
  }

  private draw(): void {
    this.pending = false;
    this.lastDraw = performance.now();
    const hasData = this.data.x.length > 0;
    this.empty.hidden = hasData;
    if (!hasData) return;
    const aligned = [this.data.x, ...this.data.ys] as uPlot.AlignedData;
    if (!this.plot) {
      if (!this.body.isConnected) {
        // Not in the page yet: try again once it is laid out.
        this.schedule();
        return;
      }
      this.plot = new uPlot(this.plotOptions(), aligned, this.body);
    } else {
      this.plot.setData(aligned);
      // Refresh the legend's "latest" values unless the user is hovering the chart.
      if (this.plot.cursor.idx === null || this.plot.cursor.idx === undefined) this.plot.setLegend({});
    }
  }

  private resize(): void {
    if (!this.plot) {
      if (this.data.x.length > 0) this.schedule();
      return;
    }
    const w = this.width();
    if (Math.abs(this.plot.width - w) > 1) this.plot.setSize({ width: w, height: this.options.height ?? 200 });
  }

  private plotOptions(): uPlot.Options {
    const o = this.options;
    const fmt = o.yFormat ?? ((v: number) => num(v));
    const axisStroke = '#5b6478';
    const grid = { stroke: '#e7eaf0', width: 1 };
    return {
      width: this.width(),
      height: o.height ?? 200,
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: {
        x: { time: false },
        y: o.yRange ? { range: o.yRange } : o.yLog ? { distr: 3 } : { auto: true },
      },
      axes: [
        { stroke: axisStroke, grid, ticks: grid, size: 32, values: (_u, ticks) => ticks.map((t) => (t === null || t === undefined ? '' : num(t))) },
        {
          stroke: axisStroke,
          grid,
          ticks: grid,
          size: 58,
          values: (_u, ticks) => ticks.map((t) => (t === null || t === undefined ? '' : t === 0 ? '0' : fmt(t))),
          // A log axis gets one tick per decade (uPlot's default adds 2..9 of each, unlabelled).
          splits: o.yLog ? (_u, _axis, min, max) => decades(min, max) : undefined,
        },
      ],
      series: [
        { label: 'step', value: (u, v, sidx, idx) => show(idx === null ? latest(u.data[sidx]) : v, String) },
        ...o.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.75,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: true,
          points: { show: s.points ?? false, size: 7, width: 1.5, stroke: '#fff', fill: s.color },
          // Hovering shows the values under the cursor; otherwise the latest ones.
          value: (u: uPlot, v: number | null, sidx: number, idx: number | null) => show(idx === null ? latest(u.data[sidx]) : v, s.format ?? fmt),
        })),
      ],
    };
  }
}
