// The dashboard's vision views in real Chromium, against API answers made here: one job per vision
// task (plus an old classification record), their metrics, and a checkpoint per job written at
// test time from a zoo model with its initial (random) weights. The built app is served by Vite's
// preview server; the browser's /api calls are answered by page.route, so this test needs neither
// Redis nor a coordinator (browser.test.ts runs the real stack).
//
// What the browser computes is checked against the same computation in Node: the pad's pixels are
// read back from the page, run through the same preprocessing and model here, and the mask, the
// boxes and the class the page shows must be the ones computed here. Screenshots at 1280 and 390 px
// go to artifacts/screenshots/. Also: a checkpoint whose normalization or class names do not fit
// its model is refused with the field named, and the API token is kept per tab (sessionStorage).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page, type Route } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { buildModel, decodeLocalization, decodeYolo, encodeNamedArrays, fromData, getZooSpec, noGrad, zooNames, type Model, type ModelSpec } from '@stride/cnn';
import { normalize } from '../src/preprocess.ts';
import { argmaxMask, maskToRgba, padToInput, segmentationClassNames, segmentationColor } from '../src/ui/vision.ts';
import { REPO_ROOT } from './stack.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const APP_DIR = join(REPO_ROOT, 'apps/dashboard');
const SHOTS = join(REPO_ROOT, 'artifacts/screenshots');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

interface Fixture {
  id: string;
  dataset: string;
  task: string;
  model: Model;
  modelSpec: ModelSpec;
  classNames: string[];
  norm: { mean: number; std: number };
  evals: Record<string, unknown>[];
  best: Record<string, unknown>;
}

/** A checkpoint file in the engine's documented layout (see checkpoint.test.ts); `changes` replace fields of its meta. */
function checkpointBytes(f: Fixture, step: number, changes: Record<string, unknown> = {}): Uint8Array {
  const arrays = [...f.model.params.map((p) => ({ name: `param/${p.name}`, shape: p.shape, data: p.data })), ...f.model.buffers.map((b) => ({ name: `buffer/${b.name}`, shape: b.shape, data: b.data }))];
  const meta = {
    kind: 'stride-checkpoint',
    jobId: f.id,
    spec: { name: f.id, model: f.modelSpec.name, dataset: f.dataset, steps: 60, batchSize: 16, shards: 2, seed: 1 },
    modelSpec: f.modelSpec,
    normalization: { mean: [f.norm.mean], std: [f.norm.std] },
    classNames: f.classNames,
    step,
    totalSteps: 60,
    evals: f.evals,
    best: f.best,
    createdAt: new Date().toISOString(),
    ...changes,
  };
  const payload = encodeNamedArrays(arrays, meta);
  const out = new Uint8Array(48 + payload.length);
  out.set(new TextEncoder().encode('STRDCKPT'), 0);
  new DataView(out.buffer).setUint32(8, 1, true);
  out.set(createHash('sha256').update(payload).digest(), 16);
  out.set(payload, 48);
  return out;
}

/** Eval records of a task over 3 evaluations, rising. */
function evals(task: string, metrics: (t: number) => Record<string, number>): Record<string, unknown>[] {
  return [20, 40, 60].map((step, i) => ({ type: 'eval', task, step, epochProgress: step / 300, testLoss: 1.5 - i * 0.4, count: 200, evalMs: 900, time: new Date(Date.now() - (3 - i) * 60_000).toISOString(), ...metrics((i + 1) / 3) }));
}

function fixture(id: string, dataset: string, task: string, zoo: string, opts: Record<string, number>, classNames: string[], norm: Fixture['norm'], ev: Record<string, unknown>[], best: Record<string, unknown>): Fixture {
  const modelSpec = getZooSpec(zoo, opts);
  return { id, dataset, task, model: buildModel(modelSpec), modelSpec, classNames, norm, evals: ev, best };
}

