"""Data, nets, trainer task and evaluation of the robustness experiment (``gs_jax.experiments.robustness``).

The Fig. 2 LeNet (``models.LeNetFig2``) is initialised by its Flax module, but trained and attacked through
``models.lenet_fig2_apply``, the same function with matmul convolutions (fast inside XLA:CPU loops; see its docstring).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gs_jax import attacks, losses, models, trainer
from gs_jax.data import cifar
from gs_jax.data import mnist as mnist_data
from gs_jax.errors import check

_AUG_STREAM = (
    2**31 - 2
)  # fold_in index of the augmentation stream (the trainer uses 0.. for steps, 2³¹−1 batches)


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray  # (n, H, W, C) float32 in the part's pixel range
    y: np.ndarray  # (n,) int32


def _scale(images_u8: np.ndarray, pixel_range) -> np.ndarray:
    lo, hi = (float(v) for v in pixel_range)
    x = np.asarray(images_u8, np.float32) / np.float32(255.0) * np.float32(hi - lo) + np.float32(lo)
    return x[..., None] if x.ndim == 3 else x


def load_raw(cfg) -> tuple[str, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(name, (train uint8 NHWC, labels), (test ..., labels))`` of ``cfg.data.dataset`` in file order."""
    d = cfg.data
    check(
        d.dataset in ("fashion-mnist", "cifar2", "cifar10", "cifar100"),
        f"unknown data.dataset {d.dataset!r}; choose fashion-mnist, cifar2, cifar10, cifar100",
    )
    if d.dataset == "fashion-mnist":
        directory = mnist_data.resolve_dir("fashion-mnist", d.dir)
        train = mnist_data.load_idx_split(directory, "train", "fashion-mnist", verify=d.verify)
        test = mnist_data.load_idx_split(directory, "test", "fashion-mnist", verify=d.verify)
    else:
        which = "cifar100" if d.dataset == "cifar100" else "cifar10"
        tr = cifar.load_split(which, "train", d.dir, verify=d.verify)
        te = cifar.load_split(which, "test", d.dir, verify=d.verify)
        train, test = (tr.images, tr.labels), (te.images, te.labels)
    cap = lambda a, m: a if m <= 0 else a[:m]  # noqa: E731
    train = (cap(train[0], d.max_train), cap(train[1], d.max_train).astype(np.int32))
    test = (cap(test[0], d.max_test), cap(test[1], d.max_test).astype(np.int32))
    return d.dataset, train, test


def select_classes(images, labels, classes) -> tuple[np.ndarray, np.ndarray]:
    """Keep the images of ``classes`` (in file order) relabelled 0, 1, … in the order given; () keeps all."""
    if not classes:
        return images, labels
    keep = np.isin(labels, classes)
    relabel = {int(c): i for i, c in enumerate(classes)}
    return images[keep], np.array([relabel[int(v)] for v in labels[keep]], np.int32)


def part_splits(raw, classes, pixel_range, n_val: int) -> tuple[Split, Split | None, Split, int]:
    """(train, validation or None, test, number of classes) of one part, validation held out of the training set
    by a fixed ``RandomState(0)`` permutation (its last ``n_val`` images)."""
    _, (tx, ty), (sx, sy) = raw
    tx, ty = select_classes(tx, ty, classes)
    sx, sy = select_classes(sx, sy, classes)
    k = len(classes) if classes else int(max(ty.max(), sy.max())) + 1
    check(len(ty) > n_val, f"the training set holds {len(ty)} images; cannot hold out {n_val} for validation")
    check(len(sy) > 0, "the test set holds no image of the selected classes")
    val = None
    if n_val > 0:
        perm = np.random.RandomState(0).permutation(len(ty))
        tr_idx, va_idx = np.sort(perm[:-n_val]), np.sort(perm[-n_val:])
        val = Split(_scale(tx[va_idx], pixel_range), ty[va_idx])
        tx, ty = tx[tr_idx], ty[tr_idx]
    return Split(_scale(tx, pixel_range), ty), val, Split(_scale(sx, pixel_range), sy), k


# ---------------------------------------------------------------------------------------------------------------
# Nets
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
    """Static structure of a net (one compiled program per value)."""

    name: str = "lenet"
    num_classes: int = 10
    width: float = 1.0
    depth: int = 110
    base_channels: int = 16
    mean: tuple = ()  # per-channel normalisation inside the net ((): none)
    std: tuple = ()

    @property
    def batchnorm(self) -> bool:
        return self.name in ("vgg", "preact")

    def module(self):
        if self.name == "lenet":
            return models.LeNetFig2(num_classes=self.num_classes)
        if self.name == "vgg":
            return models.VGG(num_classes=self.num_classes, width=self.width)
        if self.name == "preact":
            return models.PreActResNet(self.depth, self.num_classes, self.base_channels)
        raise ValueError(f"unknown net {self.name!r}")


