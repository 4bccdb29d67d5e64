#!/usr/bin/env python3
"""The PyTorch side of `node --import tsx tools/torch/src/compare.ts`: trains a Stride job in PyTorch.

usage (from the repository root; Debian's python3-torch):
  /usr/bin/python3 tools/torch/train_like_stride.py train RUN_DIR [--threads N] [--init stride|torch] [--nudge] [--steps N]
  /usr/bin/python3 tools/torch/train_like_stride.py check CASE.json

RUN_DIR is written by compare.ts (tools/torch/src/export.ts): job.json (the normalised job spec, the
model spec, the step count, the normalisation), the dataset as raw little-endian arrays, every
epoch's sample order (Stride's permutations) and Stride's initial parameters. Training follows
libs/engine step for step: the same batches cut into the same shards, batch-norm statistics per
shard, gradient sum / batch length, Adam (torch.optim) at the one-cycle rate of the step, running
statistics the count-weighted mean of the shards' updates. `--init torch` draws the initial
parameters from torch's generator with the spec's init family instead of using Stride's values.
`--nudge` moves every initial parameter up by one float32 ulp: the run then differs from the plain
one only by rounding, which measures how far rounding alone carries two runs of this budget apart.

`train` prints progress to stderr and one JSON object to stdout: the final metric, the evaluations,
wall times. `check` runs the agreement cases of tools/torch/test/torch-mirror.test.ts.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stride_torch as st  # noqa: E402


def fail(message):
    print(f'train_like_stride: {message}', file=sys.stderr)
    sys.exit(2)


def read_array(path, dtype, count=None):
    if not os.path.exists(path):
        fail(f'{path}: missing (run compare.ts to export the data)')
    a = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder('<'))
    if count is not None and a.size != count:
        fail(f'{path}: expected {count} values, found {a.size}')
    return a


class Split:
    """One exported split: uint8 images, labels and the task's targets."""

    def __init__(self, data_dir, split, meta, task, shape):
        c, h, w = shape
        n = meta['count']
        p = lambda name: os.path.join(data_dir, f'{split}-{name}')  # noqa: E731
        self.count = n
        self.images = read_array(p('images.u8'), np.uint8, n * c * h * w).reshape(n, c, h, w)
        self.labels = read_array(p('labels.u8'), np.uint8, n)
        self.masks = read_array(p('masks.u8'), np.uint8, n * h * w).reshape(n, h, w) if task == 'segmentation' else None
        if task == 'detection':
            self.offsets = read_array(p('box-offsets.u32'), np.uint32, n + 1).astype(np.int64)
            total = int(self.offsets[-1])
            self.boxes = read_array(p('boxes.f32'), np.float32, 4 * total).reshape(total, 4).astype(np.float64)
            self.box_labels = read_array(p('box-labels.u8'), np.uint8, total)

    def objects(self, indices):
        out = []
        for i in indices:
            a, b = self.offsets[i], self.offsets[i + 1]
            out.append([(int(self.box_labels[j]), tuple(float(v) for v in self.boxes[j])) for j in range(a, b)])
        return out


class Job:
    def __init__(self, run_dir):
        with open(os.path.join(run_dir, 'job.json')) as f:
            self.meta = json.load(f)
        m = self.meta
        self.run_dir = run_dir
        self.task = m['task']
        self.num_classes = m['numClasses']
        self.spec = m['spec']
        self.model_spec = m['modelSpec']
        self.total_steps = m['totalSteps']
        self.steps_per_epoch = m['stepsPerEpoch']
        data_dir = os.path.join(run_dir, m['dataDir'])
        shape = m['modelSpec']['input']
        self.train = Split(data_dir, 'train', m['train'], self.task, shape)
        self.test = Split(data_dir, 'test', m['test'], self.task, shape)
        self.eval_count = m['evalCount']
        mean, std = m['normalization']['mean'], m['normalization']['std']
        # Like normalizeInto: each channel's 256 values computed in double, then rounded to float32.
        self.table = np.stack([((np.arange(256) / 255 - mean[c]) / std[c]).astype(np.float32) for c in range(len(mean))])
        n = self.train.count
        self.order = read_array(os.path.join(run_dir, m['order']['file']), np.uint32, m['order']['epochs'] * n).reshape(-1, n).astype(np.int64)

    def inputs(self, images):
        c = images.shape[1]
        x = np.empty(images.shape, np.float32)
        for ch in range(c):
            x[:, ch] = self.table[ch][images[:, ch]]
        return torch.from_numpy(x)

    def batch(self, step):
        epoch, b = divmod(step, self.steps_per_epoch)
        bs = self.spec['batchSize']
        return self.order[epoch, b * bs:min((b + 1) * bs, self.train.count)]

    def loss_sum(self, split, indices, out):
        if self.task == 'classification':
            return torch.nn.functional.cross_entropy(out, torch.from_numpy(split.labels[indices].astype(np.int64)), reduction='sum')
        if self.task == 'segmentation':
            return st.segmentation_loss_sum(out, torch.from_numpy(split.masks[indices].astype(np.int64)))
        if self.task == 'detection':
            return st.yolo_loss_sum(out, st.encode_yolo_targets(split.objects(indices), out.shape[2]))
        fail(f'task {self.task} is not mirrored')


