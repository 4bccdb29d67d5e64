// Submit form: the same rules as the engine's `normalizeJobSpec`, checked as the user types, and
// the API's 400 messages shown next to the field they name.
import type { JobSpec, TaskName } from '@stride/protocol';
import { ApiError, getJson, postJson } from '../ui/api.ts';
import { h, replace } from '../ui/dom.ts';
import { go } from '../ui/nav.ts';
import { jobsStore } from '../ui/store.ts';
import { modelsForTask, suggestedModel, taskOfDataset } from '../ui/tasks.ts';
import type { ApiConfig, Job } from '../ui/types.ts';

/** One line on each zoo model, for the hint under the model field. */
const MODEL_NOTES: Readonly<Record<string, string>> = {
  lenet5: 'LeNet-5: two conv + pool stages, three fully connected layers.',
  resnet: 'ResNet: residual blocks with batch norm (ResNet-8).',
  resnet8: 'ResNet-8: residual blocks with batch norm.',
  resnet14: 'ResNet-14: residual blocks with batch norm.',
  resnet20: 'ResNet-20: residual blocks with batch norm.',
  densenet: 'DenseNet: dense blocks (concatenation) and transition layers.',
  inception: 'Inception: parallel 1×1, 3×3, 5×5 and pooling branches.',
  localizer: 'Localizer: a conv backbone with one head for the class and one box.',
  yolo: 'YOLO-style single-shot grid detector: objectness, box and class per cell.',
  unet: 'U-Net: encoder–decoder with skip connections, a class per pixel.',
};

/** What a job on a dataset of each task learns and reports. */
const TASK_NOTES: Readonly<Record<TaskName, string>> = {
  classification: 'Classification: one class per image; test accuracy.',
  localization: 'Localization: the class and the box of the one digit; localization accuracy (class right, IoU ≥ 0.5) and mean IoU.',
  detection: 'Detection: every digit’s class and box; mAP@0.5.',
  segmentation: 'Segmentation: a class per pixel; mIoU and pixel accuracy.',
};

/** A dataset entry of the API's table as the form uses it. */
export interface DatasetChoice {
  name: string;
  label: string;
  task: TaskName;
}

/** The API's dataset table as choices: the name, a label saying the task and input size, the task. */
export function datasetChoices(datasets: ApiConfig['datasets']): DatasetChoice[] {
  return datasets.map((d) => {
    if (typeof d === 'string') return { name: d, label: d, task: taskOfDataset(d) };
    const task = taskOfDataset(d.name, d.task);
    const size = Array.isArray(d.input) && d.input.length === 3 ? ` (${d.input[1]}×${d.input[2]})` : '';
    return { name: d.name, label: `${d.name}${size}`, task };
  });
}

/**
 * The model options for a dataset's task: the zoo models that suit it (the suggested first) and,
 * apart, the others. `current` stays selected when it suits; otherwise the suggested model is.
 */
export function modelChoices(task: TaskName, zoo: readonly string[], current: string): { suited: string[]; others: string[]; selected: string } {
  const suited = modelsForTask(task, zoo);
  const others = zoo.filter((m) => !suited.includes(m));
  const selected = suited.includes(current) ? current : (suggestedModel(task, zoo) ?? current);
  return { suited, others, selected };
}

type FieldName = 'name' | 'model' | 'dataset' | 'length' | 'batchSize' | 'shards' | 'optimizer' | 'lr' | 'seed' | 'numerics';

interface Field {
  wrap: HTMLElement;
  control: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

/** The values of the form, as typed. */
interface FormValues {
  name: string;
  model: string;
  dataset: string;
  length: string;
  unit: 'epochs' | 'steps';
  batchSize: string;
  shards: string;
  optimizer: string;
  lr: string;
  seed: string;
  /** Kernel numerics: 'exact' (default, left out of the spec) or 'fma'. */
  numerics: string;
}

/** Limits of the engine's job spec (libs/engine/src/spec.ts). */
const LIMITS = { epochs: 10_000, steps: 100_000_000, batchSize: 65_536, seed: 0xffffffff, name: 200 };

/** A form field must parse as a whole number: `12`, not `12.5`, `1e3` or `12 steps`. */
function parseInteger(text: string): number | undefined {
  const t = text.trim();
  return /^[+-]?\d+$/.test(t) ? Number(t) : undefined;
}

/** The typed value as the engine's messages show values: numbers bare, other text quoted. */
const got = (text: string): string => {
  const t = text.trim();
  if (t === '') return 'nothing';
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) ? t : JSON.stringify(t);
};

