"""Write the exact data gs-jax trains on to .npz files that the PyTorch peer harnesses read (run in the MAIN env).

    python benchmarks/peers/export_data.py                       # default pool, restarts 1234..1243, moons seeds 0..9
    python benchmarks/peers/export_data.py --dataset mnist --data-dir DIR   # the full 60k MNIST pool instead

Outputs (default directory ``runs/bench/peer_data/``):

- ``cmnist_restarts.npz``: Colored MNIST training and test environments of restarts with seeds
  ``first_seed .. first_seed + restarts - 1`` built by ``gs_jax.data.colored_mnist.build_restart`` on
  ``gs_jax.data.mnist.load_pool()`` (the same arrays as ``benchmarks/cmnist.py``). Inputs are stored as their uint8
  pixel values (``train_x_u8`` (R, 2, n_env, 392), ``test_x_u8`` (R, n_test, 392)); ``u8.astype(float32) / 255``
  gives back gs-jax's float32 inputs bit for bit (checked here before writing). Labels ``train_y`` (R, 2, n_env) and
  ``test_y`` (R, n_test) are uint8 in {0, 1}. Also ``seeds``, ``pool`` (the pool's name) and ``e`` (colour flip
  probabilities of env0, env1, test).
- ``fig2.npz``: the Fig. 2 analogue's training set, Fashion-MNIST pullover (2) vs coat (4) in file order
  (``robustness_data.select_classes``): ``x_u8`` (n, 28, 28) uint8 pixels, ``y`` (n,) uint8 labels 0/1.
- ``moons.npz``: two-moons data of ``gs_jax.data.moons.stack_seeds`` for seeds ``0 .. seeds - 1`` at margin Δ
  (default +0.1): ``x`` (S, 300, 2) float32, ``y`` (S, 300) float32 in {0, 1}, ``seeds``, ``delta``.

The peers never import gs_jax or jax: this file is the only bridge.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gs_jax.data import colored_mnist, mnist, moons  # noqa: E402


def _to_u8(x: np.ndarray) -> np.ndarray:
    """Pixel values of gs-jax's float32 inputs (x = pixel / 255); exact, checked by the round trip."""
    u8 = np.rint(x.astype(np.float64) * 255.0)
    if u8.min() < 0 or u8.max() > 255:
        raise SystemExit("export: inputs outside [0, 1]; not pixel / 255 values")
    u8 = u8.astype(np.uint8)
    if not np.array_equal(u8.astype(np.float32) / np.float32(255.0), x):
        raise SystemExit("export: uint8 round trip is not exact; refusing to write inexact peer data")
    return u8


def export_cmnist(out: Path, dataset: str, data_dir: str, restarts: int, first_seed: int) -> dict:
    pool = mnist.load_pool(dataset=dataset, directory=data_dir)
    seeds = [first_seed + r for r in range(restarts)]
    data = colored_mnist.stack_restarts(
        [colored_mnist.build_restart(pool, s, four_envs=False) for s in seeds]
    )
    arrays = {
        "train_x_u8": _to_u8(data["train_x"]),
        "train_y": data["train_y"].astype(np.uint8),
        "test_x_u8": _to_u8(data["test_x"]),
        "test_y": data["test_y"].astype(np.uint8),
        "seeds": np.asarray(seeds, dtype=np.int64),
        "pool": np.asarray(pool.name),
        "e": np.asarray([*colored_mnist.TRAIN_E, colored_mnist.TEST_E], dtype=np.float64),
    }
    np.savez(out, **arrays)
    r, e, n, d = data["train_x"].shape
    return {
        "file": str(out),
        "pool": pool.name,
        "restarts": r,
        "envs": e,
        "n_env": n,
        "n_test": data["test_x"].shape[1],
        "d": d,
    }


def export_moons(out: Path, seeds: int, delta: float) -> dict:
    seed_list = list(range(seeds))
    x, y = moons.stack_seeds(seed_list, delta)
    np.savez(
        out,
        x=x.astype(np.float32),
        y=y.astype(np.float32),
        seeds=np.asarray(seed_list, dtype=np.int64),
        delta=np.float64(delta),
    )
    return {"file": str(out), "seeds": seeds, "n": x.shape[1], "delta": delta}


def export_fig2(out: Path, data_dir: str) -> dict:
    from gs_jax.experiments.robustness_data import select_classes

    images, labels = mnist.load_idx_split(
        mnist.resolve_dir("fashion-mnist", data_dir), "train", "fashion-mnist"
    )
    x, y = select_classes(images, labels.astype(np.int32), (2, 4))
    np.savez(out, x_u8=x.astype(np.uint8), y=y.astype(np.uint8))
    return {"file": str(out), "n": len(y), "classes": "pullover (2) vs coat (4)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=str(REPO / "runs" / "bench" / "peer_data"))
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    ap.add_argument(
        "--data-dir", default="", help="IDX directory (default: GS_DATA_DIR, else the embedded pool)"
    )
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1234)
    ap.add_argument("--moons-seeds", type=int, default=10)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--skip-cmnist", action="store_true")
    ap.add_argument("--skip-moons", action="store_true")
    ap.add_argument(
        "--fig2", action="store_true", help="also write fig2.npz (needs the Fashion-MNIST IDX files)"
    )
    ap.add_argument(
        "--fashion-dir", default="", help="Fashion-MNIST IDX directory (default: GS_DATA_DIR or Debian's)"
    )
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not args.skip_cmnist:
        info = export_cmnist(
            out_dir / "cmnist_restarts.npz", args.dataset, args.data_dir, args.restarts, args.first_seed
        )
        print(f"export: Colored MNIST {info}")
    if not args.skip_moons:
        info = export_moons(out_dir / "moons.npz", args.moons_seeds, args.delta)
        print(f"export: two moons {info}")
    if args.fig2:
        print(f"export: Fig. 2 {export_fig2(out_dir / 'fig2.npz', args.fashion_dir)}")
    print(f"export: done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