def load_init(job, model):
    init = job.meta['init']
    flat = read_array(os.path.join(job.run_dir, init['file']), np.float32)
    arrays, pos = {}, 0
    for a in init['arrays']:
        n = int(np.prod(a['shape']))
        arrays[a['name']] = flat[pos:pos + n].reshape(a['shape'])
        pos += n
    if pos != flat.size:
        fail(f'{init["file"]}: holds {flat.size} values, job.json lists {pos}')
    st.load_stride_state(model, arrays)


def evaluate(job, model):
    model.eval()
    test = job.test
    loss = 0.0
    correct = 0
    confusion = None
    detections = []
    chunk = 250
    with torch.no_grad():
        for start in range(0, job.eval_count, chunk):
            idx = np.arange(start, min(start + chunk, job.eval_count))
            out = model(job.inputs(test.images[idx]))
            loss += float(job.loss_sum(test, idx, out))
            if job.task == 'classification':
                correct += int((out.argmax(1).numpy() == test.labels[idx]).sum())
            elif job.task == 'segmentation':
                confusion = st.segmentation_confusion(out, torch.from_numpy(test.masks[idx].astype(np.int64)), job.num_classes, confusion)
            elif job.task == 'detection':
                e = job.meta['detectionEval']
                detections += st.decode_yolo(out, e['scoreThreshold'], e['iouThreshold'], e['maxDetections'])
    model.train()
    result = {'testLoss': loss / job.eval_count}
    if job.task == 'classification':
        result['testAccuracy'] = correct / job.eval_count
    elif job.task == 'segmentation':
        result.update(st.segmentation_metrics(confusion, job.num_classes))
    elif job.task == 'detection':
        result['mAP50'] = st.mean_average_precision(detections, job.test.objects(range(job.eval_count)), job.num_classes, 0.5)
    return result


