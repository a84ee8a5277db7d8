"""Colored MNIST environments (Arjovsky et al. 2019, as used in Section 4.3 / Table 2 / Fig. 3; SPEC §2.1, §2.6).

Per restart r (seed s = base_seed + r, base 1234 as the authors' code):

1. shuffle the train pool with ``numpy.random.RandomState(s).shuffle`` (the same permutation the authors'
   ``np.random.seed(s); np.random.shuffle`` uses, drawn through ``permutation``);
2. env0 = shuffled[0::2] with e = 0.2, env1 = shuffled[1::2] with e = 0.1, test env = the test pool with e = 0.9;
3. each environment draws, in this order, label noise then colour flips, as ``rng.rand(n) < p`` from the SAME
   RandomState (the authors use torch.rand; the numbers therefore differ from theirs, the distribution does not);
4. :func:`make_environment`: 2× subsampling to 14×14 (pixel (0,0) kept), label 1 for class < 5, label noise 25 %,
   colour = noisy label flipped with probability e, two channels with channel (1 − colour) zeroed, /255, flattened in
   (channel, row, col) order to 392 features.

The four diagnostic environments of Fig. 3 are drawn afterwards from the same RandomState (fresh noise and colours
for each), from the test pool with e = 0.9.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gs_jax.data.mnist import Pool
from gs_jax.errors import check

LABEL_NOISE = 0.25  # SPEC §2.1 5c
TRAIN_E = (0.2, 0.1)  # SPEC §2.1 4: env0 e = 0.2, env1 e = 0.1
TEST_E = 0.9  # SPEC §2.1 4: reversed correlation
FOUR_ENVS = ("grayscale_digits", "colored_digits", "grayscale_blank", "colored_blank")  # SPEC §2.6 order
FOUR_ENV_ARGS = {  # name -> (gray, mean)
    "grayscale_digits": (True, False),
    "colored_digits": (False, False),
    "grayscale_blank": (True, True),
    "colored_blank": (False, True),
}


@dataclasses.dataclass(frozen=True)
class Environment:
    """One environment: inputs x (n, 392) float32 in (channel, row, col) order and labels y (n,) float32 in {0, 1}.

    ``color`` (n,) holds the colour bit (the kept channel; −1 for grayscale) and ``noisy`` (n,) whether the label
    was flipped, for diagnostics and tests.
    """

    x: np.ndarray
    y: np.ndarray
    color: np.ndarray
    noisy: np.ndarray
    e: float


def subsample(images_nhw: np.ndarray) -> np.ndarray:
    """images[:, ::2, ::2]: 28×28 → 14×14, keeping pixel (0, 0) and every second row/column (no averaging)."""
    check(images_nhw.ndim == 3, f"images must be (n, rows, cols), got shape {images_nhw.shape}")
    return images_nhw[:, ::2, ::2]


def make_environment(
    images_nhw: np.ndarray,
    classes_n: np.ndarray,
    e: float,
    rng: np.random.RandomState,
    gray: bool = False,
    mean: bool = False,
) -> Environment:
    """SPEC §2.1 step 5 for one environment; consumes two ``rng.rand(n)`` draws (label noise, then colour)."""
    check(images_nhw.shape[0] == classes_n.shape[0], "images and classes differ in length")
    check(0.0 <= e <= 1.0, f"colour flip probability e must be in [0, 1], got {e}")
    check(
        classes_n.size == 0 or (classes_n.min() >= 0 and classes_n.max() <= 9),
        "class labels must be digits 0..9",
    )
    img = subsample(images_nhw).astype(np.float32)  # 0..255 units
    n = img.shape[0]
    label = (classes_n < 5).astype(np.float32)
    noisy = rng.rand(n) < LABEL_NOISE
    label = np.abs(label - noisy.astype(np.float32))
    flip = rng.rand(n) < e
    color = np.abs(label - flip.astype(np.float32))
    if mean:  # blank images: every pixel = the global mean pixel of the subsampled images (0-255 units)
        img = np.full_like(img, img.mean(dtype=np.float64))
    x = np.stack([img, img], axis=1)  # (n, 2, 14, 14)
    if gray:
        x = x / 2.0  # both channels img/2: the channel sum is the image
        color_out = np.full(n, -1, dtype=np.int8)
    else:
        keep = color.astype(np.int64)
        x[np.arange(n), 1 - keep] = 0.0  # zero channel (1 - colour): the kept channel index is the colour
        color_out = keep.astype(np.int8)
    x = (x / 255.0).astype(np.float32).reshape(n, 2 * 14 * 14)
    return Environment(x=x, y=label.astype(np.float32), color=color_out, noisy=noisy, e=float(e))


@dataclasses.dataclass(frozen=True)
class RestartData:
    """Everything one restart trains and evaluates on."""

    train: tuple[Environment, ...]  # env0 (e = 0.2), env1 (e = 0.1)
    test: Environment  # e = 0.9
    four: dict[str, Environment]  # Fig. 3 diagnostics, keyed by FOUR_ENVS
    seed: int


def build_restart(pool: Pool, seed: int, four_envs: bool = True, train_e=TRAIN_E) -> RestartData:
    """Environments of one restart from its seed (SPEC §2.1 steps 3-5 and §2.6). ``train_e``: the colour flip
    probabilities of the two training environments (the paper's 0.2, 0.1 by default; other values move the strength
    of the colour feature, as the starvation sweep does)."""
    n = pool.train_images.shape[0]
    check(n >= 2 and n % 2 == 0, f"the train pool needs an even number (≥ 2) of images, got {n}")
    rng = np.random.RandomState(seed)
    perm = rng.permutation(n)  # == shuffling images and (after restoring the state) labels with the same seed
    images, classes = pool.train_images[perm], pool.train_classes[perm]
    env0 = make_environment(images[0::2], classes[0::2], train_e[0], rng)
    env1 = make_environment(images[1::2], classes[1::2], train_e[1], rng)
    test = make_environment(pool.test_images, pool.test_classes, TEST_E, rng)
    four = {}
    if four_envs:
        for name in FOUR_ENVS:
            gray, mean = FOUR_ENV_ARGS[name]
            four[name] = make_environment(
                pool.test_images, pool.test_classes, TEST_E, rng, gray=gray, mean=mean
            )
    return RestartData(train=(env0, env1), test=test, four=four, seed=seed)


def stack_restarts(restarts: list[RestartData]) -> dict[str, np.ndarray]:
    """Stack restarts into arrays with a leading restart axis (the vmap axis of the trainer).

    Returns ``train_x`` (R, 2, n_env, 392), ``train_y`` (R, 2, n_env), ``test_x`` (R, n_test, 392), ``test_y``,
    and ``four_x`` (R, 4, n_test, 392), ``four_y`` (R, 4, n_test) in :data:`FOUR_ENVS` order (when built).
    """
    out = {
        "train_x": np.stack([np.stack([e.x for e in r.train]) for r in restarts]),
        "train_y": np.stack([np.stack([e.y for e in r.train]) for r in restarts]),
        "test_x": np.stack([r.test.x for r in restarts]),
        "test_y": np.stack([r.test.y for r in restarts]),
    }
    if restarts[0].four:
        out["four_x"] = np.stack([np.stack([r.four[k].x for k in FOUR_ENVS]) for r in restarts])
        out["four_y"] = np.stack([np.stack([r.four[k].y for k in FOUR_ENVS]) for r in restarts])
    return out
