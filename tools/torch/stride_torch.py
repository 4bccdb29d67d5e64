"""PyTorch mirror of Stride's training: model specs, init, losses, metrics, schedule and step.

Imported by tools/torch/train_like_stride.py (the PyTorch side of `tools/torch/src/compare.ts`)
and by its agreement check. Every definition here follows one in libs/cnn or libs/engine, named
beside it; the check (`train_like_stride.py check`) compares them with Stride's own numbers.

  build_model(spec)       libs/cnn/src/model/spec.ts + build.ts: the JSON model spec as a torch module
  init_params(...)        libs/cnn/src/model/init.ts: 'pytorch' and 'he-xavier' init families
  learning_rate_at(...)   libs/cnn/src/optim/schedules.ts
  yolo_loss / decode_yolo libs/cnn/src/vision/yolo.ts
  mean_average_precision  libs/cnn/src/vision/map.ts
  segmentation_*          libs/cnn/src/vision/segmentation.ts
  train_step(...)         libs/engine: shards of fixed membership, batch-norm statistics per shard,
                          gradients summed and divided by the batch length, running statistics the
                          count-weighted mean of the shards' updates
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Model specs (libs/cnn/src/model/spec.ts)

NAME_PREFIX = {
    'conv2d': 'conv', 'convTranspose2d': 'deconv', 'linear': 'fc', 'batchNorm2d': 'bn',
    'maxPool2d': 'pool', 'avgPool2d': 'pool', 'minPool2d': 'pool', 'globalAvgPool2d': 'gap',
    'relu': 'relu', 'leakyRelu': 'lrelu', 'sigmoid': 'sigmoid', 'tanh': 'tanh', 'flatten': 'flatten',
    'dropout': 'dropout', 'upsampleNearest2d': 'upsample', 'add': 'add', 'concat': 'concat',
}
PASS_THROUGH = {'batchNorm2d', 'maxPool2d', 'avgPool2d', 'minPool2d', 'globalAvgPool2d', 'dropout', 'flatten', 'upsampleNearest2d', 'add', 'concat'}


class SpecError(ValueError):
    pass


def pair(v, default):
    if v is None:
        return tuple(default)
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return (int(v[0]), int(v[1]))
    raise SpecError(f'expected an integer or a pair, got {v!r}')


def plan_nodes(spec):
    """Names, inputs and resolved fields of every layer, as planModel computes them."""
    if not isinstance(spec, dict) or not isinstance(spec.get('layers'), list) or not spec['layers']:
        raise SpecError('spec: expected an object with a non-empty "layers" array')
    counters = {}
    names = []
    for i, layer in enumerate(spec['layers']):
        t = layer.get('type')
        if t not in NAME_PREFIX:
            raise SpecError(f'layers[{i}].type: unknown layer type {t!r}')
        prefix = NAME_PREFIX[t]
        counters[prefix] = counters.get(prefix, 0) + 1
        names.append(layer.get('name') or f'{prefix}{counters[prefix]}')
    nodes = []
    previous = 'input'
    for i, layer in enumerate(spec['layers']):
        t = layer['type']
        multi = t in ('add', 'concat')
        inputs = layer.get('inputs') or ([] if multi else [previous])
        if multi and len(inputs) < 2:
            raise SpecError(f'layers[{i}].inputs: {t} needs at least 2 inputs')
        nodes.append({'index': i, 'name': names[i], 'type': t, 'layer': layer, 'inputs': list(inputs)})
        previous = names[i]
    return nodes, spec.get('output') or previous


class SpecModel(nn.Module):
    """A Stride model spec as a torch module; parameter names are Stride's (`stem_conv.weight`)."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.nodes, self.output = plan_nodes(spec)
        self.layers = nn.ModuleDict()
        shapes = {'input': list(spec['input'])}
        for node in self.nodes:
            t, layer, name = node['type'], node['layer'], node['name']
            x = shapes.get(node['inputs'][0])
            if x is None:
                raise SpecError(f'layers[{node["index"]}] {name}: unknown input {node["inputs"][0]!r}')
            module = None
            if t == 'conv2d':
                k = pair(layer['kernelSize'], None)
                module = nn.Conv2d(x[0], layer['outChannels'], k, stride=pair(layer.get('stride'), (1, 1)), padding=pair(layer.get('padding'), (0, 0)),
                                   dilation=pair(layer.get('dilation'), (1, 1)), groups=layer.get('groups', 1), bias=layer.get('bias', True))
            elif t == 'convTranspose2d':
                module = nn.ConvTranspose2d(x[0], layer['outChannels'], pair(layer['kernelSize'], None), stride=pair(layer.get('stride'), (1, 1)),
                                            padding=pair(layer.get('padding'), (0, 0)), output_padding=pair(layer.get('outputPadding'), (0, 0)), bias=layer.get('bias', True))
            elif t == 'linear':
                module = nn.Linear(x[0], layer['outFeatures'], bias=layer.get('bias', True))
            elif t == 'batchNorm2d':
                module = nn.BatchNorm2d(x[0], eps=layer.get('eps', 1e-5), momentum=layer.get('momentum', 0.1))
            if module is not None:
                self.layers[name] = module
            shapes[name] = self._shape(node, [shapes[n] for n in node['inputs']])
        self.output_shape = shapes[self.output]

    def _shape(self, node, xs):
        """Per-sample output shape, by running the node on a zero sample (the formulas are torch's own)."""
        with torch.no_grad():
            ins = [torch.zeros([2] + s) for s in xs]
            was = self.training
            self.eval()
            out = self._eval_node(node, ins)
            self.train(was)
        return list(out.shape[1:])

    def _eval_node(self, node, xs):
        t, layer, name = node['type'], node['layer'], node['name']
        x = xs[0]
        if name in self.layers:
            return self.layers[name](x)
        if t in ('maxPool2d', 'avgPool2d', 'minPool2d'):
            k = pair(layer['kernelSize'], None)
            s = pair(layer.get('stride'), k)
            p = pair(layer.get('padding'), (0, 0))
            if t == 'maxPool2d':
                return F.max_pool2d(x, k, s, p)
            if t == 'minPool2d':
                return -F.max_pool2d(-x, k, s, p)
            return F.avg_pool2d(x, k, s, p, count_include_pad=True)
        if t == 'globalAvgPool2d':
            return F.adaptive_avg_pool2d(x, 1)
        if t == 'relu':
            return F.relu(x)
        if t == 'leakyRelu':
            return F.leaky_relu(x, layer.get('negativeSlope', 0.01))
        if t == 'sigmoid':
            return torch.sigmoid(x)
        if t == 'tanh':
            return torch.tanh(x)
        if t == 'flatten':
            return x.flatten(1)
        if t == 'dropout':
            return F.dropout(x, layer.get('p', 0.5), self.training)
        if t == 'upsampleNearest2d':
            return F.interpolate(x, scale_factor=layer['scaleFactor'], mode='nearest')
        if t == 'add':
            out = xs[0]
            for y in xs[1:]:
                out = out + y
            return out
        if t == 'concat':
            return torch.cat(xs, 1)
        raise SpecError(f'{name}: unsupported layer type {t}')

    def forward(self, x):
        values = {'input': x}
        for node in self.nodes:
            values[node['name']] = self._eval_node(node, [values[n] for n in node['inputs']])
        return values[self.output]

    def stride_params(self):
        """(name, tensor) of the trainable parameters in Stride's order: spec order, weight before bias."""
        out = []
        for node in self.nodes:
            m = self.layers[node['name']] if node['name'] in self.layers else None
            if m is None:
                continue
            out.append((f'{node["name"]}.weight', m.weight))
            if m.bias is not None:
                out.append((f'{node["name"]}.bias', m.bias))
        return out

    def stride_buffers(self):
        """(name, tensor) of the batch-norm running statistics, in Stride's order."""
        out = []
        for node in self.nodes:
            if node['type'] == 'batchNorm2d':
                m = self.layers[node['name']]
                out += [(f'{node["name"]}.running_mean', m.running_mean), (f'{node["name"]}.running_var', m.running_var)]
        return out