def train(args):
    torch.set_num_threads(args.threads)
    job = Job(args.run_dir)
    model = st.build_model(job.model_spec)
    if args.init == 'stride':
        load_init(job, model)
    else:
        st.init_params(model, torch.Generator().manual_seed(job.spec['seed']))
    if args.nudge:
        with torch.no_grad():
            for _, p in model.stride_params():
                p.copy_(torch.from_numpy(np.nextafter(p.detach().numpy(), np.float32(np.inf))))
    model.train()
    params = [p for _, p in model.stride_params()]
    buffers = [b for _, b in model.stride_buffers()]
    opt = st.make_optimizer(job.spec['optimizer'], params)
    total = args.steps or job.total_steps
    shards = job.spec['shards']
    every = job.spec['evalEvery']
    eval_steps = set(range(job.steps_per_epoch, total + 1, job.steps_per_epoch) if every == 'epoch' else range(every, total + 1, every)) | {total}
    evals = []
    started = time.perf_counter()
    eval_seconds = 0.0
    window_loss, window_n = 0.0, 0
    curve = []  # mean training loss of each --log-every window of steps
    for step in range(total):
        indices = job.batch(step)
        published = [b.detach().clone() for b in buffers]
        acc = [torch.zeros_like(b, dtype=torch.float64) for b in buffers]
        opt.zero_grad(set_to_none=False)
        loss_sum = 0.0
        for a, b in st.shard_ranges(len(indices), shards):
            with torch.no_grad():
                for buf, pub in zip(buffers, published):
                    buf.copy_(pub)
            idx = indices[a:b]
            loss = job.loss_sum(job.train, idx, model(job.inputs(job.train.images[idx])))
            loss.backward()
            loss_sum += float(loss)
            with torch.no_grad():
                for s, buf in zip(acc, buffers):
                    s += (b - a) * buf.double()
        with torch.no_grad():
            for p in params:
                p.grad /= len(indices)
            for s, buf in zip(acc, buffers):
                buf.copy_((s / len(indices)).float())
        lr = st.learning_rate_at(job.spec['schedule'], job.spec['optimizer']['lr'], step, job.total_steps)
        for g in opt.param_groups:
            g['lr'] = lr
        opt.step()
        window_loss += loss_sum
        window_n += len(indices)
        if (step + 1) % args.log_every == 0 or step + 1 == total:
            elapsed = time.perf_counter() - started
            print(f'torch step {step + 1}/{total}  loss {window_loss / window_n:.4f}  lr {lr:.2e}  {elapsed:.0f}s', file=sys.stderr, flush=True)
            curve.append({'steps': step + 1, 'loss': window_loss / window_n})
            window_loss, window_n = 0.0, 0
        if step + 1 in eval_steps:
            t0 = time.perf_counter()
            e = evaluate(job, model)
            eval_seconds += time.perf_counter() - t0
            e['step'] = step + 1
            evals.append(e)
            print(f'torch eval at step {step + 1}: {json.dumps(e)}', file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    final = evals[-1]
    metric = {'classification': 'testAccuracy', 'segmentation': 'mIoU', 'detection': 'mAP50'}[job.task]
    print(json.dumps({'task': job.task, 'metric': metric, 'value': final[metric], 'final': final, 'evals': evals, 'steps': total,
                      'wallSeconds': wall, 'evalSeconds': eval_seconds, 'lossCurve': curve, 'logEvery': args.log_every, 'threads': args.threads, 'init': args.init, 'nudge': args.nudge, 'torch': torch.__version__}))


def check(args):
    """Agreement cases: Stride's forward outputs, losses and metrics against this module's."""
    with open(args.case) as f:
        cases = json.load(f)
    torch.set_num_threads(1)
    results = []
    for case in cases:
        kind = case['kind']
        if kind == 'forward':
            model = st.build_model(case['modelSpec'])
            st.load_stride_state(model, {a['name']: np.asarray(a['data'], np.float32).reshape(a['shape']) for a in case['state']})
            x = torch.tensor(np.asarray(case['input']['data'], np.float32).reshape(case['input']['shape']))
            model.train(case['training'])
            with torch.no_grad():
                out = model(x)
            buffers = {n: b.numpy().reshape(-1).tolist() for n, b in model.stride_buffers()}
            results.append({'output': out.numpy().reshape(-1).tolist(), 'shape': list(out.shape), 'buffers': buffers})
        elif kind == 'yolo':
            out = torch.tensor(np.asarray(case['output'], np.float64).reshape(case['shape']))
            objects = [[(o['classId'], tuple(o['box'])) for o in img] for img in case['objects']]
            loss = st.yolo_loss_sum(out, st.encode_yolo_targets(objects, case['shape'][2]))
            dets = st.decode_yolo(out, **case['decode'])
            results.append({'loss': float(loss), 'detections': [[{'classId': c, 'score': s, 'box': list(b)} for c, s, b in d] for d in dets],
                            'mAP50': st.mean_average_precision(dets, objects, case['numClasses'], 0.5)})
        elif kind == 'segmentation':
            out = torch.tensor(np.asarray(case['output'], np.float64).reshape(case['shape']))
            masks = torch.tensor(np.asarray(case['masks'], np.int64).reshape(case['shape'][0], *case['shape'][2:]))
            k = case['shape'][1]
            results.append({'loss': float(st.segmentation_loss_sum(out, masks)), **st.segmentation_metrics(st.segmentation_confusion(out, masks, k), k)})
        elif kind == 'schedule':
            results.append({'lrs': [st.learning_rate_at(case['schedule'], case['lr'], s, case['total']) for s in range(case['total'])]})
        else:
            fail(f'{args.case}: unknown case kind {kind!r}')
    print(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train')
    t.add_argument('run_dir')
    t.add_argument('--threads', type=int, default=2)
    t.add_argument('--init', choices=['stride', 'torch'], default='stride')
    t.add_argument('--nudge', action='store_true', help='move every initial parameter up by one float32 ulp')
    t.add_argument('--steps', type=int, default=0, help='stop after N steps (the schedule still spans the whole job)')
    t.add_argument('--log-every', type=int, default=50)
    c = sub.add_parser('check')
    c.add_argument('case')
    args = parser.parse_args()
    (train if args.command == 'train' else check)(args)


if __name__ == '__main__':
    main()
