"""PyTorch peer of the NTK Gram benchmark: K = J Jᵀ of the Colored MNIST MLP by torch.func, two ways.

    python benchmarks/peers/torch_ntk.py                      # n ∈ {256, 1024}; NTK-vector products up to n = 256
    python benchmarks/peers/torch_ntk.py --sizes 256 1024 4096 --dense-max 1024
    python benchmarks/peers/torch_ntk.py --small              # smoke run: n ∈ {64, 128}

The network is the CMNIST MLP, Linear(392 → 300) → ReLU → Linear(300 → 300) → ReLU → Linear(300 → 1) (208,501
parameters, Xavier-uniform weights, zero biases), in float32, on n standard-normal inputs. The empirical NTK Gram
K[i, j] = ⟨∂f(x_i)/∂θ, ∂f(x_j)/∂θ⟩ (n × n) is computed with ``torch.func`` by:

- ``jacobian`` (Jacobian contraction): per-example Jacobians by ``vmap(jacrev(f))`` over the inputs (one (n, ·)
  block per parameter tensor), then K = Σ over parameter tensors of J_p J_pᵀ;
- ``ntvp`` (NTK-vector products): one ``vjp`` of f at x₁ gives the pullback; K's rows are obtained by pulling back
  each standard-basis vector of the output space (``vjp``) and pushing the resulting parameter tangent forward
  through f at x₂ (``jvp``), vmapped over the basis (``--chunk`` bounds how many at once). It is run only up to
  ``--dense-max`` examples (default 256), as in the gs-jax benchmark.

``first_s`` is the first call, ``warm_s`` the best of ``--repeats`` further calls on the same shapes, ``peak_mib``
the process's peak resident memory during the first call minus its resident memory before (Linux VmHWM, reset per
measurement); ``maxrel`` is max|K − K_jacobian| / max|K_jacobian|. The process's overall peak RSS is also given.
Prints ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import PeakWindow, emit, environment, setup_threads
from torch.func import functional_call, jacrev, jvp, vjp, vmap
from torch_cmnist import make_mlp


def ntk_jacobian(model, params, x: torch.Tensor) -> torch.Tensor:
    """Jacobian contraction: vmap(jacrev) per example, then Σ_p J_p J_pᵀ."""

    def f_single(p, x_d):
        return functional_call(model, p, (x_d.unsqueeze(0),)).squeeze(0)  # (1,)

    jac = vmap(jacrev(f_single), in_dims=(None, 0))(params, x)  # name -> (n, 1, *shape)
    n = x.shape[0]
    k = torch.zeros(n, n, dtype=x.dtype)
    for j in jac.values():
        jp = j.reshape(n, -1)
        k.addmm_(jp, jp.T)
    return k


def ntk_ntvp(model, params, x1: torch.Tensor, x2: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """NTK-vector products: pull each output basis vector back (vjp at x1), push it forward (jvp at x2)."""

    def f_at(x):
        return lambda p: functional_call(model, p, (x,))  # (n, 1)

    out, pullback = vjp(f_at(x1), params)
    f2 = f_at(x2)

    def row(cotangent):
        (tangent,) = pullback(cotangent)
        return jvp(f2, (params,), (tangent,))[1]  # (n2, 1)

    n1, o = out.shape
    basis = torch.eye(n1 * o, dtype=out.dtype).reshape(n1 * o, n1, o)
    rows = vmap(row, chunk_size=chunk)(basis)  # (n1 * o, n2, o)
    return rows.reshape(n1, o, x2.shape[0], o)[:, 0, :, 0]  # one output: (n1, n2)


def measure(fn, repeats: int) -> tuple[torch.Tensor, dict]:
    with PeakWindow() as peak:
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
    warm = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        warm = min(warm, time.perf_counter() - t0)
    return out, {"first_s": round(first, 4), "warm_s": round(warm, 4), "peak_mib": round(peak.mib, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", help="Gram sizes n (default 256 1024; --small 64 128)")
    ap.add_argument("--dense-max", type=int, default=256, help="largest n for the NTK-vector-product method")
    ap.add_argument(
        "--chunk", type=int, default=0, help="ntvp: basis vectors per vmap chunk (0: all at once)"
    )
    ap.add_argument("--hidden", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2, help="warm calls per method; the fastest is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: all CPUs)")
    ap.add_argument("--small", action="store_true", help="smoke run: n ∈ {64, 128}, one warm call")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([64, 128] if args.small else [256, 1024])
    repeats = 1 if args.small else args.repeats
    threads = setup_threads(args.threads)
    env = environment(threads)

    torch.manual_seed(args.seed)
    model = make_mlp(392, args.hidden)
    params = {k: v.detach() for k, v in model.named_parameters()}
    m = sum(v.numel() for v in params.values())
    rows = []
    t_all = time.perf_counter()
    for n in sizes:
        x = torch.randn(n, 392, generator=torch.Generator().manual_seed(args.seed + n))
        ref, r = measure(lambda x=x: ntk_jacobian(model, params, x), repeats)
        scale = float(ref.abs().max())
        rows.append({"n": n, "method": "jacobian", **r, "maxrel": 0.0, "trace": round(float(ref.trace()), 3)})
        if n <= args.dense_max:
            k, r = measure(lambda x=x: ntk_ntvp(model, params, x, x, args.chunk or None), repeats)
            rows.append(
                {
                    "n": n,
                    "method": "ntvp",
                    **r,
                    "maxrel": float(f"{float((k - ref).abs().max()) / scale:.2e}"),
                }
            )
            del k
        del ref
    emit(
        {
            "harness": "torch_ntk",
            "protocol": "empirical NTK Gram of the 392-300-300-1 MLP by torch.func (float32)",
            "m": m,
            "sizes": sizes,
            "dense_max": args.dense_max,
            "chunk": args.chunk or None,
            "repeats": repeats,
            "rows": rows,
            "wall_s": round(time.perf_counter() - t_all, 3),
            **env,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