const LOC = fixture('loc-job', 'mnist-localization', 'localization', 'localizer', { height: 64, width: 64, numClasses: 10 }, DIGITS, { mean: 0.0498, std: 0.1895 }, evals('localization', (t) => ({ testAccuracy: 0.5 + 0.4 * t, meanIoU: 0.3 + 0.4 * t, locAccuracy: 0.2 + 0.6 * t })), { step: 60, metric: 'locAccuracy', value: 0.8 });
const DET = fixture('det-job', 'mnist-detection', 'detection', 'yolo', { height: 96, width: 96, numClasses: 10 }, DIGITS, { mean: 0.0464, std: 0.1839 }, evals('detection', (t) => ({ mAP50: 0.1 + 0.6 * t })), { step: 60, metric: 'mAP50', value: 0.7 });
const SEG = fixture('seg-job', 'mnist-segmentation', 'segmentation', 'unet', { height: 96, width: 96, numClasses: 11 }, ['background', ...DIGITS], { mean: 0.0464, std: 0.1839 }, evals('segmentation', (t) => ({ mIoU: 0.2 + 0.5 * t, pixelAccuracy: 0.9 + 0.08 * t })), { step: 40, metric: 'mIoU', value: 0.66 });
const FIXTURES = [LOC, DET, SEG];

/** The job records the API would return. */
function jobRecord(f: Fixture | undefined, i: number): Record<string, unknown> {
  const submittedAt = new Date(Date.now() - (10 - i) * 60_000).toISOString();
  if (!f) {
    // A classification record written before the vision tasks: no task, best.testAccuracy.
    return {
      id: 'old-job',
      name: 'lenet5-mnist (old record)',
      spec: { name: 'old', model: 'lenet5', dataset: 'mnist', steps: 60, batchSize: 16, shards: 2, seed: 1, optimizer: { type: 'adam', lr: 0.003 }, schedule: { type: 'onecycle' }, evalEvery: 20, evalShards: 2, checkpointEvery: 20, keepCheckpoints: 3 },
      state: { status: 'succeeded', result: { status: 'succeeded', testAccuracy: 0.912, testLoss: 0.3, best: { step: 60, testAccuracy: 0.912 }, steps: 60, totalSteps: 60, elapsedMs: 30_000 } },
      submittedAt,
      finishedAt: submittedAt,
      runs: 1,
    };
  }
  const key = Object.keys(f.best).includes('metric') ? String(f.best.metric) : 'testAccuracy';
  const lastEval = f.evals[f.evals.length - 1];
  return {
    id: f.id,
    name: `${f.modelSpec.name}-${f.dataset}`,
    spec: { name: f.id, model: f.modelSpec.name, dataset: f.dataset, steps: 60, batchSize: 16, shards: 2, seed: 1, optimizer: { type: 'adam', lr: 0.003 }, schedule: { type: 'onecycle' }, evalEvery: 20, evalShards: 2, checkpointEvery: 20, keepCheckpoints: 3 },
    state: { status: 'succeeded', result: { status: 'succeeded', task: f.task, testLoss: lastEval.testLoss, [key]: lastEval[key], best: f.best, steps: 60, totalSteps: 60, elapsedMs: 42_000 } },
    best: f.best,
    submittedAt,
    finishedAt: submittedAt,
    runs: 1,
    workers: [{ id: 'host-a:1', host: 'host-a', shards: 80, computeMs: 20_000 }],
  };
}

/** Step records: loss falling, accuracy where the task has one. */
function metricsOf(f: Fixture | undefined): Record<string, unknown>[] {
  const steps = Array.from({ length: 60 }, (_, s) => ({
    type: 'step',
    step: s,
    epoch: 0,
    epochProgress: (s + 1) / 300,
    loss: 2.5 * Math.exp(-s / 25) + 0.2 + 0.05 * Math.sin(s),
    accuracy: !f || f.task === 'localization' ? Math.min(0.95, 0.1 + s / 60) : 0,
    count: 16,
    lr: 0.003,
    imagesPerSec: 300,
    stepMs: 50,
    queueMs: 5,
    computeMs: 40,
    publishMs: 1,
    reduceMs: 2,
    optimizerMs: 1,
    time: new Date().toISOString(),
  }));
  const ev = f ? f.evals : [20, 40, 60].map((step, i) => ({ type: 'eval', step, epochProgress: step / 300, testLoss: 0.9 - i * 0.3, testAccuracy: 0.7 + i * 0.1, count: 200, evalMs: 500, time: new Date().toISOString() }));
  return [...steps, ...ev];
}

