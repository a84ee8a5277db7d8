"""The group benchmarks' data sets: name → loader, each returning train / validation / test splits with labels and
group labels, the one way a group-robustness benchmark gets its data (``configs/worst_group.py``'s ``data`` block).

A split holds ``x`` (images), ``y`` (binary labels {0, 1}) and ``group`` (``0..G−1``; for a binary task with a
spurious attribute a ∈ {0, 1}, ``group = 2·y + a``, the layout ``algorithms.logit_adjust``'s group prior reads).
A loader takes the ``data`` config block (and a progress meter for slow decodes) and returns a :class:`GroupData`
with the splits, the group names and a one-line description::

    data = groups.load(cfg.data)                      # cfg.data.dataset names the loader
    data.train.x, data.train.y, data.train.group, data.group_names, data.info()

Adding a data set = its loader here (:func:`register`), its config entry (the keys it reads in ``data``), its
test. Registered: ``dominoes`` (MNIST–Fashion dominoes, ``gs_jax.data.dominoes``; offline) and ``celeba``
(``gs_jax.data.celeba``; the official files).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gs_jax import algorithms
from gs_jax.errors import check

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: ``x`` (n, H, W, C) float32 in [0, 1] or uint8 (scaled by the model), ``y`` (n,) int32 in {0, 1},
    ``group`` (n,) int32 in 0..G−1."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray

    def counts(self, n_groups: int) -> np.ndarray:
        return np.bincount(self.group, minlength=n_groups).astype(np.int64)

    def head(self, n: int) -> Split:
        """The first ``n`` examples (``n ≤ 0``: all)."""
        return self if n <= 0 else Split(self.x[:n], self.y[:n], self.group[:n])


@dataclasses.dataclass(frozen=True)
class GroupData:
    """Three splits of a group benchmark and what they mean."""

    train: Split
    val: Split
    test: Split
    name: str
    description: str
    group_names: tuple[str, ...]

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def split(self, name: str) -> Split:
        check(name in SPLITS, f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
        return getattr(self, name)

    def group_counts(self) -> dict[str, list[int]]:
        return {s: self.split(s).counts(self.n_groups).tolist() for s in SPLITS}

    def info(self) -> algorithms.DataInfo:
        """What the method registry sees: one logit, group labels, class and group counts of training."""
        from gs_jax import supervised

        t = self.train
        return supervised.data_info(t.y, n_outputs=1, group=t.group, n_groups=self.n_groups, name=self.name)

    def trainer_data(self, splits=("val", "test")) -> dict[str, np.ndarray]:
        """The trainer's shared data: training ``x, y, group``, evaluation arrays as ``<split>_x/_y/_group``."""
        out = {"x": self.train.x, "y": self.train.y, "group": self.train.group}
        for s in splits:
            sp = self.split(s)
            out.update({f"{s}_x": sp.x, f"{s}_y": sp.y, f"{s}_group": sp.group})
        return out


def make_split(x, y, group, n_groups: int, what: str = "split") -> Split:
    """A validated :class:`Split` (labels in {0, 1}, groups in 0..G−1, one of each per image)."""
    x, y, group = np.asarray(x), np.asarray(y, np.int32), np.asarray(group, np.int32)
    check(len(y) > 0, f"the {what} split of the group data set is empty")
    check(x.shape[0] == y.shape[0] == group.shape[0], f"{what}: {x.shape[0]} images, {y.shape[0]} labels, "
          f"{group.shape[0]} groups")  # fmt: skip
    check(set(np.unique(y)) <= {0, 1}, f"{what}: labels must lie in {{0, 1}}")
    check(set(np.unique(group)) <= set(range(n_groups)), f"{what}: groups must lie in 0..{n_groups - 1}")
    return Split(x, y, group)


class Loader(NamedTuple):
    fn: Callable[[Any, Any], GroupData]  # (data config block, progress meter or None) -> GroupData
    summary: str
    n_groups: int = 4  # binary label × binary spurious attribute


LOADERS: dict[str, Loader] = {}


def register(name: str, fn: Callable[[Any, Any], GroupData], summary: str, n_groups: int = 4) -> None:
    """Register a group data set under ``name`` (its loader reads the keys it needs from the ``data`` block)."""
    LOADERS[name] = Loader(fn, summary, n_groups)


