#!/usr/bin/env python3
"""PyTorch reference values for libs/cnn's ops: forward outputs and input gradients.

usage (from the repository root):  /usr/bin/python3 tools/torch/cnn_fixtures.py [OUT]
writes libs/cnn/test/fixtures/torch-ops.json (or OUT), replayed by libs/cnn/test/torch-agreement.test.ts.

Every case draws its inputs from one seeded numpy generator, rounds them to float32 (what
libs/cnn holds), then runs the op in float64 so the reference carries no float32 rounding of its
own; outputs and gradients are stored rounded to float32. Each case also draws a random upstream
gradient `gradOut` and stores d(sum(out * gradOut))/d(input) for every input.

Case layout: {op, title, args, inputs: {name: T | null}, gradOut: T, output: T, grads: {name: T},
after?: {name: T}} with T = {shape, data}; `args` uses libs/cnn's option names (camelCase).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611
OUT = os.path.join('libs', 'cnn', 'test', 'fixtures', 'torch-ops.json')
rng = np.random.default_rng(SEED)


def f32(a):
    """Rounds to float32 and back to float64: the exact values a Float32Array holds."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def randn(*shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


def enc(a):
    """{shape, data} with each value written as the shortest decimal that round-trips in float32."""
    a = np.asarray(a, dtype=np.float32)
    # str() of a numpy float32 is its shortest round-tripping decimal (numpy >= 1.14).
    return {'shape': list(a.shape), 'data': [float(str(v)) for v in a.reshape(-1)]}


def pair(v):
    return v if isinstance(v, int) else tuple(v)


def run(op, title, args, inputs, fn, extra=None):
    """Runs fn(**tensors) in float64, back-propagates a random gradOut, returns the case."""
    tensors = {k: (None if v is None else torch.tensor(v, dtype=torch.float64, requires_grad=True)) for k, v in inputs.items()}
    out = fn(**tensors)
    grad_out = randn(*out.shape)
    out.backward(torch.tensor(grad_out, dtype=torch.float64))
    case = {
        'op': op,
        'title': title,
        'args': args,
        'inputs': {k: (None if v is None else enc(v)) for k, v in inputs.items()},
        'gradOut': enc(grad_out),
        'output': enc(out.detach().numpy()),
        'grads': {k: enc(t.grad.numpy()) for k, t in tensors.items() if t is not None},
    }
    if extra:
        case.update(extra)
    return case


def fmt_pair(v):
    return f'{v}' if isinstance(v, int) else f'{v[0]}x{v[1]}'


def shape_str(s):
    return 'x'.join(str(d) for d in s)


cases = []

# conv2d: (x shape, weight shape, stride, padding, dilation, groups, bias)
CONV = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1, True),
    ((1, 1, 6, 7), (2, 1, 2, 3), 2, 1, 1, 1, False),
    ((2, 4, 6, 5), (4, 2, 3, 2), (1, 2), (2, 1), 1, 2, True),
    ((1, 3, 8, 7), (2, 3, 3, 3), 1, 2, 2, 1, True),
    ((2, 1, 9, 8), (3, 1, 2, 3), 3, (0, 2), (2, 1), 1, True),
    ((1, 2, 9, 9), (4, 1, 3, 2), 2, 1, 2, 2, True),
    ((2, 3, 5, 6), (5, 3, 1, 1), 2, 0, 1, 1, True),
    ((1, 3, 7, 5), (2, 3, 7, 5), 1, 0, 1, 1, True),
    ((3, 2, 4, 4), (2, 2, 3, 3), 3, 2, 1, 1, False),
]
for xs, ws, stride, padding, dilation, groups, bias in CONV:
    args = {'stride': stride, 'padding': padding, 'dilation': dilation, 'groups': groups}
    title = (f'conv2d x {shape_str(xs)} w {shape_str(ws)} stride {fmt_pair(stride)} padding {fmt_pair(padding)} '
             f'dilation {fmt_pair(dilation)} groups {groups}' + (' bias' if bias else ' no bias'))
    cases.append(run('conv2d', title, args, {'x': randn(*xs), 'weight': randn(*ws, scale=0.5), 'bias': randn(ws[0]) if bias else None},
                     lambda x, weight, bias: F.conv2d(x, weight, bias, stride=pair(stride), padding=pair(padding), dilation=pair(dilation), groups=groups)))

