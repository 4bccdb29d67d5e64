// Playground: a trained checkpoint run in the browser by @stride/cnn. Draw a digit or upload an
// image; the page preprocesses it like MNIST, predicts, and shows every conv layer's feature
// maps and learned filters.
import { fromData, noGrad, softmax, type Model, type Tensor } from '@stride/cnn';
import { getBytes, getJson } from '../ui/api.ts';
import { readCheckpoint, type LoadedCheckpoint } from '../ui/checkpoint.ts';
import { h, progressBar, replace, setProgress } from '../ui/dom.ts';
import { bytes, pct } from '../ui/format.ts';
import { jobsStore } from '../ui/store.ts';
import type { Checkpoint, Job } from '../ui/types.ts';
import { featureMaps, filters, planeCanvas } from '../ui/viz.ts';
import { normalize, preprocessDigit } from '../preprocess.ts';

const PAD = 280;
const PEN = 22;

/** Conv layers of a model with their weights, in model order. */
function convLayers(model: Model): { name: string; weight: { shape: readonly number[]; data: Float32Array } }[] {
  return model.nodes
    .filter((n) => n.type === 'conv2d')
    .map((n) => ({ name: n.name, weight: model.params.find((p) => p.name === `${n.name}.weight`)! }))
    .filter((l) => l.weight !== undefined);
}