def arch_of(net_cfg, num_classes: int, dataset: str) -> Arch:
    check(
        net_cfg.name in ("lenet", "vgg", "preact"), f"unknown net {net_cfg.name!r}; choose lenet, vgg, preact"
    )
    norm = bool(net_cfg.normalize) and dataset.startswith("cifar")
    # Table 1 code: CIFAR-10 statistics for both CIFAR-10 and CIFAR-100 (SPEC §5.1)
    mean, std = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)) if norm else ((), ())
    return Arch(
        net_cfg.name,
        num_classes,
        float(net_cfg.width),
        int(net_cfg.depth),
        int(net_cfg.base_channels),
        mean,
        std,
    )


def _normalize(arch: Arch, x):
    if not arch.mean:
        return x
    return (x - jnp.asarray(arch.mean, x.dtype)) / jnp.asarray(arch.std, x.dtype)


def forward(arch: Arch, variables, x, train: bool = False):
    """``(logits, new batch statistics or {})``; ``variables`` = {"params": …, ["batch_stats": …]}."""
    x = _normalize(arch, x)
    if arch.name == "lenet":
        return models.lenet_fig2_apply(variables["params"], x), {}
    module = arch.module()
    if train and arch.batchnorm:
        out, new = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return out, {"batch_stats": new["batch_stats"]}
    return module.apply(variables, x, train=False), {}


@functools.cache
def eval_apply(arch: Arch):
    """``apply(variables, x) -> logits`` in eval mode: one hashable function per arch (a static jit argument of the
    attacks, so every call with the same arch shares the compiled attack)."""

    def apply(variables, x):
        return forward(arch, variables, x, False)[0]

    return apply


def variables_of(state) -> dict[str, Any]:
    return {"params": state.params, **state.model_state}


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Opt:
    """Static optimisation protocol of a part."""

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    batch_size: int
    steps_per_epoch: int
    milestones: tuple = ()  # epochs at which lr × 0.1
    augment: bool = False


def optimizer(opt: Opt) -> optax.GradientTransformation:
    """torch ``SGD(lr, momentum, nesterov, weight_decay)`` with ``MultiStepLR(milestones, 0.1)`` as an optax chain
    (coupled weight decay before the momentum, as torch)."""
    lr = opt.lr
    if opt.milestones:
        lr = optax.piecewise_constant_schedule(
            opt.lr, {int(m * opt.steps_per_epoch): 0.1 for m in opt.milestones}
        )
    return optax.chain(
        optax.add_decayed_weights(opt.weight_decay),
        optax.sgd(lr, momentum=opt.momentum or None, nesterov=opt.nesterov),
    )


def augment(x_nhwc, key, pad: int = 4):
    """RandomCrop(H, padding=pad) + RandomHorizontalFlip on the device: zero padding in pixel space (as torch pads
    the un-normalised tensor), one crop offset and flip per image."""
    n, h, w, c = x_nhwc.shape
    k_off, k_flip = jax.random.split(key)
    offs = jax.random.randint(k_off, (n, 2), 0, 2 * pad + 1)
    flip = jax.random.bernoulli(k_flip, 0.5, (n,))
    padded = jnp.pad(x_nhwc, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, off, f):
        crop = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
        return jnp.where(f, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offs, flip)


@functools.cache
def make_task(arch: Arch, opt: Opt) -> trainer.Task:
    """The trainer's task (cached per static structure): CE + λ·mean(ŷ²) with λ = ``algo_state["lam"]`` per
    restart (``losses.sd_mean_squared_logits``; λ = 0 is ERM), torch-style SGD, shuffled minibatches drawn on the
    device from ``data["x"], data["y"]`` (the other arrays of ``data`` are for the evaluators) and, with
    ``opt.augment``, random crop + flip from the step's own key."""
    module = arch.module()
    draw = trainer.minibatches(opt.batch_size)

    def init(key, data):
        variables = dict(module.init(key, _normalize(arch, data["x"][:1])))
        params = variables.pop("params")
        return params, variables

    def batch(data, step, key):
        b = draw({"x": data["x"], "y": data["y"]}, step, key)
        if opt.augment:
            aug_key = jax.random.fold_in(jax.random.fold_in(key, _AUG_STREAM), step)
            b = {**b, "x": augment(b["x"], aug_key)}
        return b

    def loss(params, model_state, algo_state, b, step, key):
        logits, new_stats = forward(arch, {"params": params, **model_state}, b["x"], train=True)
        value = losses.sd_mean_squared_logits(logits, b["y"], algo_state["lam"])
        return value, ({**model_state, **new_stats}, algo_state, None)

    return trainer.Task(
        init=init, loss=loss, optimizer=optimizer(opt), batch=batch, algo_state={"lam": jnp.float32(0.0)}
    )