# The worked example of shared/DESIGN.md: 1..25 with [[1, 0], [0, 1]].
cases.append(run('conv2d', 'conv2d DESIGN.md worked example 5x5 1..25, filter [[1,0],[0,1]]', {'stride': 1, 'padding': 0, 'dilation': 1, 'groups': 1},
                 {'x': f32(np.arange(1, 26).reshape(1, 1, 5, 5)), 'weight': f32(np.array([1, 0, 0, 1]).reshape(1, 1, 2, 2)), 'bias': None},
                 lambda x, weight, bias: F.conv2d(x, weight, bias)))

# convTranspose2d: (x shape, weight shape [Cin, Cout/groups, kh, kw], stride, padding, outputPadding, dilation, groups, bias)
CONVT = [
    ((2, 3, 4, 5), (3, 2, 3, 3), 1, 0, 0, 1, 1, True),
    ((1, 1, 4, 3), (1, 3, 3, 3), 2, 1, 1, 1, 1, True),
    ((1, 2, 3, 4), (2, 2, 4, 3), 3, 2, (2, 1), 1, 1, True),
    ((2, 3, 3, 3), (3, 1, 2, 3), (2, 1), (0, 1), (1, 0), 1, 1, False),
    ((1, 4, 3, 4), (4, 2, 3, 3), 2, 1, 0, 1, 2, True),
    ((1, 2, 4, 4), (2, 2, 3, 2), 2, 1, 1, 2, 1, True),
    ((2, 3, 5, 4), (3, 3, 3, 3), 1, 1, 0, 1, 1, False),
    ((1, 1, 3, 5), (1, 2, 2, 2), 3, 0, 0, 1, 1, True),
]
for xs, ws, stride, padding, output_padding, dilation, groups, bias in CONVT:
    args = {'stride': stride, 'padding': padding, 'outputPadding': output_padding, 'dilation': dilation, 'groups': groups}
    title = (f'convTranspose2d x {shape_str(xs)} w {shape_str(ws)} stride {fmt_pair(stride)} padding {fmt_pair(padding)} '
             f'outputPadding {fmt_pair(output_padding)} dilation {fmt_pair(dilation)} groups {groups}' + (' bias' if bias else ' no bias'))
    cases.append(run('convTranspose2d', title, args,
                     {'x': randn(*xs), 'weight': randn(*ws, scale=0.5), 'bias': randn(ws[1] * groups) if bias else None},
                     lambda x, weight, bias: F.conv_transpose2d(x, weight, bias, stride=pair(stride), padding=pair(padding),
                                                                output_padding=pair(output_padding), dilation=pair(dilation), groups=groups)))

# pooling: (x shape, kernelSize, stride or None (= kernel), padding)
POOL = [
    ((1, 1, 6, 6), 2, None, 0),
    ((2, 3, 5, 7), 3, 1, 1),
    ((1, 3, 7, 5), (3, 2), (2, 1), (1, 0)),
    ((2, 1, 8, 9), 3, 3, 0),
    ((1, 1, 5, 6), (2, 3), None, 1),
    ((1, 3, 6, 6), 4, 2, 2),
    ((2, 1, 5, 5), 1, 2, 0),
    ((2, 3, 7, 8), 3, 2, 1),
]
POOL_FNS = {
    'maxPool2d': lambda x, k, s, p: F.max_pool2d(x, k, s, p),
    'avgPool2d': lambda x, k, s, p: F.avg_pool2d(x, k, s, p),  # count_include_pad=True, PyTorch's default
    'minPool2d': lambda x, k, s, p: -F.max_pool2d(-x, k, s, p),
}
for kind, pool in POOL_FNS.items():
    for xs, kernel, stride, padding in POOL:
        args = {'kernelSize': kernel, 'padding': padding}
        if stride is not None:
            args['stride'] = stride
        title = f'{kind} x {shape_str(xs)} kernel {fmt_pair(kernel)} stride {fmt_pair(stride) if stride is not None else "default"} padding {fmt_pair(padding)}'
        k, s, p = pair(kernel), pair(stride if stride is not None else kernel), pair(padding)
        cases.append(run(kind, title, args, {'x': randn(*xs)}, lambda x: pool(x, k, s, p)))