describe('vision views in Chromium (fixture API, random-weight checkpoints)', () => {
  let dist: string;
  let server: PreviewServer;
  let browser: Browser;
  let base: string;
  const ckpts = new Map(FIXTURES.map((f) => [f.id, checkpointBytes(f, 60)]));
  const jobs = [...FIXTURES, undefined].map((f, i) => jobRecord(f, i));

  const api = async (route: Route): Promise<void> => {
    const url = new URL(route.request().url());
    const path = url.pathname;
    const json = (body: unknown, status = 200): Promise<void> => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
    if (path === '/api/events') return route.fulfill({ status: 200, contentType: 'text/event-stream', body: '' });
    if (path === '/api/jobs') return json({ jobs });
    if (path === '/api/workers') return json({ workers: [] });
    if (path === '/api/queues') return json({ queues: {} });
    if (path === '/api/zoo') return json({ models: zooNames() });
    if (path === '/api/config') {
      return json({
        datasets: [
          { name: 'mnist', input: [1, 28, 28], numClasses: 10 },
          { name: 'fashion-mnist', input: [1, 28, 28], numClasses: 10 },
          { name: 'mnist-localization', input: [1, 64, 64], numClasses: 10 },
          { name: 'mnist-detection', input: [1, 96, 96], numClasses: 10 },
          { name: 'mnist-segmentation', input: [1, 96, 96], numClasses: 11 },
        ],
        models: zooNames(),
        optimizers: ['sgd', 'adam', 'adamw'],
        defaults: { model: 'lenet5', dataset: 'mnist', epochs: 1, batchSize: 64, shards: 4, seed: 1, optimizer: { type: 'adam', lr: 0.003 } },
      });
    }
    const m = /^\/api\/jobs\/([^/]+)(?:\/(metrics|checkpoints)(?:\/([^/]+))?)?$/.exec(path);
    const id = m ? decodeURIComponent(m[1]) : '';
    const index = jobs.findIndex((j) => j.id === id);
    if (!m || index < 0) return json({ error: { code: 'not_found', message: `no route ${path}` } }, 404);
    const f = FIXTURES.find((x) => x.id === id);
    if (!m[2]) return json(jobs[index]);
    if (m[2] === 'metrics') return json({ metrics: metricsOf(f) });
    if (!m[3]) return json({ checkpoints: f ? [{ name: 'step-00000060.ckpt', step: 60, bytes: ckpts.get(id)!.length }] : [] });
    return route.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.from(ckpts.get(id)!) });
  };

  /** A new page on `path`; `before` may add routes (they take precedence over the fixture API's). */
  const open = async (size: { width: number; height: number }, path: string, before?: (page: Page) => Promise<void>): Promise<Page> => {
    const page = await browser.newPage({ viewport: size, hasTouch: true });
    page.on('pageerror', (err) => console.error(`browser page error: ${err.message}`));
    await page.route('**/api/**', api);
    await before?.(page);
    await page.goto(`${base}${path}`);
    return page;
  };
  const shot = async (p: Page, name: string): Promise<void> => {
    await p.evaluate(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      window.scrollTo(0, 0);
    });
    await p.screenshot({ path: join(SHOTS, `${name}-${p.viewportSize()!.width}.png`), fullPage: true });
  };

  /** Draws strokes (fractions of the pad) with the mouse. */
  const draw = async (page: Page, strokes: [number, number][][]): Promise<void> => {
    const pad = (await page.locator('canvas.pad').boundingBox())!;
    for (const s of strokes) {
      await page.mouse.move(pad.x + pad.width * s[0][0], pad.y + pad.height * s[0][1]);
      await page.mouse.down();
      for (const [fx, fy] of s.slice(1)) await page.mouse.move(pad.x + pad.width * fx, pad.y + pad.height * fy, { steps: 8 });
      await page.mouse.up();
    }
  };

  /** The model input for the pad as the page has it, computed here. */
  const inputOf = async (page: Page, f: Fixture): Promise<Float32Array> => {
    const img = await page.locator('canvas.pad').evaluate((c: HTMLCanvasElement) => ({ width: c.width, height: c.height, data: Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data) }));
    const side = f.model.inputShape[1];
    const pixels = padToInput({ width: img.width, height: img.height, data: Uint8ClampedArray.from(img.data) }, side)!;
    return normalize(pixels, f.norm.mean, f.norm.std);
  };
  const run = (f: Fixture, x: Float32Array) => noGrad(() => f.model.forward(fromData(x, [1, ...f.model.inputShape])));

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    mkdirSync(SHOTS, { recursive: true });
    dist = mkdtempSync(join(tmpdir(), 'stride-vision-dist-'));
    await build({ root: APP_DIR, configFile: join(APP_DIR, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dist, emptyOutDir: true } });
    server = await preview({ root: APP_DIR, configFile: join(APP_DIR, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dist }, preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false, proxy: {} } });
    base = server.resolvedUrls!.local[0].replace(/\/$/, '');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  }, 180_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close().catch(() => undefined);
    if (dist) rmSync(dist, { recursive: true, force: true });
  }, 30_000);

  it('lists each job with its task’s primary metric; old classification records still render', async () => {
    const page = await open(DESKTOP, '/');
    const row = (id: string) => page.locator(`a.job-row[data-job="${id}"]`);
    await row('seg-job').waitFor({ timeout: 20_000 });
    expect(await row('seg-job').locator('.metric .k').textContent()).toBe('test mIoU');
    expect(await row('seg-job').locator('.acc').textContent()).toBe('70.0 %'); // the last eval's mIoU, from the result
    expect(await row('det-job').locator('.metric .k').textContent()).toBe('test mAP@0.5');
    expect(await row('det-job').locator('.acc').textContent()).toBe('70.0 %');
    expect(await row('loc-job').locator('.metric .k').textContent()).toBe('test loc. acc.');
    expect(await row('old-job').locator('.metric .k').textContent()).toBe('test acc.');
    expect(await row('old-job').locator('.acc').textContent()).toBe('91.2 %');
    await shot(page, 'vision-jobs');
    await page.close();
  }, 60_000);

  it('shows a job’s task metrics, its best evaluation and a chart of the task’s metrics', async () => {
    for (const size of [DESKTOP, PHONE]) {
      const page = await open(size, '/jobs/seg-job');
      const card = page.locator('.metric-card[data-task="segmentation"]');
      await card.locator('.uplot canvas').first().waitFor({ timeout: 20_000 });
      expect(await card.locator('figcaption').textContent()).toMatch(/^Segmentation: mIoU and pixel accuracy/);
      expect(await card.locator('.u-legend').textContent()).toMatch(/test mIoU.*test pixel acc\./);
      expect(await page.locator('.stats .m-mIoU').textContent()).toBe('70.0 %');
      expect(await page.locator('.stats .m-pixelAccuracy').textContent()).toBe('98.0 %');
      expect(await page.locator('.stats .best').textContent()).toBe('66.0 % · step 40');
      expect(await page.locator('.stats .acc').count()).toBe(0); // no train accuracy for segmentation
      await shot(page, 'vision-job');
      await page.close();
    }
    const loc = await open(DESKTOP, '/jobs/loc-job');
    await loc.locator('.metric-card[data-task="localization"] .uplot').waitFor({ timeout: 20_000 });
    expect(await loc.locator('.stats .m-locAccuracy').textContent()).toBe('80.0 %');
    expect(await loc.locator('.stats .m-meanIoU').textContent()).toBe('70.0 %');
    expect(await loc.locator('.stats .tacc').textContent()).toBe('90.0 %');
    expect(await loc.locator('.stats .acc').count()).toBe(1);
    await loc.close();
    // The old classification record: accuracy chart and test accuracy as before.
    const old = await open(DESKTOP, '/jobs/old-job');
    await old.locator('.metric-card[data-task="classification"] .uplot').waitFor({ timeout: 20_000 });
    expect(await old.locator('.metric-card figcaption').textContent()).toBe('Accuracy');
    expect(await old.locator('.stats .tacc').textContent()).toBe('90.0 %');
    expect(await old.locator('.stats .best').textContent()).toBe('91.2 % · step 60');
    await old.close();
  }, 90_000);

  it('offers the vision datasets and the models made for their task', async () => {
    const page = await open(DESKTOP, '/submit');
    await page.locator('#f-dataset option[value="mnist-detection"]').waitFor({ state: 'attached', timeout: 20_000 });
    expect(await page.inputValue('#f-model')).toBe('lenet5');
    await page.selectOption('#f-dataset', 'mnist-detection');
    expect(await page.inputValue('#f-model')).toBe('yolo');
    expect(await page.locator('#f-model optgroup').first().getAttribute('label')).toBe('for detection');
    expect(await page.locator('[data-field="model"] .hint').textContent()).toMatch(/single-shot grid detector/);
    expect(await page.locator('[data-field="dataset"] .hint').textContent()).toMatch(/^Detection: .*mAP@0\.5/);
    expect(await page.locator('pre').textContent()).toMatch(/"model": "yolo",\s*"dataset": "mnist-detection"/);
    await page.selectOption('#f-dataset', 'mnist-segmentation');
    expect(await page.inputValue('#f-model')).toBe('unet');
    // A model made for another task stays possible, with a warning under the field.
    await page.selectOption('#f-model', 'lenet5');
    expect(await page.locator('[data-field="model"] .hint').textContent()).toMatch(/Not made for segmentation/);
    await page.selectOption('#f-dataset', 'mnist');
    expect(await page.inputValue('#f-model')).toBe('lenet5');
    await page.selectOption('#f-dataset', 'mnist-segmentation');
    await shot(page, 'vision-submit');
    await page.close();
  }, 60_000);

  it('segmentation: draws the predicted mask as a coloured overlay, the mask this model computes', async () => {
    const page = await open(DESKTOP, '/playground?job=seg-job');
    await expect.poll(() => page.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 30_000 }).toBe('seg-job/step-00000060.ckpt');
    expect(await page.locator('canvas.pad').evaluate((c: HTMLCanvasElement) => c.width)).toBe(288);
    // A "1" and a "7" side by side.
    await draw(page, [
      [[0.25, 0.2], [0.25, 0.75]],
      [[0.5, 0.25], [0.8, 0.25], [0.62, 0.75]],
    ]);
    const mask = page.locator('canvas.overlay.mask');
    await expect.poll(() => mask.getAttribute('data-classes'), { timeout: 10_000 }).not.toBeNull();
    const shown = await mask.evaluate((c: HTMLCanvasElement) => ({ w: c.width, data: Array.from(c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data) }));
    expect(shown.w).toBe(96);
    const out = run(SEG, await inputOf(page, SEG));
    const names = segmentationClassNames(11, SEG.classNames);
    const expected = maskToRgba(argmaxMask(out.data, 11, 96, 96), (c) => segmentationColor(c, names));
    let same = 0;
    for (let i = 0; i < expected.length; i += 4) if (expected[i] === shown.data[i] && expected[i + 1] === shown.data[i + 1] && expected[i + 3] === shown.data[i + 3]) same++;
    expect(same / (96 * 96)).toBeGreaterThan(0.999);
    // A legend row per class; the opacity slider sets the overlay's opacity.
    expect(await page.locator('.legend .legend-row').count()).toBe(11);
    await page.locator('#pg-opacity').fill('0.3');
    expect(await mask.evaluate((c: HTMLCanvasElement) => c.style.opacity)).toBe('0.3');
    expect(await page.locator('.maps .layer').count()).toBe(19); // every conv layer, most folded
    expect(await page.locator('.maps details.layer').count()).toBe(17);
    await page.locator('#pg-opacity').fill('0.6');
    await shot(page, 'vision-playground-segmentation');
    await page.close();
  }, 90_000);

  it('detection: draws the boxes NMS keeps above the score threshold, with class and score', async () => {
    for (const size of [DESKTOP, PHONE]) {
      const page = await open(size, '/playground?job=det-job');
      await expect.poll(() => page.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 30_000 }).toBe('det-job/step-00000060.ckpt');
      await draw(page, [
        [[0.2, 0.2], [0.2, 0.45]],
        [[0.55, 0.55], [0.8, 0.55], [0.65, 0.85]],
      ]);
      const boxes = page.locator('canvas.overlay.boxes');
      await expect.poll(() => boxes.getAttribute('data-count'), { timeout: 10_000 }).not.toBeNull();
      // Every detection NMS keeps (threshold 0), as computed here.
      await page.locator('#pg-score').fill('0');
      const expected = decodeYolo(run(DET, await inputOf(page, DET)), { scoreThreshold: 0, iouThreshold: 0.5 })[0];
      expect(expected.length).toBeGreaterThan(0);
      await expect.poll(() => boxes.getAttribute('data-count')).toBe(String(expected.length));
      const rows = page.locator('table.detections tbody tr');
      expect(await rows.count()).toBe(expected.length);
      expect(await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.getAttribute('data-class'))))).toEqual(expected.map((d) => d.classId));
      // Raising the threshold hides the boxes under it.
      const cut = expected[Math.min(2, expected.length - 1)].score;
      await page.locator('#pg-score').fill(String(Math.ceil(cut * 20) / 20));
      const kept = expected.filter((d) => d.score >= Math.ceil(cut * 20) / 20).length;
      await expect.poll(() => boxes.getAttribute('data-count')).toBe(String(kept));
      await page.locator('#pg-score').fill('0');
      // Boxes are drawn: the overlay has coloured pixels.
      const painted = await boxes.evaluate((c: HTMLCanvasElement) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
      });
      expect(painted).toBeGreaterThan(100);
      await page.locator('#pg-score').fill('0.3'); // the default, for the picture
      await shot(page, 'vision-playground-detection');
      await page.close();
    }
  }, 120_000);

  it('localization: draws the one box with its class, the class bars of this model', async () => {
    const page = await open(PHONE, '/playground?job=loc-job');
    await expect.poll(() => page.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 30_000 }).toBe('loc-job/step-00000060.ckpt');
    expect(await page.locator('canvas.pad').evaluate((c: HTMLCanvasElement) => c.width)).toBe(320);
    await draw(page, [[[0.6, 0.3], [0.6, 0.7]]]);
    await page.locator('#pg-box').waitFor({ timeout: 10_000 });
    const [det] = decodeLocalization(run(LOC, await inputOf(page, LOC)));
    expect(await page.locator('#pg-top').textContent()).toBe(String(det.classId));
    expect(await page.locator('.prob').count()).toBe(10);
    await page.locator('#pg-score').fill('0');
    await expect.poll(() => page.locator('canvas.overlay.boxes').getAttribute('data-count')).toBe('1');
    await shot(page, 'vision-playground-localization');

    // An uploaded photo, dark ink on light paper: inverted, fitted to the pad, not moved or rescaled.
    const png = await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 200;
      c.height = 200;
      const g = c.getContext('2d')!;
      g.fillStyle = '#efeae0';
      g.fillRect(0, 0, 200, 200);
      g.fillStyle = '#1d1d1d';
      g.fillRect(140, 120, 20, 60); // a "1" low on the right: x 44.8–51.2, y 38.4–57.6 of 64
      return c.toDataURL('image/png').split(',')[1];
    });
    await page.setInputFiles('#pg-upload', { name: 'one.png', mimeType: 'image/png', buffer: Buffer.from(png, 'base64') });
    const seen = page.locator('.seen-img canvas');
    await expect
      .poll(
        () =>
          seen.evaluate((c: HTMLCanvasElement) => {
            const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
            const at = (x: number, y: number): number => d[(y * c.width + x) * 4];
            return [c.width, at(48, 48), at(10, 10), at(48, 20)];
          }),
        { timeout: 10_000 },
      )
      .toEqual([64, 255, 0, 0]);
    const [again] = decodeLocalization(run(LOC, await inputOf(page, LOC)));
    expect(await page.locator('#pg-top').textContent()).toBe(String(again.classId));
    await page.close();
  }, 60_000);
  it('refuses a checkpoint whose normalization or class names do not fit its model, saying which field and why', async () => {
    const cases: [Fixture, Record<string, unknown>, string][] = [
      [SEG, { classNames: DIGITS.slice(0, 5) }, 'meta.classNames must hold 11 or 10 names, one per class of this segmentation model (output 11×96×96), got 5 values'],
      [DET, { classNames: [...DIGITS.slice(0, 9), 'x'.repeat(300)] }, 'meta.classNames[9] must be a string of 1 to 255 characters, got a string of 300 characters'],
      [LOC, { classNames: [...DIGITS.slice(0, 9), null] }, 'meta.classNames[9] must be a string of 1 to 255 characters, got null'],
      [LOC, { normalization: { mean: [0.05], std: [0] } }, 'meta.normalization.std[0] must be a finite number > 0, got 0'],
      [DET, { normalization: { mean: [Number.NaN], std: [0.18] } }, 'meta.normalization.mean[0] must be a finite number, got null'],
      [SEG, { normalization: { mean: [0.05, 0.05, 0.05], std: [0.18, 0.18, 0.18] } }, 'meta.normalization.mean must hold 1 number, one per input channel of the model, got 3 values'],
    ];
    for (const [f, changes, message] of cases) {
      const bad = checkpointBytes(f, 60, changes);
      const page = await open(DESKTOP, `/playground?job=${f.id}`, async (p) => {
        await p.route('**/api/jobs/*/checkpoints/*.ckpt', (route) => route.fulfill({ status: 200, contentType: 'application/octet-stream', body: Buffer.from(bad) }));
      });
      await expect.poll(() => page.locator('.banner.error').textContent(), { timeout: 20_000 }).toBe(`step-00000060.ckpt: ${message}`);
      expect(await page.getByText('No model loaded.', { exact: true }).count()).toBe(1);
      expect(await page.locator('[data-loaded]').count()).toBe(0);
      await page.close();
    }
  }, 60_000);

  it('keeps the API token in sessionStorage, for this tab only, and drops a copy an older version left in localStorage', async () => {
    const TOKEN = 's3cret-token';
    const context = await browser.newContext({ viewport: DESKTOP });
    const sent: (string | undefined)[] = [];
    // The coordinator's rule with STRIDE_READ_TOKEN set: every call needs the token.
    await context.route('**/api/**', (route) => {
      const auth = route.request().headers().authorization;
      sent.push(auth);
      if (auth === `Bearer ${TOKEN}`) return api(route);
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unauthorized', message: `${route.request().method()} needs a token` } }) });
    });
    try {
      const page = await context.newPage();
      await page.goto(`${base}/`);
      const dialog = page.locator('#token-dialog[open]');
      await dialog.waitFor({ timeout: 20_000 });
      // A token an older version kept in localStorage: dropped at load, never sent.
      await page.evaluate(() => localStorage.setItem('stride.token', 'old-token'));
      await page.reload();
      await dialog.waitFor({ timeout: 20_000 });
      expect(await page.evaluate(() => localStorage.getItem('stride.token'))).toBeNull();
      expect(sent).not.toContain('Bearer old-token');

      await page.fill('#token-dialog input[name="token"]', TOKEN);
      await page.click('#token-dialog button[value="save"]');
      // The dialog's close handler stores it: wait for that, then look at both storages.
      await page.waitForFunction(() => sessionStorage.getItem('stride.token') !== null, undefined, { timeout: 20_000 });
      expect(await page.evaluate(() => [sessionStorage.getItem('stride.token'), localStorage.getItem('stride.token')])).toEqual([TOKEN, null]);
      // This tab keeps it across a reload, and sends it.
      await page.reload();
      await page.locator('a.job-row[data-job="seg-job"]').waitFor({ timeout: 20_000 });
      expect(sent).toContain(`Bearer ${TOKEN}`);
      expect(await page.locator('#token-dialog[open]').count()).toBe(0);

      // Another tab has none: it asks again.
      const other = await context.newPage();
      await other.goto(`${base}/`);
      await other.locator('#token-dialog[open]').waitFor({ timeout: 20_000 });
      expect(await other.evaluate(() => sessionStorage.getItem('stride.token'))).toBeNull();
    } finally {
      await context.close();
    }
  }, 60_000);
});