export function playgroundPage(root: HTMLElement, _params: Record<string, string>, query: URLSearchParams): () => void {
  const cleanups: (() => void)[] = [];
  const banner = h('div');
  const jobSelect = h('select', { class: 'input', id: 'pg-job', 'aria-label': 'job' });
  const ckptSelect = h('select', { class: 'input', id: 'pg-checkpoint', 'aria-label': 'checkpoint' });
  const modelInfo = h('p', { class: 'muted', style: 'margin:10px 0 0;font-size:0.84rem' }, 'Pick a job and one of its checkpoints.');

  const pad = h('canvas', { class: 'pad', width: PAD, height: PAD, 'aria-label': 'drawing pad' });
  const ctx = pad.getContext('2d', { willReadFrequently: true })!;
  const seen = h('div', { class: 'seen-img' });
  const upload = h('input', { type: 'file', accept: 'image/*', hidden: true, id: 'pg-upload' });
  const prediction = h('div', { class: 'prediction-box' }, h('p', { class: 'muted' }, 'Draw a digit in the black square.'));
  const mapsBox = h('div', { class: 'maps' });
  const filtersBox = h('div', { class: 'filters-box' });

  replace(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Playground'), h('div', { class: 'sub' }, 'A trained checkpoint, run in this browser by the same CNN library the workers train with.'))),
    banner,
    h(
      'div',
      { class: 'play-layout' },
      h(
        'div',
        null,
        h('div', { class: 'card' }, h('div', { class: 'pickers' }, h('div', { class: 'field' }, h('label', { for: 'pg-job' }, 'Job'), jobSelect), h('div', { class: 'field' }, h('label', { for: 'pg-checkpoint' }, 'Checkpoint'), ckptSelect)), modelInfo),
        h(
          'div',
          { class: 'card pad-wrap section' },
          pad,
          h(
            'div',
            { class: 'btn-row', style: 'justify-content:center' },
            h('button', { class: 'btn', id: 'pg-clear', onclick: () => clearPad() }, 'Clear'),
            h('button', { class: 'btn', onclick: () => upload.click() }, 'Upload image…'),
            upload,
          ),
          h('div', { class: 'seen' }, seen, h('span', null, 'What the model sees: the ink centred by mass and scaled to 20 px in a 28×28 field, as MNIST was made.')),
        ),
      ),
      h('div', null, h('div', { class: 'card' }, h('h2', null, 'Prediction'), prediction), h('div', { class: 'card section' }, h('h2', null, 'Feature maps'), mapsBox), h('div', { class: 'card section' }, h('h2', null, 'Learned filters'), filtersBox)),
    ),
  );

  // ---- the model ----
  let loaded: LoadedCheckpoint | undefined;
  let loadSeq = 0;

  const loadCheckpoint = async (jobId: string, name: string): Promise<void> => {
    const seq = ++loadSeq;
    loaded = undefined;
    modelInfo.textContent = `Loading ${name}…`;
    replace(banner);
    try {
      const path = `/api/jobs/${encodeURIComponent(jobId)}/checkpoints/${encodeURIComponent(name)}`;
      const file = await getBytes(path);
      const ckpt = await readCheckpoint(file, name);
      if (seq !== loadSeq) return;
      loaded = ckpt;
      const m = ckpt.meta;
      const best = m.evals?.length ? m.evals[m.evals.length - 1] : undefined;
      modelInfo.textContent = `${m.modelSpec.name ?? 'model'} · step ${m.step}${m.totalSteps ? ` / ${m.totalSteps}` : ''} · ${ckpt.model.paramCount().toLocaleString('en-US')} parameters · ${bytes(ckpt.size)}${best ? ` · test accuracy ${pct(best.testAccuracy)}` : ''}`;
      modelInfo.dataset.loaded = `${jobId}/${name}`;
      drawFilters(ckpt.model);
      predict();
    } catch (err) {
      if (seq !== loadSeq) return;
      modelInfo.textContent = 'No model loaded.';
      replace(banner, h('div', { class: 'banner error' }, (err as Error).message));
    }
  };

  const drawFilters = (model: Model): void => {
    const layers = convLayers(model);
    if (layers.length === 0) {
      replace(filtersBox, h('p', { class: 'muted' }, 'This model has no convolution layers.'));
      return;
    }
    replace(
      filtersBox,
      layers.map((l) => {
        const [o, i, kh, kw] = l.weight.shape;
        return h('div', { class: 'layer', 'data-layer': l.name }, h('h3', null, `${l.name} `, h('span', { class: 'muted' }, `${o} filters of ${i}×${kh}×${kw}`)), filters(l.weight));
      }),
    );
  };

  // ---- prediction ----
  const predict = (): void => {
    if (!loaded) return;
    const { model, meta } = loaded;
    const [c, hh, w] = model.inputShape;
    const img = ctx.getImageData(0, 0, PAD, PAD);
    const digit = preprocessDigit(img, { size: hh, box: Math.round((hh * 20) / 28) });
    if (!digit) {
      replace(seen);
      replace(prediction, h('p', { class: 'muted' }, 'Draw a digit in the black square.'));
      replace(mapsBox, h('p', { class: 'muted' }, 'Feature maps appear once there is something to look at.'));
      return;
    }
    if (w !== hh) {
      replace(banner, h('div', { class: 'banner error' }, `The playground draws square inputs; this model expects ${c}×${hh}×${w}.`));
      return;
    }
    replace(seen, planeCanvas(digit.pixels, 0, hh, hh, 'gray', 0, 1, 56));
    const x = new Float32Array(c * hh * w);
    for (let ch = 0; ch < c; ch++) x.set(normalize(digit.pixels, meta.normalization.mean[ch] ?? meta.normalization.mean[0], meta.normalization.std[ch] ?? meta.normalization.std[0]), ch * hh * w);
    const t0 = performance.now();
    const { probs, activations } = noGrad(() => {
      const { output, activations } = model.forwardWithActivations(fromData(x, [1, c, hh, w]));
      return { probs: softmax(output, 1).data, activations };
    });
    const ms = performance.now() - t0;
    drawPrediction(probs, meta.classNames, ms);
    drawMaps(model, activations);
  };

  const bars: HTMLElement[] = [];
  const drawPrediction = (probs: Float32Array, classNames: readonly string[], ms: number): void => {
    let top = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[top]) top = i;
    const name = (i: number): string => classNames?.[i] ?? String(i);
    if (bars.length !== probs.length || !prediction.querySelector('.probs')) {
      bars.length = 0;
      const rows = Array.from(probs, (_, i) => {
        const bar = progressBar(0);
        bars.push(bar);
        return h('div', { class: 'prob', 'data-class': i }, h('span', { class: 'label' }, name(i)), bar, h('span', { class: 'p' }));
      });
      replace(prediction, h('div', { class: 'prediction' }, h('span', { class: 'digit', id: 'pg-top' }), h('span', { class: 'muted conf' })), h('div', { class: 'probs' }, rows));
    }
    prediction.querySelector('#pg-top')!.textContent = name(top);
    prediction.querySelector('.conf')!.textContent = `${pct(probs[top])} confident · ${ms.toFixed(1)} ms in this browser`;
    prediction.querySelectorAll<HTMLElement>('.prob').forEach((row, i) => {
      row.classList.toggle('top', i === top);
      setProgress(bars[i], probs[i]);
      row.querySelector('.p')!.textContent = pct(probs[i]);
    });
  };

  const drawMaps = (model: Model, activations: Map<string, Tensor>): void => {
    const layers = convLayers(model);
    if (layers.length === 0) {
      replace(mapsBox, h('p', { class: 'muted' }, 'This model has no convolution layers.'));
      return;
    }
    replace(
      mapsBox,
      layers.map((l) => {
        const t = activations.get(l.name)!;
        const [, ch, hh, w] = t.shape;
        return h('div', { class: 'layer', 'data-layer': l.name }, h('h3', null, `${l.name} `, h('span', { class: 'muted' }, `${ch} maps of ${hh}×${w}`)), featureMaps(t));
      }),
    );
  };

  // ---- the drawing pad (pointer events: mouse, pen and touch alike) ----
  const clearPad = (): void => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, PAD, PAD);
    predict();
  };
  let drawing = false;
  let last: [number, number] | undefined;
  let frame = 0;
  const schedulePredict = (): void => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      predict();
    });
  };
  const point = (e: PointerEvent): [number, number] => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * PAD) / r.width, ((e.clientY - r.top) * PAD) / r.height];
  };
  const stroke = (to: [number, number]): void => {
    ctx.strokeStyle = '#fff';
    ctx.fillStyle = '#fff';
    ctx.lineWidth = PEN;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    if (last) {
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(to[0], to[1]);
      ctx.stroke();
    } else {
      ctx.arc(to[0], to[1], PEN / 2, 0, Math.PI * 2);
      ctx.fill();
    }
    last = to;
  };
  pad.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    drawing = true;
    last = undefined;
    stroke(point(e));
    schedulePredict();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    for (const ev of e.getCoalescedEvents?.() ?? [e]) stroke(point(ev));
    schedulePredict();
  });
  const end = (): void => {
    if (!drawing) return;
    drawing = false;
    last = undefined;
    schedulePredict();
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  cleanups.push(() => cancelAnimationFrame(frame));

  upload.addEventListener('change', () => {
    const file = upload.files?.[0];
    upload.value = '';
    if (!file) return;
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      URL.revokeObjectURL(url);
      // Fit the image in the pad; the margins take the colour of its corner so the
      // preprocessing still reads the image's own background.
      const probe = h('canvas', { width: 1, height: 1 }).getContext('2d')!;
      probe.drawImage(img, 0, 0, 1, 1, 0, 0, 1, 1);
      const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
      ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.fillRect(0, 0, PAD, PAD);
      const k = Math.min(PAD / img.naturalWidth, PAD / img.naturalHeight);
      const dw = img.naturalWidth * k;
      const dh = img.naturalHeight * k;
      ctx.drawImage(img, (PAD - dw) / 2, (PAD - dh) / 2, dw, dh);
      predict();
    };
    img.onerror = () => {
      URL.revokeObjectURL(url);
      replace(banner, h('div', { class: 'banner error' }, `${file.name}: not an image this browser can read`));
    };
    img.src = url;
  });

  // ---- pickers ----
  const usable = (j: Job): boolean => j.state.status !== 'queued';
  let checkpointsOf = '';
  const fillCheckpoints = async (jobId: string, wanted?: string): Promise<void> => {
    checkpointsOf = jobId;
    replace(ckptSelect, h('option', { value: '' }, 'loading…'));
    try {
      const { checkpoints } = await getJson<{ checkpoints: Checkpoint[] }>(`/api/jobs/${encodeURIComponent(jobId)}/checkpoints`);
      if (checkpointsOf !== jobId) return;
      const sorted = [...checkpoints].sort((a, b) => b.step - a.step);
      if (sorted.length === 0) {
        replace(ckptSelect, h('option', { value: '' }, 'no checkpoint yet'));
        modelInfo.textContent = 'This job has written no checkpoint yet.';
        return;
      }
      replace(ckptSelect, sorted.map((c) => h('option', { value: c.name }, `step ${c.step}`)));
      const pick = sorted.find((c) => c.name === wanted) ?? sorted[0];
      ckptSelect.value = pick.name;
      await loadCheckpoint(jobId, pick.name);
    } catch (err) {
      replace(ckptSelect, h('option', { value: '' }, '—'));
      replace(banner, h('div', { class: 'banner error' }, (err as Error).message));
    }
  };
  const fillJobs = (): void => {
    const jobs = jobsStore.list().filter(usable);
    if (jobs.length === 0) {
      replace(jobSelect, h('option', { value: '' }, jobsStore.loaded ? 'no job yet' : 'loading…'));
      return;
    }
    const current = jobSelect.value;
    replace(jobSelect, jobs.map((j) => h('option', { value: j.id }, `${j.name} · ${j.state.status}`)));
    const wanted = query.get('job');
    const pick = jobs.find((j) => j.id === (current || wanted)) ?? jobs.find((j) => j.state.status === 'succeeded') ?? jobs[0];
    jobSelect.value = pick.id;
    if (checkpointsOf !== pick.id) void fillCheckpoints(pick.id, pick.id === wanted ? (query.get('checkpoint') ?? undefined) : undefined);
  };
  jobSelect.addEventListener('change', () => void fillCheckpoints(jobSelect.value));
  ckptSelect.addEventListener('change', () => {
    if (ckptSelect.value) void loadCheckpoint(jobSelect.value, ckptSelect.value);
  });
  let known = '';
  cleanups.push(
    jobsStore.subscribe(() => {
      // Only a change in the set of usable jobs refills the picker (not every step event).
      const ids = jobsStore
        .list()
        .filter(usable)
        .map((j) => j.id)
        .join();
      if (ids !== known) {
        known = ids;
        fillJobs();
      }
    }),
  );
  void jobsStore.refresh();
  clearPad();
  fillJobs();

  return () => cleanups.forEach((fn) => fn());
}