def _loader(data_cfg) -> Loader:
    name = data_cfg.dataset
    check(name in LOADERS, f"unknown data.dataset {name!r}; registered: {', '.join(LOADERS)}")
    return LOADERS[name]


def static_info(data_cfg) -> algorithms.DataInfo:
    """What the registry may check before the data are loaded (which methods the data set can run): one logit,
    group labels, no environments; the counts come with :meth:`GroupData.info`."""
    return algorithms.DataInfo(1, n_groups=_loader(data_cfg).n_groups, name=data_cfg.dataset)


def load(data_cfg, progress=None) -> GroupData:
    """The data set ``data_cfg.dataset``, with ``max_train`` / ``max_eval`` (> 0) keeping the first examples of the
    training / evaluation splits (quick looks, tests)."""
    data = _loader(data_cfg).fn(data_cfg, progress)
    caps = {"train": int(data_cfg.get("max_train", 0)), "val": int(data_cfg.get("max_eval", 0)),
            "test": int(data_cfg.get("max_eval", 0))}  # fmt: skip
    splits = {
        s: make_split(*dataclasses.astuple(data.split(s).head(caps[s])), data.n_groups, s) for s in SPLITS
    }
    return dataclasses.replace(data, **splits)


# ---------------------------------------------------------------------------------------------------------------
# The registered data sets
# ---------------------------------------------------------------------------------------------------------------


def _dominoes(d, progress=None) -> GroupData:
    """MNIST–Fashion dominoes (``gs_jax.data.dominoes``): keys ``dir``, ``verify``, ``rho``, ``val_frac``,
    ``pair``, ``seed``, ``layout`` (``symmetric``: P(digit = label) = ρ in both classes; ``celeba``: CelebA's
    group shares ``shares``, one minority group inside the minority class)."""
    from gs_jax.data import dominoes

    dom = dominoes.load_dominoes(d.dir, rho=float(d.rho), val_frac=float(d.val_frac), seed=int(d.seed),
                                 pair=tuple(d.pair), verify=d.verify, layout=str(d.get("layout", "symmetric")),
                                 shares=tuple(d.get("shares", dominoes.CELEBA_SHARES)))  # fmt: skip
    splits = {s: make_split(sp.x, sp.y, sp.groups, 4, s) for s, sp in zip(SPLITS, (dom.train, dom.val, dom.test),
                                                                          strict=True)}  # fmt: skip
    a, b = (dominoes.FASHION_CLASSES[c] for c in dom.pair)
    names = (f"{a}, digit 0", f"{a}, digit 1", f"{b}, digit 0", f"{b}, digit 1")
    desc = f"MNIST-Fashion dominoes: {a} (y=0) vs {b} (y=1), {dom.layout_text}; {dom.source}"
    return GroupData(**splits, name="dominoes", description=desc, group_names=names)


def _celeba(d, progress=None) -> GroupData:
    """CelebA (``gs_jax.data.celeba``): keys ``dir`` (required), ``target``, ``confounder``, ``image_size``,
    ``cache_dir``; images decoded once into the cache."""
    from gs_jax.data import celeba

    check(bool(d.dir), "data.dir must name the CelebA directory for data.dataset=celeba (`make data-celeba`)")
    meta = celeba.load_celeba(d.dir, target=d.target, confounder=d.confounder)
    splits = {}
    for name in SPLITS:
        s = meta.split(name)
        x = celeba.preprocess_split(meta, name, d.cache_dir or f"{d.dir}/cache", size=int(d.image_size),
                                    progress=progress)  # fmt: skip
        splits[name] = make_split(x, s.y, s.groups, 4, name)
    t, c = d.target, d.confounder
    names = (f"{t}=0, {c}=0", f"{t}=0, {c}=1", f"{t}=1, {c}=0", f"{t}=1, {c}=1")
    return GroupData(**splits, name="celeba", description=f"CelebA {t} vs {c} at {meta.image_dir}",
                     group_names=names)  # fmt: skip


register("dominoes", _dominoes, "MNIST digit 0/1 above a Fashion-MNIST item; the digit is the shortcut")
register("celeba", _celeba, "CelebA Blond_Hair vs Male (paper Table 3)")
