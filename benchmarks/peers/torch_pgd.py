"""PyTorch peer of the PGD attack benchmark: L∞ PGD with random start on a small LeNet-like CNN, images per second.

    python benchmarks/peers/torch_pgd.py                  # batch 256, 5 timed attacks
    python benchmarks/peers/torch_pgd.py --small          # smoke run: batch 64, 1 timed attack

Attack (the Table 1 OOD column's settings, SPEC §5.1): ε = 5/255, step α = 0.5/255, 10 steps, random start
δ₀ ~ U(−ε, ε), inputs clipped to [0, 1]; each step x ← x + α·sign(∇ₓ CE(f(x), y)) (mean cross-entropy over the
batch), then projected back onto the ε-ball around the clean input and clipped to [0, 1].

Model (the Fig. 2 network of SPEC §5.1, for 28×28×1 inputs): conv 5×5 1→12, leaky ReLU, max-pool 2, conv 5×5
12→32, leaky ReLU, max-pool 2, dense 512 → 240 → 192 → 10 with leaky ReLU (slope 0.01) between; PyTorch default
init, random weights (``--seed``), eval mode. Inputs are random U[0, 1) images (N, 1, 28, 28) with random labels.

``first_s`` is the first attack (one-time set-up included), ``warm_s`` the best of ``--repeats`` further attacks on
the same batch; ``images_per_s`` = batch / warm_s. Also reported: the fraction of the batch whose prediction the
attack changed, clean and robust accuracy against the random labels (robust: not misclassified at any iterate, the
random start and the final point included) and the largest |x_adv − x| (≤ ε by construction). Prints ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from _common import PeakWindow, emit, environment, setup_threads
from torch import nn

EPS = 5 / 255
ALPHA = 0.5 / 255
STEPS = 10


def make_cnn(n_classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 12, 5),  # 28 → 24
        nn.LeakyReLU(),
        nn.MaxPool2d(2),  # → 12
        nn.Conv2d(12, 32, 5),  # → 8
        nn.LeakyReLU(),
        nn.MaxPool2d(2),  # → 4
        nn.Flatten(),  # 32·4·4 = 512
        nn.Linear(512, 240),
        nn.LeakyReLU(),
        nn.Linear(240, 192),
        nn.LeakyReLU(),
        nn.Linear(192, n_classes),
    )


def pgd(model, x, y, eps: float, alpha: float, steps: int, generator=None):
    """L∞ PGD with a uniform random start; gradients are taken with respect to the input only.

    Returns ``(x_adv, fooled)``: ``fooled`` (n,) marks the examples misclassified at some iterate (start and
    final point included), i.e. robust accuracy = 1 − mean(fooled).
    """
    delta = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
    adv = (x + delta).clamp(0.0, 1.0).detach()
    fooled = torch.zeros(x.shape[0], dtype=torch.bool)
    for _ in range(steps):
        adv.requires_grad_(True)
        logits = model(adv)
        loss = F.cross_entropy(logits, y)
        (grad,) = torch.autograd.grad(loss, adv)
        fooled |= logits.detach().argmax(1) != y
        adv = adv.detach() + alpha * grad.sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0.0, 1.0).detach()
    with torch.no_grad():
        fooled |= model(adv).argmax(1) != y
    return adv, fooled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, help="images per attack (default 256; --small 64)")
    ap.add_argument("--repeats", type=int, help="timed warm attacks (default 5; --small 1)")
    ap.add_argument("--eps", type=float, default=EPS)
    ap.add_argument("--alpha", type=float, default=ALPHA)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: all CPUs)")
    ap.add_argument("--small", action="store_true", help="smoke run: batch 64, one warm attack")
    args = ap.parse_args(argv)
    batch = args.batch or (64 if args.small else 256)
    repeats = args.repeats or (1 if args.small else 5)
    threads = setup_threads(args.threads)
    env = environment(threads)

    torch.manual_seed(args.seed)
    model = make_cnn().eval()
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand(batch, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)

    def attack():
        return pgd(
            model, x, y, args.eps, args.alpha, args.steps, torch.Generator().manual_seed(args.seed + 2)
        )

    with PeakWindow() as peak:
        t0 = time.perf_counter()
        adv, fooled = attack()
        first = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        adv, fooled = attack()
        warm = min(warm, time.perf_counter() - t0)
    with torch.no_grad():
        clean_pred = model(x).argmax(1)
        changed = float((model(adv).argmax(1) != clean_pred).float().mean())
        clean_acc = float((clean_pred == y).float().mean())
    emit(
        {
            "harness": "torch_pgd",
            "protocol": "L-inf PGD, random start, on a LeNet-like CNN (28x28x1), random weights and inputs",
            "batch": batch,
            "eps": args.eps,
            "alpha": args.alpha,
            "steps": args.steps,
            "repeats": repeats,
            "first_s": round(first, 4),
            "warm_s": round(warm, 4),
            "images_per_s": round(batch / warm, 1),
            "ms_per_image": round(1e3 * warm / batch, 4),
            "peak_mib_first": round(peak.mib, 1),
            "changed_frac": round(changed, 4),
            "clean_acc": round(clean_acc, 4),
            "robust_acc": round(1.0 - float(fooled.float().mean()), 4),
            "max_abs_delta": float(f"{float((adv - x).abs().max()):.6g}"),
            "params": sum(p.numel() for p in model.parameters()),
            **env,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