# linear: (x shape, out features, bias)
LINEAR = [((1, 1), 1, True), ((4, 5), 3, True), ((4, 5), 3, False), ((2, 8), 10, True), ((3, 16), 7, True), ((2, 3, 4), 5, True), ((6, 2), 1, False), ((5, 9), 4, True)]
for xs, out_f, bias in LINEAR:
    title = f'linear x {shape_str(xs)} -> {out_f}' + (' bias' if bias else ' no bias')
    cases.append(run('linear', title, {}, {'x': randn(*xs), 'weight': randn(out_f, xs[-1], scale=0.5), 'bias': randn(out_f) if bias else None},
                     lambda x, weight, bias: F.linear(x, weight, bias)))

# batchNorm2d: (x shape, training, eps, momentum, affine)
BN = [
    ((4, 3, 5, 5), True, 1e-5, 0.1, True),
    ((2, 2, 4, 3), True, 1e-3, 0.3, True),
    ((1, 3, 3, 4), True, 1e-5, 0.1, True),
    ((5, 1, 2, 2), True, 1e-5, 0.5, False),
    ((3, 2, 1, 1), True, 1e-5, 0.1, True),
    ((2, 3, 4, 4), False, 1e-5, 0.1, True),
    ((1, 2, 3, 5), False, 1e-3, 0.1, True),
    ((3, 1, 2, 3), False, 1e-5, 0.1, False),
]
for xs, training, eps, momentum, affine in BN:
    c = xs[1]
    x = randn(*xs, scale=2.0) + f32(rng.uniform(-1, 1, (1, c, 1, 1)))
    run_mean0, run_var0 = randn(c, scale=0.5), f32(rng.uniform(0.5, 2.0, c))
    rm, rv = torch.tensor(run_mean0, dtype=torch.float64), torch.tensor(run_var0, dtype=torch.float64)
    title = f'batchNorm2d x {shape_str(xs)} {"training" if training else "eval"} eps {eps:g} momentum {momentum:g}' + ('' if affine else ' no affine')
    case = run('batchNorm2d', title, {'training': training, 'eps': eps, 'momentum': momentum},
               {'x': x, 'gamma': f32(rng.uniform(0.5, 1.5, c)) if affine else None, 'beta': randn(c) if affine else None},
               lambda x, gamma, beta: F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=momentum, eps=eps))
    case['runningMean'] = enc(run_mean0)
    case['runningVar'] = enc(run_var0)
    case['after'] = {'runningMean': enc(rm.numpy()), 'runningVar': enc(rv.numpy())}
    cases.append(case)

# crossEntropy: (logits shape [N, C, ...], logit scale, reduction); labels [N, ...]
CE = [((1, 2), 1.0, 'mean'), ((4, 3), 1.0, 'mean'), ((4, 3), 1.0, 'sum'), ((7, 10), 3.0, 'mean'), ((7, 10), 3.0, 'sum'),
      ((5, 4), 30.0, 'mean'), ((3, 10), 0.1, 'sum'), ((16, 10), 2.0, 'mean'), ((2, 3, 2, 2), 1.0, 'mean'), ((1, 4, 3, 1), 2.0, 'sum')]
for shape, scale, reduction in CE:
    labels = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    title = f'crossEntropy logits {shape_str(shape)} scale {scale:g} reduction {reduction}'
    case = run('crossEntropy', title, {'reduction': reduction}, {'logits': randn(*shape, scale=scale)},
               lambda logits: F.cross_entropy(logits, torch.tensor(labels, dtype=torch.long), reduction=reduction))
    case['labels'] = [int(v) for v in labels.reshape(-1)]
    cases.append(case)

out_path = sys.argv[1] if len(sys.argv) > 1 else OUT
doc_head = {
    'generatedBy': 'tools/torch/cnn_fixtures.py',
    'torch': torch.__version__,
    'numpy': np.__version__,
    'seed': SEED,
    'note': 'Inputs are float32; references computed in float64 and stored rounded to float32. grads[k] = d(sum(output * gradOut))/d(inputs[k]).',
}
os.makedirs(os.path.dirname(out_path) or '.', exist_ok=True)
tmp = out_path + '.tmp'
with open(tmp, 'w') as fh:
    fh.write(json.dumps(doc_head, separators=(',', ':'))[:-1] + ',"cases":[\n')
    fh.write(',\n'.join(json.dumps(c, separators=(',', ':')) for c in cases))
    fh.write('\n]}\n')
os.replace(tmp, out_path)
print(f'{out_path}: {len(cases)} cases, {os.path.getsize(out_path)} bytes, torch {torch.__version__}')
