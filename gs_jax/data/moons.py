"""Two-moons data of Section 2 / Fig. 1 and Appendix B: the authors' ``two_moons_dataset(seed, margin, rotation)``.

The construction (SPEC §1.1) starts from ``sklearn.datasets.make_moons(300, noise=0.1, random_state=seed)`` and
folds the moons so that the FIRST (horizontal) coordinate separates the classes with a gap of 2Δ around 0:

1. y± = 2y − 1; x₀ −= 0.5; x₁ −= 0.3·y±; x₁ −= mean(x₁);
2. fold: x₁ ← −y±·|x₁|, then shift by the margin: x₁ ← −y±·(|x₁| + Δ);
3. swap the columns (the separating coordinate becomes the horizontal axis x₁ → column 0), optionally rotate
   ``X @ R(θ)`` (row vectors times R, a clockwise rotation of the points by θ).

Δ = +0.1: linearly separable by the horizontal axis with a gap ≥ 0.2; Δ = −0.1: points with |x₁| < 0.1 cross over
and the data is not linearly separable. Class 1 lies at negative horizontal values, class 0 at positive ones.
Nothing is downloaded: the data is synthetic and deterministic in ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gs_jax.errors import check

N_SAMPLES = 300  # moon_fig_{1,2,3}.py: make_moons(n_samples=300, ...)
NOISE = 0.1  # moon_fig_{1,2,3}.py: noise=0.1


def two_moons(
    seed: int, margin: float, rotation_deg: float = 0.0, *, n_samples: int = N_SAMPLES, noise: float = NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """The authors' two-moons dataset for one seed: ``(X_n2 float64, y_n int64 in {0, 1})``.

    ``margin`` is Δ (half the gap on the horizontal axis; negative values make the classes overlap) and
    ``rotation_deg`` the optional rotation of Figure_3's '45 deg Rotation' panel.
    """
    from sklearn.datasets import make_moons

    check(int(seed) == seed and seed >= 0, f"seed must be a non-negative integer, got {seed!r}")
    check(np.isfinite(margin), f"margin Δ must be finite, got {margin!r}")
    check(np.isfinite(rotation_deg), f"rotation_deg must be finite, got {rotation_deg!r}")
    check(n_samples >= 4, f"n_samples must be ≥ 4, got {n_samples}")
    x_n2, y_n = make_moons(n_samples=n_samples, noise=noise, random_state=int(seed))
    x_n2 = np.asarray(x_n2, dtype=np.float64).copy()
    y_pm = 2.0 * y_n - 1.0
    x_n2[:, 0] -= 0.5
    x_n2[:, 1] -= 0.3 * y_pm
    x_n2[:, 1] -= np.mean(x_n2[:, 1])
    x_n2[:, 1] *= np.sign(-x_n2[:, 1] * y_pm)
    x_n2[:, 1] -= y_pm * margin
    x_n2 = x_n2[:, ::-1].copy()
    if rotation_deg:
        theta = np.radians(rotation_deg)
        c, s = np.cos(theta), np.sin(theta)
        x_n2 = x_n2 @ np.array([[c, -s], [s, c]])
    return x_n2, np.asarray(y_n, dtype=np.int64)


def stack_seeds(
    seeds: Sequence[int], margin: float, rotation_deg: float = 0.0, *, n_samples: int = N_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """One dataset per seed, stacked: ``(X_sn2 float32, y_sn float32 in {0, 1})`` for a vmapped trainer."""
    check(len(seeds) >= 1, "need at least one seed")
    pairs = [two_moons(s, margin, rotation_deg, n_samples=n_samples) for s in seeds]
    x = np.stack([p[0] for p in pairs]).astype(np.float32)
    y = np.stack([p[1] for p in pairs]).astype(np.float32)
    return x, y


def eval_grid(n: int = 100, lim: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The authors' evaluation grid: ``linspace(-lim, lim, n)`` per axis, 'ij' meshgrid, flattened.

    Returns ``(axis_g, points_g2)`` with ``points[i * n + j] = (axis[i], axis[j])`` (first coordinate slowest).
    """
    check(n >= 2 and lim > 0, f"grid needs n ≥ 2 and lim > 0, got n={n}, lim={lim}")
    axis = np.linspace(-lim, lim, n, dtype=np.float32)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    return axis, np.stack([a.ravel(), b.ravel()], axis=1)


def check_labels(y: np.ndarray) -> None:
    """Raise :class:`GsJaxError` unless every label is 0 or 1."""
    y = np.asarray(y)
    check(np.all((y == 0) | (y == 1)), f"labels must be in {{0, 1}}, got values {np.unique(y)[:5]}")
