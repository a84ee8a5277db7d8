"""The images of the robustness experiment (Section 4.2; SPEC §5, §5.1): Fashion-MNIST IDX files or CIFAR pickles,
a class subset relabelled 0, 1, …, a validation split held out of the training set, pixels scaled to a part's
input range (Table 1: [0, 1]; Fig. 2: [-1, 1], the authors' ``Normalize(0.5, 0.5)``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gs_jax.data import cifar
from gs_jax.data import mnist as mnist_data
from gs_jax.errors import check

DATASETS = ("fashion-mnist", "cifar2", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray  # (n, H, W, C) float32 in the part's pixel range
    y: np.ndarray  # (n,) int32


@dataclasses.dataclass(frozen=True)
class Raw:
    """A data set as its files hold it: uint8 NHWC (or NHW) images and integer labels, in file order."""

    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def scale(images_u8: np.ndarray, pixel_range) -> np.ndarray:
    """uint8 pixels p → lo + (hi − lo)·p/255 in float32, with a channel axis (NHWC)."""
    lo, hi = (float(v) for v in pixel_range)
    x = np.asarray(images_u8, np.float32) / np.float32(255.0) * np.float32(hi - lo) + np.float32(lo)
    return x[..., None] if x.ndim == 3 else x


def load_raw(data_cfg) -> Raw:
    """``data_cfg.dataset`` from ``data_cfg.dir`` (Fashion-MNIST: also GS_DATA_DIR or the Debian package's folder;
    CIFAR: required), the first ``max_train`` / ``max_test`` images when those are > 0."""
    d = data_cfg
    check(d.dataset in DATASETS, f"unknown data.dataset {d.dataset!r}; choose {', '.join(DATASETS)}")
    if d.dataset == "fashion-mnist":
        directory = mnist_data.resolve_dir("fashion-mnist", d.dir)
        train = mnist_data.load_idx_split(directory, "train", "fashion-mnist", verify=d.verify)
        test = mnist_data.load_idx_split(directory, "test", "fashion-mnist", verify=d.verify)
    else:
        which = "cifar100" if d.dataset == "cifar100" else "cifar10"
        tr = cifar.load_split(which, "train", d.dir, verify=d.verify)
        te = cifar.load_split(which, "test", d.dir, verify=d.verify)
        train, test = (tr.images, tr.labels), (te.images, te.labels)

    def cap(a, m):
        return a if m <= 0 else a[:m]

    return Raw(
        d.dataset,
        (cap(train[0], d.max_train), cap(train[1], d.max_train).astype(np.int32)),
        (cap(test[0], d.max_test), cap(test[1], d.max_test).astype(np.int32)),
    )


def select_classes(images, labels, classes) -> tuple[np.ndarray, np.ndarray]:
    """Keep the images of ``classes`` (in file order) relabelled 0, 1, … in the order given; () keeps all."""
    if not classes:
        return images, labels
    keep = np.isin(labels, classes)
    relabel = {int(c): i for i, c in enumerate(classes)}
    return images[keep], np.array([relabel[int(v)] for v in labels[keep]], np.int32)


def part_splits(raw: Raw, classes, pixel_range, n_val: int) -> tuple[Split, Split | None, Split, int]:
    """(train, validation or None, test, number of classes) of one part; the validation images are held out of the
    training set by a fixed ``RandomState(0)`` permutation (its last ``n_val`` images)."""
    (tx, ty), (sx, sy) = raw.train, raw.test
    tx, ty = select_classes(tx, ty, classes)
    sx, sy = select_classes(sx, sy, classes)
    check(len(ty) > 0, f"the training set holds no image of the classes {tuple(classes)}")
    k = len(classes) if classes else int(max(ty.max(), sy.max() if len(sy) else 0)) + 1
    check(len(ty) > n_val, f"the training set holds {len(ty)} images; cannot hold out {n_val} for validation")
    check(len(sy) > 0, "the test set holds no image of the selected classes")
    val = None
    if n_val > 0:
        perm = np.random.RandomState(0).permutation(len(ty))
        tr_idx, va_idx = np.sort(perm[:-n_val]), np.sort(perm[-n_val:])
        val = Split(scale(tx[va_idx], pixel_range), ty[va_idx])
        tx, ty = tx[tr_idx], ty[tr_idx]
    return Split(scale(tx, pixel_range), ty), val, Split(scale(sx, pixel_range), sy), k