/**
 * Checks the form like the engine checks a spec (same limits, same wording); returns the message
 * per field, or the spec to send when there is none.
 */
export function checkForm(v: FormValues): { errors: Partial<Record<FieldName, string>>; spec?: Record<string, unknown> } {
  const errors: Partial<Record<FieldName, string>> = {};
  const int = (field: FieldName, text: string, min: number, max: number): number | undefined => {
    const n = parseInteger(text);
    if (n === undefined || n < min || n > max) {
      errors[field] = `must be an integer in [${min}, ${max}], got ${got(text)}`;
      return undefined;
    }
    return n;
  };
  const name = v.name.trim();
  if (v.name.length > 0 && name.length === 0) errors.name = 'must not be blank (leave it empty for the default name)';
  else if (name.length > LIMITS.name) errors.name = `must be at most ${LIMITS.name} characters, got ${name.length}`;
  // Which models and datasets exist is the coordinator's to say (the lists come from it and may
  // be stale): an unknown one comes back as a 400 naming the field.
  if (!v.model) errors.model = 'choose a model';
  if (!v.dataset) errors.dataset = 'choose a dataset';
  const length = int('length', v.length, 1, v.unit === 'epochs' ? LIMITS.epochs : LIMITS.steps);
  const batchSize = int('batchSize', v.batchSize, 1, LIMITS.batchSize);
  const shards = int('shards', v.shards, 1, batchSize ?? LIMITS.batchSize);
  const seed = int('seed', v.seed, 0, LIMITS.seed);
  if (!['sgd', 'adam', 'adamw'].includes(v.optimizer)) errors.optimizer = `must be one of sgd, adam, adamw, got ${got(v.optimizer)}`;
  const lrText = v.lr.trim();
  const lr = lrText === '' ? NaN : Number(lrText);
  if (!Number.isFinite(lr) || lr <= 0) errors.lr = `must be a finite number > 0, got ${got(v.lr)}`;
  if (v.numerics !== 'exact' && v.numerics !== 'fma') errors.numerics = `must be 'exact' or 'fma', got ${got(v.numerics)}`;
  if (Object.keys(errors).length > 0) return { errors };
  return {
    errors,
    spec: {
      ...(name ? { name } : {}),
      model: v.model,
      dataset: v.dataset,
      [v.unit]: length,
      batchSize,
      shards,
      seed,
      optimizer: { type: v.optimizer, lr },
      ...(v.numerics === 'fma' ? { numerics: 'fma' } : {}),
    },
  };
}