def build_model(spec):
    return SpecModel(spec)


# ---------------------------------------------------------------------------------------------
# Initialisation (libs/cnn/src/model/init.ts): the same families; the random streams are torch's.

def _fan_in(shape):
    receptive = 1
    for d in shape[2:]:
        receptive *= d
    return (shape[1] if len(shape) > 1 else 1) * receptive


def _weight_rule(model, node):
    current = node['name']
    while True:
        nxt = next((n for n in model.nodes if current in n['inputs']), None)
        if nxt is None:
            return ('xavier',)
        if nxt['type'] == 'relu':
            return ('he', math.sqrt(2))
        if nxt['type'] == 'leakyRelu':
            return ('he', math.sqrt(2 / (1 + nxt['layer'].get('negativeSlope', 0.01) ** 2)))
        if nxt['type'] not in PASS_THROUGH:
            return ('xavier',)
        current = nxt['name']


def init_params(model, generator):
    """Fills the parameters by the spec's init family ('pytorch' unless the spec says 'he-xavier')."""
    mode = model.spec.get('init', 'pytorch')
    with torch.no_grad():
        for node in model.nodes:
            if node['name'] not in model.layers:
                continue
            m = model.layers[node['name']]
            if node['type'] == 'batchNorm2d':
                m.reset_parameters()
                continue
            shape = list(m.weight.shape)
            fan_in = _fan_in(shape)
            if mode == 'pytorch':
                bound = 1 / math.sqrt(fan_in)
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.uniform_(-bound, bound, generator=generator)
                continue
            rule = _weight_rule(model, node)
            if rule[0] == 'he':
                m.weight.normal_(0, rule[1] / math.sqrt(fan_in), generator=generator)
            else:
                fan_out = shape[0] * fan_in / (shape[1] if len(shape) > 1 else 1)
                a = math.sqrt(6 / (fan_in + fan_out))
                m.weight.uniform_(-a, a, generator=generator)
            if m.bias is not None:
                m.bias.zero_()


