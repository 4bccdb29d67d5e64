# PyTorch side of `npm run bench -- --tta`: time to a test accuracy with Stride's default LeNet-5 job
# recipe — the zoo network, batch 64, Adam (lr 3e-3, betas 0.9/0.999, eps 1e-8) under a one-cycle
# schedule over the job's length (OneCycleLR: pct_start 0.3, cosine, div 25, final div 1e4, no
# momentum cycling), inputs normalised with MNIST's mean and std — evaluated on the whole test split
# every EVAL_EVERY steps. Evaluation time is excluded from train_s, as on the Stride side.
#
#   python3 torch_tta.py THREADS SEED EVAL_EVERY [TARGET EPOCHS LR]
#
# Prints one JSON line: when TARGET was first reached (step, epochs, train_s, wall_s, acc) or null,
# and the evaluation history. MNIST_DIR points at the IDX files (read by torch_lenet.load).
import json, sys, time

import torch
import torch.nn.functional as F

# The same data loading and network as the speed benchmark (this script's folder is on sys.path).
from torch_lenet import LeNet5, load

BATCH = 64


def main():
    threads, seed, eval_every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    target = float(sys.argv[4]) if len(sys.argv) > 4 else 0.98
    epochs = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    lr = float(sys.argv[6]) if len(sys.argv) > 6 else 3e-3
    torch.set_num_threads(threads)
    xtr, ytr = load('train')
    xte, yte = load('t10k')
    torch.manual_seed(seed)
    model = LeNet5()
    steps_per_epoch = (len(xtr) + BATCH - 1) // BATCH
    total = max(1, round(epochs * steps_per_epoch))
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.3, anneal_strategy='cos',
                                                cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    g = torch.Generator().manual_seed(seed)

    def evaluate():
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                correct += (model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
        model.train()
        return correct / len(xte)

    train_s, step, hit, history = 0.0, 0, None, []
    wall0 = time.perf_counter()
    eval_s = 0.0
    while step < total and hit is None:
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), BATCH):
            t = time.perf_counter()
            ix = perm[i:i + BATCH]
            opt.zero_grad()
            F.cross_entropy(model(xtr[ix]), ytr[ix]).backward()
            opt.step()
            sched.step()
            train_s += time.perf_counter() - t
            step += 1
            if step % eval_every == 0 or step == total:
                t = time.perf_counter()
                acc = evaluate()
                eval_s += time.perf_counter() - t
                history.append([step, round(step / steps_per_epoch, 4), acc, round(train_s, 3)])
                if acc >= target:
                    hit = {'step': step, 'epochs': round(step / steps_per_epoch, 4), 'train_s': round(train_s, 3),
                           'wall_s': round(time.perf_counter() - wall0 - eval_s, 3), 'acc': acc}
                    break
            if step >= total:
                break
    print(json.dumps({'impl': 'torch', 'threads': threads, 'seed': seed, 'target': target, 'eval_every': eval_every,
                      'total_steps': total, 'hit': hit, 'history': history, 'torch': torch.__version__}), flush=True)


main()
