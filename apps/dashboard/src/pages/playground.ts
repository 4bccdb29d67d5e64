// Playground: a trained checkpoint run in the browser by @stride/cnn. Draw or upload an image; the
// page turns it into the model's input, predicts, and shows every conv layer's feature maps and
// learned filters.
//
// Classification: a digit, preprocessed like MNIST (centred by mass, scaled to 20 px in 28), and
// the class probabilities. Localization and detection: a pad at the model's input size (64×64,
// 96×96, scaled up on screen) where one or several digits stay where they are drawn; the predicted
// boxes are drawn over it with their class and score (class-aware NMS for detection, a score
// threshold slider). Segmentation: the predicted mask as a coloured overlay, a colour per class,
// with a legend and an opacity slider.
import { decodeLocalization, decodeYolo, fromData, noGrad, softmax, type Detection, type Model, type Tensor } from '@stride/cnn';
import type { TaskName } from '@stride/protocol';
import { getBytes, getJson } from '../ui/api.ts';
import { readCheckpoint, type LoadedCheckpoint } from '../ui/checkpoint.ts';
import { h, progressBar, replace, setProgress } from '../ui/dom.ts';
import { bytes, pct } from '../ui/format.ts';
import { jobsStore } from '../ui/store.ts';
import { formatMetric, metricInfo, normalizeBest, primaryMetric } from '../ui/tasks.ts';
import type { Checkpoint, Job } from '../ui/types.ts';
import {
  aboveScore,
  argmaxMask,
  boxToRect,
  classColor,
  classCounts,
  cssColor,
  drawDetections,
  maskToRgba,
  padGeometry,
  padToInput,
  segmentationClassNames,
  segmentationColor,
  taskOfCheckpoint,
} from '../ui/vision.ts';
import { featureMaps, filters, planeCanvas } from '../ui/viz.ts';
import { normalize, preprocessDigit } from '../preprocess.ts';

/** The classification pad: 280 px, a 22-px pen (a digit drawn across it becomes MNIST's 20 px in 28). */
const DIGIT_PAD = 280;
const DIGIT_PEN = 22;
/** Vision models with more conv layers than this show their maps and filters folded, drawn when opened. */
const OPEN_LAYERS = 2;
/** While drawing, predict at most this often when one prediction takes long (ms). */
const SLOW_PREDICT_MS = 40;
const SLOW_INTERVAL_MS = 200;

/** Conv layers of a model with their weights, in model order. */
function convLayers(model: Model): { name: string; weight: { shape: readonly number[]; data: Float32Array } }[] {
  return model.nodes
    .filter((n) => n.type === 'conv2d')
    .map((n) => ({ name: n.name, weight: model.params.find((p) => p.name === `${n.name}.weight`)! }))
    .filter((l) => l.weight !== undefined);
}

/** One layer's section; folded ones render their content when first opened. */
function layerSection(name: string, subtitle: string, render: () => HTMLElement, folded: boolean): HTMLElement {
  const title = h('h3', null, `${name} `, h('span', { class: 'muted' }, subtitle));
  if (!folded) return h('div', { class: 'layer', 'data-layer': name }, title, render());
  const details = h('details', { class: 'layer', 'data-layer': name }, h('summary', null, title));
  details.addEventListener('toggle', () => {
    if (details.open && details.childElementCount === 1) details.append(render());
  });
  return details;
}

/** A labelled range input showing its value. */
function slider(id: string, label: string, min: number, max: number, step: number, value: number, show: (v: number) => string, onInput: (v: number) => void): { el: HTMLElement; input: HTMLInputElement } {
  const out = h('output', { for: id }, show(value));
  const input = h('input', { type: 'range', id, min, max, step, value: String(value) });
  input.addEventListener('input', () => {
    const v = Number(input.value);
    out.textContent = show(v);
    onInput(v);
  });
  return { el: h('div', { class: 'slider' }, h('label', { for: id }, label), input, out), input };
}

const TASK_HINT: Record<TaskName, string> = {
  classification: 'Draw a digit in the black square.',
  localization: 'Draw one digit anywhere in the black square, a quarter to half of its height, as in the training images.',
  detection: 'Draw one to four digits anywhere in the black square, each about a quarter of its height, as in the training images.',
  segmentation: 'Draw one to four digits anywhere in the black square, each about a quarter of its height, as in the training images.',
};