def load_stride_state(model, named_arrays):
    """Copies Stride's arrays {name: np.ndarray} into the parameters and buffers; names and shapes must match."""
    targets = dict(model.stride_params() + model.stride_buffers())
    missing = sorted(set(targets) - set(named_arrays))
    extra = sorted(set(named_arrays) - set(targets))
    if missing or extra:
        raise SpecError(f'state: missing {missing[:5]}, unknown {extra[:5]}')
    with torch.no_grad():
        for name, t in targets.items():
            a = named_arrays[name]
            if list(a.shape) != list(t.shape):
                raise SpecError(f'state: {name} has shape {list(a.shape)}, the model expects {list(t.shape)}')
            t.copy_(torch.from_numpy(np.ascontiguousarray(a)))


# ---------------------------------------------------------------------------------------------
# Schedules (libs/cnn/src/optim/schedules.ts)

def _anneal_cos(start, end, pct):
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def learning_rate_at(schedule, base_lr, step, total):
    warmup = schedule.get('warmupSteps', 0) or 0
    if step < warmup:
        return base_lr * step / warmup
    t, total = step - warmup, total - warmup
    kind = schedule['type']
    if kind == 'constant':
        return base_lr
    if kind == 'step':
        return base_lr * schedule.get('gamma', 0.1) ** (t // schedule['stepSize'])
    if kind == 'cosine':
        lo = schedule.get('minLr', 0)
        return lo + (base_lr - lo) * (1 + math.cos(math.pi * t / total)) / 2
    if kind == 'onecycle':
        pct, div, final_div = schedule.get('pctStart', 0.3), schedule.get('divFactor', 25), schedule.get('finalDivFactor', 1e4)
        initial = base_lr / div
        phases = [(pct * total - 1, initial, base_lr), (total - 1, base_lr, initial / final_div)]
        start = 0
        for i, (end, frm, to) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                span = end - start
                return to if span == 0 else _anneal_cos(frm, to, (t - start) / span)
            start = end
    raise SpecError(f'schedule.type: unknown schedule {kind!r}')


def make_optimizer(spec, params):
    kind = spec['type']
    if kind == 'sgd':
        return torch.optim.SGD(params, lr=spec['lr'], momentum=spec.get('momentum', 0), dampening=spec.get('dampening', 0),
                               nesterov=spec.get('nesterov', False), weight_decay=spec.get('weightDecay', 0))
    if kind in ('adam', 'adamw'):
        cls = torch.optim.Adam if kind == 'adam' else torch.optim.AdamW
        return cls(params, lr=spec['lr'], betas=tuple(spec.get('betas', (0.9, 0.999))), eps=spec.get('eps', 1e-8),
                   weight_decay=spec.get('weightDecay', 0 if kind == 'adam' else 0.01))
    raise SpecError(f'optimizer.type: unknown optimizer {kind!r}')


# ---------------------------------------------------------------------------------------------
# Shards (libs/data/src/sampling.ts shardRanges)

def shard_ranges(length, shards):
    q, r = divmod(length, shards)
    out, start = [], 0
    for s in range(shards):
        end = start + q + (1 if s < r else 0)
        out.append((start, end))
        start = end
    return [(a, b) for a, b in out if b > a]


# ---------------------------------------------------------------------------------------------
# Segmentation (libs/cnn/src/vision/segmentation.ts)

def segmentation_loss_sum(logits, masks):
    """Per-pixel cross-entropy averaged over each image's pixels, summed over the images."""
    hw = logits.shape[2] * logits.shape[3]
    return F.cross_entropy(logits, masks, reduction='sum') / hw


def segmentation_confusion(logits, masks, k, into=None):
    pred = logits.argmax(1).reshape(-1).numpy().astype(np.int64)
    truth = masks.reshape(-1).numpy().astype(np.int64)
    c = np.bincount(truth * k + pred, minlength=k * k).astype(np.float64)
    return c if into is None else into + c


def segmentation_metrics(confusion, k):
    cm = np.asarray(confusion, dtype=np.float64).reshape(k, k)
    truth, predicted, tp = cm.sum(1), cm.sum(0), np.diag(cm)
    union = truth + predicted - tp
    ious = [tp[c] / union[c] for c in range(k) if union[c] > 0]
    total = cm.sum()
    return {'pixelAccuracy': float(tp.sum() / total) if total > 0 else 0.0, 'mIoU': float(np.mean(ious)) if ious else 0.0}


# ---------------------------------------------------------------------------------------------
# YOLO (libs/cnn/src/vision/yolo.ts) and boxes (box.ts)

def box_area(b):
    return max(0.0, b[2]) * max(0.0, b[3])


def box_iou(a, b):
    iw = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    ih = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def encode_yolo_targets(objects, s):
    """objects: per image a list of (classId, (cx, cy, w, h)). Returns objectness [N,1,S,S], box [N,4,S,S], classes [N,S,S]."""
    n = len(objects)
    cells = s * s
    obj = np.zeros((n, cells), np.float32)
    box = np.zeros((n, 4, cells), np.float32)
    cls = np.zeros((n, cells), np.int64)
    for b, objs in enumerate(objects):
        area_in_cell = np.full(cells, -1.0)
        for class_id, (cx, cy, w, h) in objs:
            col = min(s - 1, math.floor(cx * s))
            row = min(s - 1, math.floor(cy * s))
            cell = row * s + col
            area = box_area((cx, cy, w, h))
            if area <= area_in_cell[cell]:
                continue
            area_in_cell[cell] = area
            obj[b, cell] = 1
            cls[b, cell] = class_id
            box[b, :, cell] = (cx * s - col, cy * s - row, math.sqrt(w), math.sqrt(h))
    return (torch.from_numpy(obj.reshape(n, 1, s, s)), torch.from_numpy(box.reshape(n, 4, s, s)), torch.from_numpy(cls.reshape(n, s, s)))


def yolo_loss_sum(output, targets, lambda_coord=5.0, lambda_noobj=0.5):
    obj, box, cls = targets
    obj_weight = torch.where(obj > 0, 1.0, lambda_noobj)
    objectness = (F.binary_cross_entropy_with_logits(output[:, 0:1], obj, reduction='none') * obj_weight).sum()
    box_err = ((torch.sigmoid(output[:, 1:5]) - box) ** 2 * (obj * lambda_coord)).sum()
    cls_loss = (F.cross_entropy(output[:, 5:], cls, reduction='none') * obj[:, 0]).sum()
    return objectness + box_err + cls_loss


def class_aware_nms(dets, iou_threshold):
    order = sorted(range(len(dets)), key=lambda i: (-dets[i][1], i))
    kept = []
    for i in order:
        d = dets[i]
        if all(k[0] != d[0] or box_iou(d[2], k[2]) <= iou_threshold for k in kept):
            kept.append(d)
    return kept


def decode_yolo(output, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
    """Per image a list of (classId, score, (cx, cy, w, h)), highest score first."""
    out = output.detach().double()
    n, ch, s, _ = out.shape
    obj = torch.sigmoid(out[:, 0])
    xy = torch.sigmoid(out[:, 1:3])
    wh = torch.sigmoid(out[:, 3:5]) ** 2
    logits = out[:, 5:]
    mx, best = logits.max(1)
    z = torch.exp(logits - mx[:, None]).sum(1)
    score = obj / z
    rows = torch.arange(s, dtype=torch.float64)[:, None].expand(s, s)
    cols = torch.arange(s, dtype=torch.float64)[None, :].expand(s, s)
    cx = (cols + xy[:, 0]) / s
    cy = (rows + xy[:, 1]) / s
    result = []
    for b in range(n):
        keep = (score[b] >= score_threshold).reshape(-1).nonzero().reshape(-1).tolist()
        sb, cb = score[b].reshape(-1), best[b].reshape(-1)
        cxb, cyb, wb, hb = cx[b].reshape(-1), cy[b].reshape(-1), wh[b, 0].reshape(-1), wh[b, 1].reshape(-1)
        cands = [(int(cb[i]), float(sb[i]), (float(cxb[i]), float(cyb[i]), float(wb[i]), float(hb[i]))) for i in keep]
        result.append(class_aware_nms(cands, iou_threshold)[:max_detections])
    return result


def average_precision(hits, positives):
    if positives <= 0:
        return 0.0
    n = len(hits)
    precision = np.zeros(n)
    recall = np.zeros(n)
    tp = 0
    for k in range(n):
        tp += 1 if hits[k] else 0
        precision[k] = tp / (k + 1)
        recall[k] = tp / positives
    for k in range(n - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    ap, prev = 0.0, 0.0
    for k in range(n):
        if recall[k] > prev:
            ap += (recall[k] - prev) * precision[k]
            prev = recall[k]
    return ap


def mean_average_precision(detections, ground_truths, num_classes, iou_threshold=0.5):
    """VOC mAP: detections per image [(classId, score, box)], ground truths per image [(classId, box)]."""
    gt_count = [0] * num_classes
    for objs in ground_truths:
        for c, _ in objs:
            gt_count[c] += 1
    by_class = [[] for _ in range(num_classes)]
    for i, dets in enumerate(detections):
        for d in dets:
            by_class[d[0]].append((i, d))
    aps = []
    for c in range(num_classes):
        ranked = sorted(enumerate(by_class[c]), key=lambda e: (-e[1][1][1], e[0]))
        matched = [np.zeros(len(objs), bool) for objs in ground_truths]
        hits = []
        for _, (image, det) in ranked:
            best, best_iou = -1, -math.inf
            for j, (gc, gb) in enumerate(ground_truths[image]):
                if gc != c:
                    continue
                iou = box_iou(det[2], gb)
                if iou > best_iou:
                    best_iou, best = iou, j
            if best < 0 or best_iou < iou_threshold or matched[image][best]:
                hits.append(False)
            else:
                matched[image][best] = True
                hits.append(True)
        if gt_count[c] > 0:
            aps.append(average_precision(hits, gt_count[c]))
    return float(np.mean(aps)) if aps else 0.0
