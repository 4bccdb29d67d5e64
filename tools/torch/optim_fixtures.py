# Reference numbers for libs/cnn's optimizers and learning-rate schedules, computed with PyTorch.
# usage (from the repo root): /usr/bin/python3 tools/torch/optim_fixtures.py
# writes libs/cnn/test/fixtures/optim.json, which libs/cnn/test/optim.test.ts checks against (rtol 1e-5).
import json, os, torch

torch.set_default_dtype(torch.float32)
OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'libs', 'cnn', 'test', 'fixtures', 'optim.json')
STEPS = 6


def floats(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_params():
    g = torch.Generator().manual_seed(1)
    return [('a.weight', torch.randn(2, 3, generator=g)), ('b.bias', torch.randn(4, generator=g))]


def make_grads():
    g = torch.Generator().manual_seed(2)
    return [[torch.randn(2, 3, generator=g), torch.randn(4, generator=g)] for _ in range(STEPS)]


LRS = [0.1, 0.05, 0.2, 0.1, 0.01, 0.3]

OPTIMIZERS = [
    ('sgd plain', {'type': 'sgd', 'lr': 0.1}, lambda ps: torch.optim.SGD(ps, lr=0.1)),
    ('sgd momentum 0.9', {'type': 'sgd', 'lr': 0.1, 'momentum': 0.9}, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    ('sgd momentum dampening weight decay', {'type': 'sgd', 'lr': 0.1, 'momentum': 0.8, 'dampening': 0.3, 'weightDecay': 0.05},
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.05)),
    ('sgd nesterov weight decay', {'type': 'sgd', 'lr': 0.1, 'momentum': 0.9, 'nesterov': True, 'weightDecay': 0.01},
     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ('adam defaults', {'type': 'adam', 'lr': 0.1}, lambda ps: torch.optim.Adam(ps, lr=0.1)),
    ('adam L2 weight decay custom betas', {'type': 'adam', 'lr': 0.1, 'betas': [0.8, 0.99], 'eps': 1e-6, 'weightDecay': 0.1},
     lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ('adamw defaults', {'type': 'adamw', 'lr': 0.1}, lambda ps: torch.optim.AdamW(ps, lr=0.1)),
    ('adamw decoupled weight decay', {'type': 'adamw', 'lr': 0.1, 'betas': [0.85, 0.95], 'weightDecay': 0.2},
     lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.85, 0.95), weight_decay=0.2)),
]


def optimizer_cases():
    named = make_params()
    grads = make_grads()
    cases = []
    for title, spec, make in OPTIMIZERS:
        ps = [torch.nn.Parameter(t.clone()) for _, t in named]
        opt = make(ps)
        after = []
        for k in range(STEPS):
            for p, g in zip(ps, grads[k]):
                p.grad = g.clone()
            for group in opt.param_groups:
                group['lr'] = LRS[k]
            opt.step()
            after.append([floats(p) for p in ps])
        cases.append({'title': title, 'spec': spec, 'after': after})
    return {
        'params': [{'name': n, 'shape': list(t.shape), 'data': floats(t)} for n, t in named],
        'grads': [[floats(g) for g in step] for step in grads],
        'lrs': LRS,
        'cases': cases,
    }


TOTAL = 20
BASE_LR = 0.5

SCHEDULES = [
    ('constant', {'type': 'constant'}, lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0)),
    ('step default gamma', {'type': 'step', 'stepSize': 5}, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5)),
    ('step gamma 0.5', {'type': 'step', 'stepSize': 3, 'gamma': 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ('cosine', {'type': 'cosine'}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL)),
    ('cosine minLr', {'type': 'cosine', 'minLr': 0.01}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL, eta_min=0.01)),
    ('onecycle defaults', {'type': 'onecycle'},
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=BASE_LR, total_steps=TOTAL, anneal_strategy='cos',
                                                   div_factor=25, final_div_factor=1e4, three_phase=False, cycle_momentum=False)),
    ('onecycle custom', {'type': 'onecycle', 'pctStart': 0.25, 'divFactor': 10, 'finalDivFactor': 100},
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=BASE_LR, total_steps=TOTAL, pct_start=0.25, anneal_strategy='cos',
                                                   div_factor=10, final_div_factor=100, three_phase=False, cycle_momentum=False)),
]


def schedule_cases():
    cases = []
    for title, spec, make in SCHEDULES:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=BASE_LR)
        sched = make(opt)
        lrs = []
        for _ in range(TOTAL):
            lrs.append(opt.param_groups[0]['lr'])
            opt.step()
            sched.step()
        cases.append({'title': title, 'spec': spec, 'lrs': lrs})
    return {'baseLr': BASE_LR, 'totalSteps': TOTAL, 'cases': cases}


fixture = {
    'generatedBy': 'tools/torch/optim_fixtures.py',
    'torch': torch.__version__,
    'optimizers': optimizer_cases(),
    'schedules': schedule_cases(),
}
with open(OUT, 'w') as f:
    json.dump(fixture, f)
    f.write('\n')
print(f'wrote {os.path.normpath(OUT)}')