# ---------------------------------------------------------------------------------------------------------------
# Evaluation (per restart; vmapped by the trainer or by the callers below)
# ---------------------------------------------------------------------------------------------------------------


def _chunked(x, y, chunk: int):
    """(x, y, weight) reshaped to (m, chunk, ...), padded with copies of the first image of weight 0."""
    n = x.shape[0]
    c = max(1, min(chunk, n))
    pad = (-n) % c
    w = jnp.concatenate([jnp.ones(n, jnp.float32), jnp.zeros(pad, jnp.float32)])
    x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))])
    y = jnp.concatenate([y, jnp.broadcast_to(y[:1], (pad,))])
    return x.reshape(-1, c, *x.shape[1:]), y.reshape(-1, c), w.reshape(-1, c)


def clean_accuracy(arch: Arch, variables, x, y, chunk: int):
    """Accuracy of the eval-mode net on (x, y), in chunks of ``chunk`` images."""
    apply = eval_apply(arch)
    xs, ys, ws = _chunked(x, y, chunk)
    hits = jax.lax.map(lambda a: jnp.sum(attacks.correct(apply(variables, a[0]), a[1]) * a[2]), (xs, ys, ws))
    return jnp.sum(hits) / x.shape[0]


def pgd_accuracy(arch: Arch, variables, x, y, eps, key, *, steps: int, step_frac: float, clip, chunk: int):
    """Accuracy on L∞ PGD examples (``attacks.pgd``: random start, α = step_frac·ε, ``steps`` steps) at ``eps`` (in
    the net's input units; traced, so every ε shares one program), in chunks (each its own start key)."""
    apply = eval_apply(arch)
    xs, ys, ws = _chunked(x, y, chunk)

    def one(a):
        xc, yc, wc, i = a
        x_adv = attacks.pgd(
            apply, variables, xc, yc, eps=eps, step_size=step_frac * eps, steps=steps, norm="linf",
            random_start=True, key=jax.random.fold_in(key, i), clip=clip,
        )  # fmt: skip
        return jnp.sum(attacks.correct(apply(variables, x_adv), yc) * wc)

    hits = jax.lax.map(one, (xs, ys, ws, jnp.arange(xs.shape[0])))
    return jnp.sum(hits) / x.shape[0]


@functools.cache
def correct_fn(arch: Arch, chunk: int):
    """``f(variables_r, x, y) -> (R, n)`` per-example correctness of R restarts (jitted, vmapped; subsets are
    averaged on the host, so one program serves every subset)."""

    def one(v, x, y):
        apply = eval_apply(arch)
        xs, ys, _ = _chunked(x, y, chunk)
        hits = jax.lax.map(lambda a: attacks.correct(apply(v, a[0]), a[1]), (xs, ys))
        return hits.reshape(-1)[: x.shape[0]]

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


@functools.cache
def pgd_accuracy_fn(arch: Arch, steps: int, step_frac: float, clip: tuple, chunk: int):
    """``f(variables_r, x, y, eps, key) -> (R,)`` PGD accuracies of R restarts (jitted, vmapped; ε traced)."""

    def one(v, x, y, eps, key):
        return pgd_accuracy(arch, v, x, y, eps, key, steps=steps, step_frac=step_frac, clip=clip, chunk=chunk)

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


@functools.cache
def margin_fn(arch: Arch, eps_max: float, tol: float, steps: int, clip: tuple):
    """``f(variables_r, x, y) -> (R, n)`` minimal L∞ perturbations (``attacks.minimal_margin``, Fig. 2 search:
    no random start, bisection on [0, eps_max] to ``tol``; inf where even eps_max does not flip; 0 if wrong)."""
    apply = eval_apply(arch)

    def one(v, x, y):
        return attacks.minimal_margin(
            apply, v, x, y, eps_max=eps_max, tol=tol, norm="linf", steps=steps, random_start=False, clip=clip
        )

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def _take(tree, idx):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[np.asarray(idx)], tree)