/** Which form field a server error's `field` (a spec path such as `optimizer.lr`) belongs to. */
export function fieldOfPath(path: string | undefined): FieldName | undefined {
  if (!path) return undefined;
  if (path === 'epochs' || path === 'steps') return 'length';
  if (path === 'optimizer.lr') return 'lr';
  if (path === 'optimizer' || path.startsWith('optimizer.')) return 'optimizer';
  if (path === 'model' || path.startsWith('model.')) return 'model';
  const top = path.split(/[.[]/)[0];
  return (['name', 'dataset', 'batchSize', 'shards', 'seed', 'numerics'] as const).find((f) => f === top);
}


export function submitPage(root: HTMLElement): () => void {
  const banner = h('div');
  const fields = {} as Record<FieldName, Field>;
  const field = (name: FieldName, text: string, control: HTMLInputElement | HTMLSelectElement, hint?: string, extra?: HTMLElement): HTMLElement => {
    control.id = `f-${name}`;
    control.name = name;
    const error = h('div', { class: 'error', id: `e-${name}`, role: 'alert' });
    control.setAttribute('aria-describedby', `e-${name}`);
    const wrap = h('div', { class: 'field', 'data-field': name }, h('label', { for: control.id }, text), extra ? h('div', { class: 'btn-row', style: 'flex-wrap:nowrap' }, control, extra) : control, hint ? h('div', { class: 'hint' }, hint) : null, error);
    fields[name] = { wrap, control, error };
    return wrap;
  };
  const input = (attrs: Record<string, unknown>): HTMLInputElement => h('input', { autocomplete: 'off', ...attrs });
  const select = (options: [string, string][]): HTMLSelectElement => h('select', null, options.map(([v, l]) => h('option', { value: v }, l)));

  const unit = h('select', { name: 'unit', id: 'f-unit', 'aria-label': 'length unit', style: 'width:auto;min-width:104px;flex:none' }, h('option', { value: 'epochs' }, 'epochs'), h('option', { value: 'steps' }, 'steps'));
  const preview = h('pre', { class: 'mono', style: 'margin:0;white-space:pre-wrap;font-size:0.8rem;background:#f7f8fb;border-radius:8px;padding:12px;overflow-x:auto' });
  const submit = h('button', { class: 'btn primary', type: 'submit' }, 'Start training');
  const status = h('span', { class: 'muted' });

  const form = h(
    'form',
    { class: 'form', novalidate: true },
    field('name', 'Name', input({ placeholder: 'default: <model>-<dataset>' }), 'Optional, shown in the jobs list.'),
    field('dataset', 'Dataset', select([]), ' '),
    field('model', 'Model', select([]), ' '),
    field('length', 'Length', input({ inputmode: 'numeric' }), 'Whole epochs over the training set, or a number of steps.', unit),
    field('batchSize', 'Batch size', input({ inputmode: 'numeric' }), 'Images per step, over all shards (B).'),
    field('shards', 'Shards per step', input({ inputmode: 'numeric' }), 'The batch is cut into this many shard jobs (1 … B).'),
    field('optimizer', 'Optimizer', select([['adam', 'Adam'], ['adamw', 'AdamW'], ['sgd', 'SGD']])),
    field('lr', 'Learning rate', input({ inputmode: 'decimal' }), 'Peak rate of the one-cycle schedule.'),
    field('seed', 'Seed', input({ inputmode: 'numeric' }), 'Same spec and seed, same weights, bit for bit.'),
    field('numerics', 'Kernel numerics', select([['exact', 'exact'], ['fma', 'fma (fused multiply-add)']]), 'fma trains faster; its results differ from exact in the last bits, and every worker needs a CPU with FMA.'),
    h('div', { class: 'form-actions' }, submit, status),
  );

  replace(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Submit a training job'), h('div', { class: 'sub' }, 'The coordinator splits every step into shards; any connected worker computes them.'))),
    banner,
    h('div', { class: 'submit-layout' }, h('div', { class: 'card' }, form), h('div', { class: 'card summary' }, h('h2', null, 'Request'), h('p', { class: 'muted', style: 'margin-top:0;font-size:0.85rem' }, 'POST /api/jobs with this body:'), preview)),
  );

  const values = (): FormValues => ({
    name: fields.name.control.value,
    model: fields.model.control.value,
    dataset: fields.dataset.control.value,
    length: fields.length.control.value,
    unit: unit.value as 'epochs' | 'steps',
    batchSize: fields.batchSize.control.value,
    shards: fields.shards.control.value,
    optimizer: fields.optimizer.control.value,
    lr: fields.lr.control.value,
    seed: fields.seed.control.value,
    numerics: fields.numerics.control.value,
  });

  const setError = (name: FieldName, message: string | undefined): void => {
    const f = fields[name];
    f.error.textContent = message ?? '';
    f.wrap.classList.toggle('invalid', !!message);
    f.control.setAttribute('aria-invalid', message ? 'true' : 'false');
  };

  /** Field-level feedback for the fields the user has touched (all of them after a submit). */
  const touched = new Set<FieldName>();
  const validate = (): ReturnType<typeof checkForm> => {
    const result = checkForm(values());
    for (const name of Object.keys(fields) as FieldName[]) setError(name, touched.has(name) ? result.errors[name] : undefined);
    preview.textContent = result.spec ? JSON.stringify(result.spec, null, 2) : 'Fix the fields marked in red.';
    return result;
  };
  for (const [name, f] of Object.entries(fields) as [FieldName, Field][]) {
    f.control.addEventListener('input', () => {
      touched.add(name);
      validate();
    });
    f.control.addEventListener('change', () => {
      touched.add(name);
      validate();
    });
  }
  unit.addEventListener('change', () => {
    touched.add('length');
    validate();
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    for (const name of Object.keys(fields) as FieldName[]) touched.add(name);
    const { spec, errors } = validate();
    replace(banner);
    if (!spec) {
      const first = (Object.keys(fields) as FieldName[]).find((n) => errors[n]);
      if (first) fields[first].control.focus();
      return;
    }
    void send(spec);
  });

  /** Set when the user leaves the page: a late answer then does not navigate. */
  let left = false;
  const send = async (spec: Record<string, unknown>): Promise<void> => {
    submit.disabled = true;
    status.textContent = 'submitting…';
    try {
      const job = await postJson<Job>('/api/jobs', spec);
      jobsStore.upsert(job);
      if (!left) go(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      const target = err instanceof ApiError ? fieldOfPath(err.field) : undefined;
      if (err instanceof ApiError && target) {
        const prefix = `${err.field}: `;
        setError(target, err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message);
        fields[target].control.focus();
        replace(banner, h('div', { class: 'banner error' }, 'The coordinator refused the job: see the field marked in red.'));
      } else {
        replace(banner, h('div', { class: 'banner error' }, (err as Error).message));
      }
    } finally {
      submit.disabled = false;
      status.textContent = '';
    }
  };

  // The model list follows the dataset's task: the models made for it, the rest apart.
  let zoo: string[] = [];
  let choices: DatasetChoice[] = [];
  const modelHint = fields.model.wrap.querySelector<HTMLElement>('.hint')!;
  const datasetHint = fields.dataset.wrap.querySelector<HTMLElement>('.hint')!;
  const fillModels = (): void => {
    const ds = choices.find((c) => c.name === fields.dataset.control.value);
    const task = ds?.task ?? 'classification';
    const { suited, others, selected } = modelChoices(task, zoo, fields.model.control.value);
    const option = (m: string): HTMLOptionElement => h('option', { value: m }, m);
    replace(
      fields.model.control,
      suited.length ? h('optgroup', { label: `for ${task}` }, suited.map(option)) : null,
      others.length ? h('optgroup', { label: suited.length ? 'other models (made for other tasks)' : 'zoo models' }, others.map(option)) : null,
    );
    fields.model.control.value = selected;
    fields.model.wrap.dataset.task = task;
    datasetHint.textContent = TASK_NOTES[task];
    describeModel(task);
    validate();
  };
  const describeModel = (task: TaskName): void => {
    const m = fields.model.control.value;
    const suits = modelsForTask(task, zoo).includes(m);
    modelHint.textContent = `${MODEL_NOTES[m] ?? ''}${suits || !m ? '' : ` Not made for ${task}: the coordinator will likely refuse it.`}`.trim() || ' ';
  };
  fields.dataset.control.addEventListener('change', fillModels);
  fields.model.control.addEventListener('change', () => describeModel(choices.find((c) => c.name === fields.dataset.control.value)?.task ?? 'classification'));

  const fill = (cfg: ApiConfig | undefined): void => {
    const models = cfg?.models ?? [];
    zoo = [...models];
    choices = datasetChoices(cfg?.datasets ?? []);
    replace(fields.dataset.control, choices.map((d) => h('option', { value: d.name, 'data-task': d.task }, d.label)));
    const d: Partial<JobSpec> = cfg?.defaults ?? {};
    if (typeof d.dataset === 'string') fields.dataset.control.value = d.dataset;
    if (typeof d.model === 'string' && models.includes(d.model)) fields.model.control.value = d.model;
    fillModels();
    if (typeof d.model === 'string' && models.includes(d.model) && fields.model.control.querySelector(`option[value="${CSS.escape(d.model)}"]`)) fields.model.control.value = d.model;
    describeModel(choices.find((c) => c.name === fields.dataset.control.value)?.task ?? 'classification');
    if (d.steps !== undefined) {
      unit.value = 'steps';
      fields.length.control.value = String(d.steps);
    } else {
      fields.length.control.value = String(d.epochs ?? 1);
    }
    fields.batchSize.control.value = String(d.batchSize ?? 64);
    fields.shards.control.value = String(d.shards ?? 4);
    fields.seed.control.value = String(d.seed ?? 1);
    fields.optimizer.control.value = d.optimizer?.type ?? 'adam';
    fields.lr.control.value = String(d.optimizer?.lr ?? 0.003);
    validate();
  };

  void (async () => {
    let config: ApiConfig | undefined;
    try {
      config = await getJson<ApiConfig>('/api/config');
    } catch (err) {
      try {
        const { models } = await getJson<{ models: string[] }>('/api/zoo');
        config = { models, datasets: [], optimizers: [] };
      } catch {
        // The form stays usable for the fields it knows; the banner says why the lists are empty.
      }
      replace(banner, h('div', { class: 'banner error' }, `Could not load the form's choices: ${(err as Error).message}`));
    }
    fill(config);
  })();

  return () => {
    left = true;
  };
}
