"""PyTorch peer of the Fig. 2 protocol: the authors' batch-1 training loop (``Figure_2/main.py``), data swapped in.

    python benchmarks/peers/torch_fig2.py                 # one epoch of the exported training set (12,000 steps)
    python benchmarks/peers/torch_fig2.py --steps 2000    # the first 2,000 steps of the epoch
    python benchmarks/peers/torch_fig2.py --small         # smoke run: 200 steps

The loop is the authors' ``train_ce`` (SPEC §5.1): ``DataLoader(train_dataset, batch_size=1, shuffle=True)``,
``model.train()``, per step ``optimizer.zero_grad()``, ``output = model(x)``,
``loss = F.cross_entropy(output, y) + sd_coef * (output ** 2).sum()``, ``loss.backward()``, ``optimizer.step()``,
``acc_loss += loss.item()``; ``optim.SGD(lr=1e-3, momentum=0.9)``. What changes: the data are the exported
Fashion-MNIST pullover/coat training images (``runs/bench/peer_data/fig2.npz``, ``export_data.py``) held as one
normalised tensor ((x/255 − 0.5)/0.5, the authors' ``Normalize(0.5, 0.5)``) in a ``TensorDataset`` — the authors
decode and normalise every image inside ``__getitem__`` at each step, which would only make their loop slower —, no
tqdm bar, and ``.cuda()`` calls dropped (CPU). Model: the Fig. 2 network for 28×28×1 inputs (conv 5×5 1→12, leaky
ReLU, max-pool 2, conv 5×5 12→32, leaky ReLU, max-pool 2, dense 512 → 240 → 192 → 2, leaky ReLU between; PyTorch
default init after ``torch.manual_seed(seed)``).

Times one pass of ``--steps`` steps (default: the whole epoch) after ``--warmup`` untimed steps (first-call set-up),
and reports milliseconds per step and the mean training loss of the timed steps. Prints ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from _common import DATA_DIR, emit, environment, load_npz, setup_threads
from torch import nn


def make_net(n_classes: int = 2, c: int = 1, flat: int = 512) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c, 12, 5), nn.LeakyReLU(), nn.MaxPool2d(2),
        nn.Conv2d(12, 32, 5), nn.LeakyReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(flat, 240), nn.LeakyReLU(), nn.Linear(240, 192), nn.LeakyReLU(), nn.Linear(192, n_classes),
    )  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: one epoch; --small 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps before the timing")
    ap.add_argument("--sd-coef", type=float, default=0.0, help="0: ERM; 0.1: the authors' SD run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: all CPUs)")
    ap.add_argument("--small", action="store_true", help="smoke run: 200 steps")
    args = ap.parse_args(argv)
    threads = setup_threads(args.threads)
    env = environment(threads)
    d = load_npz(DATA_DIR / "fig2.npz", "Fig. 2")
    x = (torch.from_numpy(d["x_u8"]).float().div(255.0).sub(0.5).div(0.5)).unsqueeze(1)  # (n, 1, 28, 28)
    y = torch.from_numpy(d["y"]).long()
    n = x.shape[0]
    steps = args.steps or (200 if args.small else n)

    torch.manual_seed(args.seed)
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=1, shuffle=True)

    def run(count: int) -> tuple[float, int]:
        model.train()
        acc_loss, c = 0.0, 0
        while c < count:
            for data1, label1 in loader:
                optimizer.zero_grad()
                output = model(data1)
                loss = F.cross_entropy(output, label1) + args.sd_coef * (output**2).sum()
                loss.backward()
                optimizer.step()
                acc_loss += loss.item()
                c += 1
                if c == count:
                    break
        return acc_loss / c, c

    run(args.warmup)
    t0, c0 = time.perf_counter(), time.process_time()
    loss, done = run(steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    emit(
        {
            "harness": "torch_fig2",
            "protocol": "authors' Figure_2 train_ce loop, batch 1, SGD lr 1e-3 m 0.9, Fashion pullover/coat",
            "n_train": n,
            "steps": done,
            "sd_coef": args.sd_coef,
            "wall_s": round(wall, 4),
            "ms_per_step": round(1e3 * wall / done, 4),
            "cpu_ms_per_step": round(1e3 * cpu / done, 4),
            "epoch_s_estimate": round(wall / done * n, 2),
            "mean_train_loss": round(loss, 5),
            "params": sum(p.numel() for p in model.parameters()),
            **env,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