export function playgroundPage(root: HTMLElement, _params: Record<string, string>, query: URLSearchParams): () => void {
  const cleanups: (() => void)[] = [];
  const banner = h('div');
  const jobSelect = h('select', { class: 'input', id: 'pg-job', 'aria-label': 'job' });
  const ckptSelect = h('select', { class: 'input', id: 'pg-checkpoint', 'aria-label': 'checkpoint' });
  const modelInfo = h('p', { class: 'muted', style: 'margin:10px 0 0;font-size:0.84rem' }, 'Pick a job and one of its checkpoints.');

  const pad = h('canvas', { class: 'pad', width: DIGIT_PAD, height: DIGIT_PAD, 'aria-label': 'drawing pad' });
  const ctx = pad.getContext('2d', { willReadFrequently: true })!;
  // Overlays over the pad: the segmentation mask at the input's resolution, the boxes at the screen's.
  const maskLayer = h('canvas', { class: 'overlay mask', hidden: true, 'aria-hidden': 'true' });
  const boxLayer = h('canvas', { class: 'overlay boxes', hidden: true, 'aria-hidden': 'true' });
  const padStack = h('div', { class: 'pad-stack' }, pad, maskLayer, boxLayer);
  const seen = h('div', { class: 'seen-img' });
  const seenNote = h('span');
  const upload = h('input', { type: 'file', accept: 'image/*', hidden: true, id: 'pg-upload' });
  const controls = h('div', { class: 'vision-controls', hidden: true });
  const prediction = h('div', { class: 'prediction-box' }, h('p', { class: 'muted' }, TASK_HINT.classification));
  const mapsBox = h('div', { class: 'maps' });
  const filtersBox = h('div', { class: 'filters-box' });
  const layout = h('div', { class: 'play-layout' });

  replace(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Playground'), h('div', { class: 'sub' }, 'A trained checkpoint, run in this browser by the same CNN library the workers train with.'))),
    banner,
    layout,
  );
  replace(
    layout,
    h(
      'div',
      null,
      h('div', { class: 'card' }, h('div', { class: 'pickers' }, h('div', { class: 'field' }, h('label', { for: 'pg-job' }, 'Job'), jobSelect), h('div', { class: 'field' }, h('label', { for: 'pg-checkpoint' }, 'Checkpoint'), ckptSelect)), modelInfo),
      h(
        'div',
        { class: 'card pad-wrap section' },
        padStack,
        h(
          'div',
          { class: 'btn-row', style: 'justify-content:center' },
          h('button', { class: 'btn', id: 'pg-clear', onclick: () => clearPad() }, 'Clear'),
          h('button', { class: 'btn', onclick: () => upload.click() }, 'Upload image…'),
          upload,
        ),
        controls,
        h('div', { class: 'seen' }, seen, seenNote),
      ),
    ),
    h('div', null, h('div', { class: 'card' }, h('h2', null, 'Prediction'), prediction), h('div', { class: 'card section' }, h('h2', null, 'Feature maps'), mapsBox), h('div', { class: 'card section' }, h('h2', null, 'Learned filters'), filtersBox)),
  );

  // ---- the mode: classification, or a vision task on a pad of the model's input size ----
  let loaded: LoadedCheckpoint | undefined;
  let loadSeq = 0;
  let task: TaskName = 'classification';
  let pen = DIGIT_PEN;
  /** Vision: the model's input side (the pad is `side · scale` px). */
  let side = 28;
  const view = { score: 0.3, iou: 0.5, opacity: 0.6 };

  const setMode = (t: TaskName, inputSide: number): void => {
    const vision = t !== 'classification';
    const px = vision ? padGeometry(inputSide).px : DIGIT_PAD;
    const changed = t !== task || px !== pad.width;
    task = t;
    side = inputSide;
    pen = vision ? padGeometry(inputSide).pen : DIGIT_PEN;
    layout.classList.toggle('vision', vision);
    layout.dataset.task = t;
    maskLayer.hidden = t !== 'segmentation';
    boxLayer.hidden = !(t === 'localization' || t === 'detection');
    seenNote.textContent = vision
      ? `What the model sees: the pad area-averaged to ${inputSide}×${inputSide}, the digits where they were drawn.`
      : 'What the model sees: the ink centred by mass and scaled to 20 px in a 28×28 field, as MNIST was made.';
    drawControls();
    if (px !== pad.width) {
      pad.width = px; // resets the drawing
      pad.height = px;
    }
    if (changed) {
      resetPrediction();
      clearPad();
    }
  };

  const drawControls = (): void => {
    const parts: HTMLElement[] = [];
    if (task === 'localization' || task === 'detection') {
      parts.push(slider('pg-score', 'Score threshold', 0, 0.95, 0.05, view.score, (v) => v.toFixed(2), (v) => {
          view.score = v;
          redraw();
        }).el);
    }
    if (task === 'detection') {
      parts.push(slider('pg-iou', 'NMS IoU threshold', 0.1, 0.9, 0.05, view.iou, (v) => v.toFixed(2), (v) => {
          view.iou = v;
          predict();
        }).el);
    }
    if (task === 'segmentation') {
      parts.push(slider('pg-opacity', 'Mask opacity', 0, 1, 0.05, view.opacity, (v) => `${Math.round(v * 100)}%`, (v) => {
          view.opacity = v;
          maskLayer.style.opacity = String(v);
        }).el);
      maskLayer.style.opacity = String(view.opacity);
    }
    replace(controls, parts);
    controls.hidden = parts.length === 0;
  };

  const resetPrediction = (): void => {
    bars.length = 0;
    last = undefined;
    replace(prediction, h('p', { class: 'muted' }, TASK_HINT[task]));
  };

  // ---- the model ----
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
      const t = taskOfCheckpoint(ckpt.meta);
      const [, hh, w] = ckpt.model.inputShape;
      if (t !== 'classification' && hh !== w) {
        modelInfo.textContent = 'No model loaded.';
        replace(banner, h('div', { class: 'banner error' }, `${name}: the playground draws square inputs; this model expects ${ckpt.model.inputShape.join('×')}.`));
        return;
      }
      loaded = ckpt;
      setMode(t, hh);
      const m = ckpt.meta;
      const metric = primaryMetric(t);
      const lastEval = m.evals?.length ? m.evals[m.evals.length - 1] : undefined;
      const best = normalizeBest(m.best);
      const score = lastEval?.[metric.key] !== undefined ? ` · test ${t === 'classification' ? 'accuracy' : metric.label} ${formatMetric(lastEval[metric.key])}` : '';
      const bestText = best && best.step !== m.step ? ` (best ${metricInfo(best.metric).label} ${formatMetric(best.value)} at step ${best.step})` : '';
      modelInfo.textContent = `${m.modelSpec.name ?? 'model'} · ${t} · step ${m.step}${m.totalSteps ? ` / ${m.totalSteps}` : ''} · ${ckpt.model.paramCount().toLocaleString('en-US')} parameters · ${bytes(ckpt.size)}${score}${bestText}`;
      modelInfo.dataset.loaded = `${jobId}/${name}`;
      modelInfo.dataset.task = t;
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
    const fold = task !== 'classification' && layers.length > OPEN_LAYERS;
    replace(
      filtersBox,
      fold ? h('p', { class: 'muted fold-note' }, `${layers.length} conv layers: open one to draw its filters.`) : null,
      layers.map((l, i) => {
        const [o, c, kh, kw] = l.weight.shape;
        return layerSection(l.name, `${o} filters of ${c}×${kh}×${kw}`, () => filters(l.weight), fold && i >= OPEN_LAYERS);
      }),
    );
  };

  // ---- prediction ----
  /** The model's input for the pad as it is, or null when the pad holds no ink. */
  const input = (model: Model, meta: LoadedCheckpoint['meta']): { x: Float32Array; pixels: Float32Array } | null => {
    const [c, hh, w] = model.inputShape;
    const img = ctx.getImageData(0, 0, pad.width, pad.height);
    const pixels = task === 'classification' ? (preprocessDigit(img, { size: hh, box: Math.round((hh * 20) / 28) })?.pixels ?? null) : padToInput(img, hh);
    if (!pixels) return null;
    const x = new Float32Array(c * hh * w);
    const { mean, std } = meta.normalization;
    for (let ch = 0; ch < c; ch++) x.set(normalize(pixels, mean[ch] ?? mean[0], std[ch] ?? std[0]), ch * hh * w);
    return { x, pixels };
  };

  /** The last prediction, kept so that the sliders redraw without running the model again. */
  let last: { output: Tensor; ms: number } | undefined;
  let lastPredictMs = 0;

  const predict = (): void => {
    if (!loaded) return;
    const { model, meta } = loaded;
    const [c, hh, w] = model.inputShape;
    if (task === 'classification' && w !== hh) {
      replace(banner, h('div', { class: 'banner error' }, `The playground draws square inputs; this model expects ${c}×${hh}×${w}.`));
      return;
    }
    const inp = input(model, meta);
    if (!inp) {
      replace(seen);
      resetPrediction();
      clearOverlays();
      replace(mapsBox, h('p', { class: 'muted' }, 'Feature maps appear once there is something to look at.'));
      return;
    }
    replace(seen, planeCanvas(inp.pixels, 0, hh, hh, 'gray', 0, 1, task === 'classification' ? 56 : 96));
    const t0 = performance.now();
    const { output, activations } = noGrad(() => model.forwardWithActivations(fromData(inp.x, [1, c, hh, w])));
    const ms = performance.now() - t0;
    lastPredictMs = ms;
    last = { output, ms };
    redraw();
    drawMaps(model, activations);
  };

  /** Draws the last prediction with the current sliders. */
  const redraw = (): void => {
    if (!loaded || !last) return;
    const { output, ms } = last;
    const names = loaded.meta.classNames;
    if (task === 'classification') {
      drawProbs(noGrad(() => softmax(output, 1).data), names, ms);
    } else if (task === 'localization') {
      drawLocalization(output, names, ms);
    } else if (task === 'detection') {
      drawDetection(output, names, ms);
    } else {
      drawSegmentation(output, names, ms);
    }
  };

  const bars: HTMLElement[] = [];
  /** The class probabilities as bars, the top class large; `extra` goes under the headline. */
  const drawProbs = (probs: Float32Array, classNames: readonly string[], ms: number, extra?: HTMLElement): void => {
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
      replace(prediction, h('div', { class: 'prediction' }, h('span', { class: 'digit', id: 'pg-top' }), h('span', { class: 'muted conf' })), h('div', { class: 'pred-extra' }), h('div', { class: 'probs' }, rows));
    }
    prediction.querySelector('#pg-top')!.textContent = name(top);
    prediction.querySelector('.conf')!.textContent = `${pct(probs[top])} confident · ${ms.toFixed(1)} ms in this browser`;
    replace(prediction.querySelector('.pred-extra')!, extra ?? null);
    prediction.querySelectorAll<HTMLElement>('.prob').forEach((row, i) => {
      row.classList.toggle('top', i === top);
      setProgress(bars[i], probs[i]);
      row.querySelector('.p')!.textContent = pct(probs[i]);
    });
  };

  // ---- vision overlays ----
  const clearOverlays = (): void => {
    boxLayer.getContext('2d')?.clearRect(0, 0, boxLayer.width, boxLayer.height);
    maskLayer.getContext('2d')?.clearRect(0, 0, maskLayer.width, maskLayer.height);
    delete boxLayer.dataset.count;
    delete maskLayer.dataset.classes;
  };

  /** Draws boxes on the overlay at the screen's resolution (crisp labels on a scaled-up pad). */
  const drawBoxes = (detections: Detection[]): void => {
    const cssSide = pad.getBoundingClientRect().width || pad.width;
    const size = Math.round(cssSide * Math.min(3, Math.max(1, window.devicePixelRatio || 1)));
    if (boxLayer.width !== size) {
      boxLayer.width = size;
      boxLayer.height = size;
    }
    drawDetections(boxLayer.getContext('2d')!, detections, size, loaded?.meta.classNames);
    boxLayer.dataset.count = String(detections.length);
  };

  const boxText = (d: Detection): string => {
    const r = boxToRect(d.box, side);
    return `x ${Math.round(r.x)}–${Math.round(r.x + r.w)}, y ${Math.round(r.y)}–${Math.round(r.y + r.h)} px of ${side}`;
  };

  const drawLocalization = (output: Tensor, names: readonly string[], ms: number): void => {
    const k = output.shape[1] - 4;
    const det = decodeLocalization(output)[0];
    const logits = fromData(output.data.slice(0, k), [1, k]);
    const probs = noGrad(() => softmax(logits, 1).data);
    const shown = det.score >= view.score ? [det] : [];
    drawBoxes(shown);
    const color = cssColor(classColor(det.classId));
    drawProbs(
      probs,
      names,
      ms,
      h(
        'p',
        { class: 'box-line', id: 'pg-box' },
        h('span', { class: 'swatch', style: `background:${color}` }),
        shown.length ? ` box ${boxText(det)}` : ` box hidden: score ${pct(det.score)} is under the threshold ${view.score.toFixed(2)}`,
      ),
    );
  };

  const drawDetection = (output: Tensor, names: readonly string[], ms: number): void => {
    // Decoded with score 0 (NMS at the slider's IoU), then filtered by the score slider.
    const all = decodeYolo(output, { scoreThreshold: 0, iouThreshold: view.iou, maxDetections: 100 })[0];
    const shown = aboveScore(all, view.score);
    drawBoxes(shown);
    const name = (i: number): string => names?.[i] ?? String(i);
    replace(
      prediction,
      h(
        'div',
        { class: 'prediction' },
        h('span', { class: 'digit', id: 'pg-count' }, String(shown.length)),
        h('span', { class: 'muted conf' }, `object${shown.length === 1 ? '' : 's'} with score ≥ ${view.score.toFixed(2)} · ${all.length} after NMS · ${ms.toFixed(1)} ms in this browser`),
      ),
      shown.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { class: 'data detections' },
              h('thead', null, h('tr', null, h('th', null, 'class'), h('th', { class: 'num' }, 'score'), h('th', null, 'box'))),
              h(
                'tbody',
                null,
                shown.map((d) =>
                  h(
                    'tr',
                    { 'data-class': d.classId },
                    h('td', null, h('span', { class: 'swatch', style: `background:${cssColor(classColor(d.classId))}` }), ` ${name(d.classId)}`),
                    h('td', { class: 'num' }, pct(d.score)),
                    h('td', { class: 'mono' }, boxText(d)),
                  ),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, all.length ? `Nothing scores ${view.score.toFixed(2)} or more: lower the threshold to see the best guesses (top ${pct(all[0].score)}).` : 'No detection.'),
    );
  };

  const drawSegmentation = (output: Tensor, names0: readonly string[], ms: number): void => {
    const [, k, hh, w] = output.shape;
    const names = segmentationClassNames(k, names0);
    const mask = argmaxMask(output.data, k, hh, w);
    const colorOf = (c: number): ReturnType<typeof segmentationColor> => segmentationColor(c, names);
    if (maskLayer.width !== w || maskLayer.height !== hh) {
      maskLayer.width = w;
      maskLayer.height = hh;
    }
    const g = maskLayer.getContext('2d')!;
    const img = g.createImageData(w, hh);
    img.data.set(maskToRgba(mask, colorOf));
    g.putImageData(img, 0, 0);
    const counts = classCounts(mask, k);
    const total = hh * w;
    const present = counts.map((n, c) => (n > 0 ? c : -1)).filter((c) => c >= 0);
    maskLayer.dataset.classes = present.join(',');
    // The headline: the classes covering at least 0.5% of the image, largest first.
    const major = present.filter((c) => colorOf(c) !== null && counts[c] >= total * 0.005).sort((a, b) => counts[b] - counts[a]);
    replace(
      prediction,
      h(
        'div',
        { class: 'prediction' },
        h('span', { class: 'digit classes', id: 'pg-classes' }, major.length ? major.map((c) => names[c]).join(' ') : '—'),
        h('span', { class: 'muted conf' }, `${major.length ? 'in the mask, by area' : 'background only'} · ${ms.toFixed(1)} ms in this browser`),
      ),
      h(
        'div',
        { class: 'legend' },
        names.map((n, c) => {
          const rgb = colorOf(c);
          return h(
            'div',
            { class: `legend-row${counts[c] ? '' : ' absent'}`, 'data-class': c },
            h('span', { class: `swatch${rgb ? '' : ' none'}`, style: rgb ? `background:${cssColor(rgb)}` : '' }),
            h('span', { class: 'label' }, n),
            h('span', { class: 'p' }, counts[c] ? pct(counts[c] / total) : '—'),
          );
        }),
      ),
    );
  };

  const drawMaps = (model: Model, activations: Map<string, Tensor>): void => {
    const layers = convLayers(model);
    if (layers.length === 0) {
      replace(mapsBox, h('p', { class: 'muted' }, 'This model has no convolution layers.'));
      return;
    }
    const fold = task !== 'classification' && layers.length > OPEN_LAYERS;
    // Folded sections keep their open state across predictions.
    const open = new Set([...mapsBox.querySelectorAll<HTMLDetailsElement>('details[open]')].map((d) => d.dataset.layer));
    replace(
      mapsBox,
      fold ? h('p', { class: 'muted fold-note' }, `${layers.length} conv layers: the first ${OPEN_LAYERS} drawn, open the others to draw them.`) : null,
      layers.map((l, i) => {
        const t = activations.get(l.name)!;
        const [, ch, hh, w] = t.shape;
        const section = layerSection(l.name, `${ch} maps of ${hh}×${w}`, () => featureMaps(t), fold && i >= OPEN_LAYERS);
        if (section instanceof HTMLDetailsElement && open.has(l.name)) section.open = true;
        return section;
      }),
    );
  };

  // ---- the drawing pad (pointer events: mouse, pen and touch alike) ----
  const clearPad = (): void => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
    predict();
  };
  let drawing = false;
  let lastPoint: [number, number] | undefined;
  let frame = 0;
  let lastScheduled = 0;
  const schedulePredict = (final = false): void => {
    // A slow model (big vision nets) predicts a few times a second while drawing, and at the end.
    if (!final && lastPredictMs > SLOW_PREDICT_MS && performance.now() - lastScheduled < SLOW_INTERVAL_MS) return;
    lastScheduled = performance.now();
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      predict();
    });
  };
  const point = (e: PointerEvent): [number, number] => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  const stroke = (to: [number, number]): void => {
    ctx.strokeStyle = '#fff';
    ctx.fillStyle = '#fff';
    ctx.lineWidth = pen;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    if (lastPoint) {
      ctx.moveTo(lastPoint[0], lastPoint[1]);
      ctx.lineTo(to[0], to[1]);
      ctx.stroke();
    } else {
      ctx.arc(to[0], to[1], pen / 2, 0, Math.PI * 2);
      ctx.fill();
    }
    lastPoint = to;
  };
  pad.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    drawing = true;
    lastPoint = undefined;
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
    lastPoint = undefined;
    schedulePredict(true);
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  cleanups.push(() => cancelAnimationFrame(frame));
  // The boxes are drawn at the pad's on-screen size: redraw when it changes.
  const resized = new ResizeObserver(() => {
    if (!boxLayer.hidden && last) redraw();
  });
  resized.observe(pad);
  cleanups.push(() => resized.disconnect());

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
      const size = pad.width;
      const probe = h('canvas', { width: 1, height: 1 }).getContext('2d')!;
      probe.drawImage(img, 0, 0, 1, 1, 0, 0, 1, 1);
      const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
      ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
      ctx.fillRect(0, 0, size, size);
      const k = Math.min(size / img.naturalWidth, size / img.naturalHeight);
      const dw = img.naturalWidth * k;
      const dh = img.naturalHeight * k;
      ctx.drawImage(img, (size - dw) / 2, (size - dh) / 2, dw, dh);
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
  setMode('classification', 28);
  clearPad();
  fillJobs();

  return () => cleanups.forEach((fn) => fn());
}
