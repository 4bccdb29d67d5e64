// The dashboard in real Chromium against the real stack: Redis (unique key prefix), the
// coordinator with its HTTP API, one worker and the dashboard server, each a child process, on a
// temporary data directory. Covers the issue "Submit and watch": submit through the form (and a
// validation error shown next to its field), progress and charts moving live, cancel, and the
// playground predicting a drawn digit in the browser with its feature maps. Saves screenshots of
// the main pages at 1280 px and 390 px to artifacts/screenshots/.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { build } from 'vite';
import { freePort, REPO_ROOT, startService, type Service } from './stack.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const APP_DIR = join(REPO_ROOT, 'apps/dashboard');
const SHOTS = join(REPO_ROOT, 'artifacts/screenshots');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** A job small enough to finish in seconds, submitted through the form. */
const TINY = { name: 'e2e-tiny', steps: '40', batchSize: '16', shards: '2' };

describe('dashboard in Chromium against the real stack', () => {
  const prefix = `stride-e2e-${process.pid}-${Date.now()}`;
  let dataDir: string;
  let dist: string;
  let profile: string;
  const services: Service[] = [];
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let tinyId: string;

  const shot = async (p: Page, name: string): Promise<void> => {
    const size = p.viewportSize()!;
    // From the top, nothing focused: a full-page capture of a scrolled page draws the sticky header mid-page.
    await p.evaluate(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      window.scrollTo(0, 0);
    });
    await p.screenshot({ path: join(SHOTS, `${name}-${size.width}.png`), fullPage: true });
  };
  /** Screenshots of the page at the current URL at both widths (waits for `ready` after each load). */
  const shotsAtBothWidths = async (name: string, ready: (p: Page) => Promise<void>): Promise<void> => {
    const url = page.url();
    const phone = await context.newPage();
    try {
      await phone.setViewportSize(PHONE);
      await phone.goto(url);
      await ready(phone);
      await shot(phone, name);
    } finally {
      await phone.close();
    }
    await shot(page, name);
  };
  const logs = (): string => services.map((s) => `--- ${s.name}\n${s.output().slice(-3000)}`).join('\n');

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    mkdirSync(SHOTS, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'stride-e2e-data-'));
    dist = mkdtempSync(join(tmpdir(), 'stride-e2e-dist-'));
    profile = mkdtempSync(join(tmpdir(), 'stride-e2e-chromium-'));

    // The app as `npm run build` makes it, into a folder of this test's own.
    const building = build({ root: APP_DIR, configFile: join(APP_DIR, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dist, emptyOutDir: true } });
    const apiPort = await freePort();
    const common = { REDIS_URL, STRIDE_QUEUE_PREFIX: prefix };
    const coordinator = startService('coordinator', 'apps/coordinator/src/main.ts', [], { ...common, PORT: String(apiPort), STRIDE_DATA_DIR: dataDir });
    const worker = startService('worker', 'apps/worker/src/main.ts', ['--threads', '1'], common);
    services.push(coordinator, worker);
    await Promise.all([coordinator.waitFor(/taking training jobs/, 60_000), worker.waitFor(/\d+ threads/, 60_000), building]);
    const dashboard = startService('dashboard', 'apps/dashboard/src/server.ts', [], { ...common, API_URL: `http://127.0.0.1:${apiPort}`, DASHBOARD_PORT: '0', DASHBOARD_DIST: dist });
    services.push(dashboard);
    base = (await dashboard.waitFor(/listening on (http:\/\/\S+)/, 60_000))[1];

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: DESKTOP,
      hasTouch: true,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => console.error(`browser page error: ${err.message}`));
  }, 120_000);

  afterAll(async () => {
    await context?.close().catch(() => undefined);
    await Promise.all(services.map((s) => s.stop()));
    const redis = new Redis(REDIS_URL);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    for (const dir of [dataDir, dist, profile]) if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('shows a validation error next to its field, then submits a job through the form', async () => {
    await page.goto(`${base}/submit`);
    await page.locator('#f-model option[value="lenet5"]').waitFor({ state: 'attached' });

    // The browser's own check, as the user types.
    await page.fill('#f-batchSize', '0');
    const batchError = page.locator('[data-field="batchSize"] .error');
    await expect.poll(() => batchError.textContent()).toBe('must be an integer in [1, 65536], got 0');
    await page.click('button[type=submit]');
    expect(new URL(page.url()).pathname).toBe('/submit');

    // The server's check: a request whose batch size the browser let through (as one whose rules
    // drifted from the engine's would) gets the API's 400, shown next to the field it names.
    await page.fill('#f-batchSize', TINY.batchSize);
    await expect.poll(() => batchError.textContent()).toBe('');
    await page.route('**/api/jobs', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      const body = JSON.parse(route.request().postData()!);
      await route.continue({ postData: JSON.stringify({ ...body, shards: 999 }) });
    });
    await page.click('button[type=submit]');
    const shardsError = page.locator('[data-field="shards"] .error');
    await expect.poll(() => shardsError.textContent(), { timeout: 10_000 }).toMatch(/must be an integer in \[1, 16\], got 999/);
    await expect.poll(() => page.locator('.banner.error').textContent()).toMatch(/refused the job/);
    await page.unroute('**/api/jobs');
    await shotsAtBothWidths('submit-error', async (p) => {
      await p.locator('#f-model option[value="lenet5"]').waitFor({ state: 'attached' });
      await p.fill('#f-batchSize', '0');
      await p.fill('#f-lr', '-1');
    });

    // A tiny job, through the form.
    await page.fill('#f-name', TINY.name);
    await page.selectOption('#f-model', 'lenet5');
    await page.selectOption('#f-unit', 'steps');
    await page.fill('#f-length', TINY.steps);
    await page.fill('#f-batchSize', TINY.batchSize);
    await page.fill('#f-shards', TINY.shards);
    // The fused multiply-add numerics: the stack's workers train it (next test) like any job.
    await page.selectOption('#f-numerics', 'fma');
    await page.click('button[type=submit]');
    await page.waitForURL(/\/jobs\/[^/]+$/, { timeout: 15_000 });
    tinyId = decodeURIComponent(page.url().split('/jobs/')[1]);
    await expect.poll(() => page.locator('h1').textContent()).toBe(TINY.name);
    const record = (await (await page.request.get(`${base}/api/jobs/${encodeURIComponent(tinyId)}`)).json()) as { spec: { numerics?: string } };
    expect(record.spec.numerics).toBe('fma');
  }, 60_000);

  it('shows the job progressing live, with charts, until it succeeds with a checkpoint', async () => {
    const steps = page.locator('.progress-big .steps');
    // Progress moves without a reload: two different step counts seen on the same page.
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          const text = (await steps.textContent()) ?? '';
          if (/^step [1-9]\d* \/ 40$/.test(text)) seen.add(text);
          return seen.size >= 2;
        },
        { timeout: 60_000, interval: 100 },
      )
      .toBe(true);

    // Charts drew the steps that arrived (uPlot canvases, no "waiting" placeholder).
    const lossChart = page.locator('figure.chart', { hasText: 'Loss' });
    await lossChart.locator('.uplot canvas').waitFor({ timeout: 10_000 });
    expect(await lossChart.locator('.chart-empty').isHidden()).toBe(true);

    await page.locator('h1 + .badge.succeeded').waitFor({ timeout: 60_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });
    expect(await steps.textContent()).toBe('step 40 / 40');
    await expect.poll(() => page.locator('.stats .tacc').textContent(), { timeout: 10_000 }).toMatch(/^\d+\.\d %$/);
    const ckpt = page.locator('table.checkpoints a[download]').first();
    await ckpt.waitFor({ timeout: 10_000 });
    expect(await ckpt.textContent()).toMatch(/^step-\d{8}\.ckpt$/);
    // The download link serves the file itself.
    const href = (await ckpt.getAttribute('href'))!;
    const file = await page.request.get(`${base}${href}`);
    expect(file.status()).toBe(200);
    expect(new TextDecoder().decode((await file.body()).subarray(0, 8))).toBe('STRDCKPT');

    await shotsAtBothWidths('job', async (p) => {
      await p.locator('h1 + .badge.succeeded').waitFor();
      await p.locator('figure.chart .uplot canvas').first().waitFor();
    });
  }, 90_000);

  it('cancels a running job from its page', async () => {
    const res = await page.request.post(`${base}/api/jobs`, { data: { name: 'e2e-long', model: 'lenet5', dataset: 'mnist', steps: 100_000, batchSize: 16, shards: 2 } });
    expect(res.status()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${base}/jobs/${encodeURIComponent(id)}`);
    await page.locator('h1 + .badge.running').waitFor({ timeout: 30_000 });
    await expect.poll(() => page.locator('.progress-big .steps').textContent(), { timeout: 30_000 }).toMatch(/^step [1-9]\d* \/ 100000$/);

    // The list and the workers while a job runs.
    await page.goto(`${base}/`);
    await page.locator(`a.job-row[data-job="${id}"] .badge.running`).waitFor();
    await shotsAtBothWidths('jobs', (p) => p.locator('a.job-row .badge.running').first().waitFor());
    await page.goto(`${base}/workers`);
    // Polled: the list follows the heartbeats, which a loaded machine can delay past a page load.
    await expect.poll(() => page.locator('.card.worker .alive:not(.dead)').count(), { timeout: 30_000 }).toBe(1);
    await page.locator('table.queues tr[data-queue="shards"]').waitFor({ timeout: 10_000 });
    await shotsAtBothWidths('workers', (p) => p.locator('table.queues tr[data-queue="shards"]').waitFor());
    // BullMQ's board, mounted by the dashboard server, with Stride's queues.
    await page.goto(`${base}/queues`);
    await page.getByText('shards', { exact: true }).first().waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => !document.body.innerText.includes('Loading...'), undefined, { timeout: 30_000 });
    await shot(page, 'queues');

    await page.goto(`${base}/jobs/${encodeURIComponent(id)}`);
    await page.locator('h1 + .badge.running').waitFor({ timeout: 30_000 });
    page.once('dialog', (d) => void d.accept());
    await page.click('button[data-action="cancel"]');
    // The API first: the job is cancelled on the coordinator's side (it stops at the next step
    // boundary, after a checkpoint), then the page shows it — two conditions, each named when it fails.
    const status = async (): Promise<string> => ((await (await page.request.get(`${base}/api/jobs/${encodeURIComponent(id)}`)).json()) as { state: { status: string } }).state.status;
    await expect
      .poll(status, { timeout: 60_000, message: `job ${id} cancelled by the coordinator` })
      .toBe('cancelled')
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${logs()}`);
      });
    await page.locator('h1 + .badge.cancelled').waitFor({ timeout: 30_000 });
    expect(await page.locator('button[data-action="cancel"]').isDisabled()).toBe(true);
  }, 180_000);

  it('predicts a drawn digit in the browser and draws feature maps and filters', async () => {
    await page.goto(`${base}/playground?job=${encodeURIComponent(tinyId)}`);
    await expect.poll(() => page.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 20_000 }).toMatch(new RegExp(`^${tinyId}/step-\\d{8}\\.ckpt$`));

    // A "7", drawn with the mouse.
    const pad = (await page.locator('canvas.pad').boundingBox())!;
    const at = (fx: number, fy: number): [number, number] => [pad.x + pad.width * fx, pad.y + pad.height * fy];
    await page.mouse.move(...at(0.3, 0.25));
    await page.mouse.down();
    await page.mouse.move(...at(0.7, 0.25), { steps: 10 });
    await page.mouse.move(...at(0.45, 0.8), { steps: 14 });
    await page.mouse.up();

    const top = page.locator('#pg-top');
    await top.waitFor({ timeout: 10_000 });
    expect(await top.textContent()).toMatch(/^[0-9]$/);
    const probs = await page.locator('.prob .p').allTextContents();
    expect(probs).toHaveLength(10);
    const total = probs.reduce((s, t) => s + Number.parseFloat(t), 0);
    expect(Math.abs(total - 100)).toBeLessThan(1); // ten rounded percentages of a softmax

    // LeNet-5: conv1 has 6 feature maps of 28×28, conv2 16 of 10×10; each drawn, none blank.
    for (const [layer, count] of [['conv1', 6], ['conv2', 16]] as const) {
      const maps = page.locator(`.maps .layer[data-layer="${layer}"] canvas`);
      expect(await maps.count()).toBe(count);
      const filters = page.locator(`.filters-box .layer[data-layer="${layer}"] .filter`);
      expect(await filters.count()).toBe(count);
    }
    const spread = await page.locator('.maps .layer[data-layer="conv1"] canvas').first().evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let lo = 255;
      let hi = 0;
      for (let i = 0; i < d.length; i += 4) {
        lo = Math.min(lo, d[i]);
        hi = Math.max(hi, d[i]);
      }
      return hi - lo;
    });
    expect(spread).toBeGreaterThan(100);
    await shot(page, 'playground');

    // An uploaded photo-like image, dark ink on light paper: inverted and centred like MNIST.
    const png = await page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 160;
      c.height = 200;
      const g = c.getContext('2d')!;
      g.fillStyle = '#f1ede4';
      g.fillRect(0, 0, 160, 200);
      g.fillStyle = '#222';
      g.fillRect(20, 40, 24, 130); // a "1", off-centre on purpose
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
            return [at(14, 14), at(1, 1), at(26, 26)];
          }),
        { timeout: 10_000 },
      )
      .toEqual([255, 0, 0]); // ink (bright) in the centre of the field, background black at the corners

    // On a phone: a touch on the pad draws (a dot is enough for a prediction).
    const phone = await context.newPage();
    try {
      await phone.setViewportSize(PHONE);
      await phone.goto(page.url());
      await expect.poll(() => phone.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 20_000 }).toContain(tinyId);
      const box = (await phone.locator('canvas.pad').boundingBox())!;
      await phone.touchscreen.tap(box.x + box.width / 2, box.y + box.height / 2);
      await phone.locator('#pg-top').waitFor({ timeout: 10_000 });
      expect(await phone.locator('.maps .layer[data-layer="conv1"] canvas').count()).toBe(6);
      await shot(phone, 'playground');
    } finally {
      await phone.close();
    }
  }, 60_000);

  it('trains a U-Net on mnist-segmentation, shows its mIoU, and overlays its predicted mask on a drawing', async () => {
    const res = await page.request.post(`${base}/api/jobs`, {
      data: { name: 'e2e-seg', model: 'unet', dataset: 'mnist-segmentation', trainSamples: 64, testSamples: 32, steps: 6, batchSize: 8, shards: 2, evalEvery: 3, evalShards: 2 },
    });
    expect(res.status(), await res.text()).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await page.goto(`${base}/jobs/${encodeURIComponent(id)}`);
    await page.locator('h1 + .badge.succeeded').waitFor({ timeout: 150_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs()}`);
    });
    // The task's metrics, from the engine's evaluations: the chart, the stats, the best one.
    const card = page.locator('.metric-card[data-task="segmentation"]');
    await card.locator('.uplot canvas').first().waitFor({ timeout: 10_000 });
    expect(await card.locator('figcaption').textContent()).toMatch(/^Segmentation: mIoU/);
    await expect.poll(() => page.locator('.stats .m-mIoU').textContent(), { timeout: 10_000 }).toMatch(/^\d+\.\d %$/);
    expect(await page.locator('.stats .m-pixelAccuracy').textContent()).toMatch(/^\d+\.\d %$/);
    expect(await page.locator('.stats .best').textContent()).toMatch(/^\d+\.\d % · step [36]$/);
    await shotsAtBothWidths('job-segmentation', (p) => p.locator('.metric-card .uplot canvas').first().waitFor());
    await page.goto(`${base}/`);
    expect(await page.locator(`a.job-row[data-job="${id}"] .metric .k`).textContent()).toMatch(/^(test|best) mIoU$/);

    // The playground: a 96×96 pad (3× on screen), two digits, the mask over them.
    await page.goto(`${base}/playground?job=${encodeURIComponent(id)}`);
    await expect.poll(() => page.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 20_000 }).toMatch(new RegExp(`^${id}/step-\\d{8}\\.ckpt$`));
    expect(await page.locator('[data-loaded]').getAttribute('data-task')).toBe('segmentation');
    expect(await page.locator('canvas.pad').evaluate((c: HTMLCanvasElement) => c.width)).toBe(288);
    const pad = (await page.locator('canvas.pad').boundingBox())!;
    const at = (fx: number, fy: number): [number, number] => [pad.x + pad.width * fx, pad.y + pad.height * fy];
    for (const stroke of [
      [at(0.25, 0.2), at(0.25, 0.45)],
      [at(0.55, 0.55), at(0.8, 0.55), at(0.65, 0.85)],
    ]) {
      await page.mouse.move(...stroke[0]);
      await page.mouse.down();
      for (const p of stroke.slice(1)) await page.mouse.move(...p, { steps: 8 });
      await page.mouse.up();
    }
    const mask = page.locator('canvas.overlay.mask');
    await expect.poll(() => mask.getAttribute('data-classes'), { timeout: 10_000 }).toMatch(/^\d+(,\d+)*$/);
    expect(await mask.evaluate((c: HTMLCanvasElement) => [c.width, c.height])).toEqual([96, 96]);
    expect(await page.locator('.legend .legend-row').count()).toBe(11);
    // The model's input is the pad itself, downscaled: the strokes stay where they were drawn.
    const ink = await page.locator('.seen-img canvas').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const at = (x: number, y: number): number => d[(y * c.width + x) * 4];
      return [c.width, at(24, 30), at(80, 10)];
    });
    expect(ink).toEqual([96, 255, 0]);
    await shotsAtBothWidths('playground-segmentation', async (p) => {
      await expect.poll(() => p.locator('[data-loaded]').getAttribute('data-loaded'), { timeout: 20_000 }).toContain(id);
    });
  }, 240_000);
});
