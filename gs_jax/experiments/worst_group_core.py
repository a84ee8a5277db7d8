"""Data, nets, the shared trainer task and the group evaluation of the worst-group experiment
(``gs_jax.experiments.worst_group``; paper Section 4.3, Table 3; SPEC §4, §5b).

One task serves ERM, SD (per-class λ_c, γ_c, the authors' ``spw3`` form), Group DRO and the JTT second stage: the
method is DATA in the per-restart algorithm state, so every (method, hyper-parameter, seed) restart of a run is one
row of one vmapped program:

- ``lam (2,)``, ``gamma (2,)``: SD per class, ``λ_1·mean_{y=1}(ŷ − γ_1)² + λ_0·mean_{y=0}(ŷ − γ_0)²`` added to the
  loss, no ½ (``group_methods.sd_per_class_loss``); λ = 0 switches it off.
- ``dro (scalar 0/1)``, ``eta``, ``adj (4,)``, ``q (4,)``: Group DRO (``group_methods.group_dro_step``): the loss is
  ``Σ_g q_g L_g`` with q updated online by exponentiated gradient, instead of the mean loss.
- ``logw (n,)``: log sampling weights of the training examples. Minibatches are drawn with replacement with
  probability ∝ exp(logw): uniform (logw = 0) for ERM, SD and Group DRO; JTT's up-weighted error set
  (``group_methods.jtt_weights``) for its second stage — the reference's upsampled list ``D_up`` sampled
  uniformly is the same distribution.

The logistic loss is ℓ_i = softplus(−ŷ_i·(2y_i − 1)) on one logit per example.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gs_jax import group_methods, losses, metrics, models, trainer
from gs_jax.errors import GsJaxError, check

N_GROUPS = 4

# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroupSplit:
    x: np.ndarray  # (n, H, W, C): float32 in [0, 1] (dominoes) or uint8 (CelebA, normalised in the net)
    y: np.ndarray  # (n,) int32 in {0, 1}
    g: np.ndarray  # (n,) int32 in 0..3 (= 2·y + spurious attribute)

    @property
    def group_counts(self) -> np.ndarray:
        return np.bincount(self.g, minlength=N_GROUPS).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class GroupData:
    train: GroupSplit
    val: GroupSplit
    test: GroupSplit
    name: str
    description: str
    group_names: tuple[str, ...]


def _split(x, y, g, cap: int = 0) -> GroupSplit:
    x, y, g = np.asarray(x), np.asarray(y, np.int32), np.asarray(g, np.int32)
    if cap > 0:
        x, y, g = x[:cap], y[:cap], g[:cap]
    check(len(y) > 0, "a split of the worst-group data set is empty")
    check(set(np.unique(y)) <= {0, 1}, "worst-group labels must lie in {0, 1}")
    check(set(np.unique(g)) <= set(range(N_GROUPS)), "worst-group groups must lie in 0..3")
    return GroupSplit(x, y, g)


def load_data(cfg, progress=None) -> GroupData:
    """The three splits of ``cfg.data.dataset``: ``dominoes`` (Fashion-MNIST files + the embedded MNIST digits) or
    ``celeba`` (the official files in ``cfg.data.dir``; images decoded once into ``cfg.data.cache_dir``)."""
    d = cfg.data
    check(
        d.dataset in ("dominoes", "celeba"), f"unknown data.dataset {d.dataset!r}; choose dominoes or celeba"
    )
    if d.dataset == "dominoes":
        from gs_jax.data import dominoes

        dom = dominoes.load_dominoes(
            d.dir,
            rho=float(d.rho),
            val_frac=float(d.val_frac),
            seed=int(d.seed),
            pair=tuple(d.pair),
            verify=d.verify,
        )
        splits = [_split(s.x, s.y, s.groups, cap) for s, cap in
                  ((dom.train, d.max_train), (dom.val, d.max_eval), (dom.test, d.max_eval))]  # fmt: skip
        a, b = (dominoes.FASHION_CLASSES[c] for c in dom.pair)
        names = (f"{a}, digit 0", f"{a}, digit 1", f"{b}, digit 0", f"{b}, digit 1")
        desc = f"MNIST-Fashion dominoes: {a} (y=0) vs {b} (y=1), rho={dom.rho:g}; {dom.source}"
        return GroupData(*splits, name="dominoes", description=desc, group_names=names)
    from gs_jax.data import celeba

    check(bool(d.dir), "data.dir must name the CelebA directory for data.dataset=celeba (`make data-celeba`)")
    meta = celeba.load_celeba(d.dir, target=d.target, confounder=d.confounder)
    splits = []
    for name, cap in (("train", d.max_train), ("val", d.max_eval), ("test", d.max_eval)):
        s = meta.split(name)
        x = celeba.preprocess_split(meta, name, d.cache_dir or f"{d.dir}/cache", size=int(d.image_size),
                                    progress=progress)  # fmt: skip
        splits.append(_split(x, s.y, s.groups, cap))
    t, c = d.target, d.confounder
    names = (f"{t}=0, {c}=0", f"{t}=0, {c}=1", f"{t}=1, {c}=0", f"{t}=1, {c}=1")
    return GroupData(
        *splits, name="celeba", description=f"CelebA {t} vs {c} at {meta.image_dir}", group_names=names
    )


# ---------------------------------------------------------------------------------------------------------------
# Nets (one logit)
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
    """Static structure of the net: ``lenet`` (the paper's Fig. 2 CNN, ``models.LeNetFig2``, one output) or
    ``resnet`` (``models.ResNet``: stage sizes and width; (3, 4, 6, 3) × 64 is ResNet-50)."""

    name: str = "lenet"
    stage_sizes: tuple = (3, 4, 6, 3)
    width: int = 64
    imagenet_norm: bool = False  # uint8 inputs → ImageNet normalisation inside the net
    pretrained: str = (
        ""  # resnet: .npz of a torchvision state dict (models.load_torchvision_resnet); "" = random
    )

    def module(self):
        if self.name == "lenet":
            return models.LeNetFig2(num_classes=1)
        if self.name == "resnet":
            return models.ResNet(stage_sizes=tuple(self.stage_sizes), width=int(self.width), num_outputs=1)
        raise ValueError(f"unknown net {self.name!r}; choose lenet or resnet")


@functools.cache
def _checkpoint(path: str) -> dict[str, np.ndarray]:
    """The arrays of a converted torchvision checkpoint (.npz; see README, "CelebA"), read once."""
    from pathlib import Path

    check(
        Path(path).is_file(),
        f"net.pretrained: no file '{path}'; convert torchvision's weights as the README says",
    )
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as err:  # a truncated or foreign file
        raise GsJaxError(f"net.pretrained: '{path}' is not a readable .npz of a state dict ({err})") from err


def _prep(arch: Arch, x):
    if arch.imagenet_norm:
        from gs_jax.data.celeba import IMAGENET_MEAN, IMAGENET_STD

        return (x.astype(jnp.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return x.astype(jnp.float32)


def forward(arch: Arch, variables, x, train: bool = False):
    """``(logits (n,), new model state or {})``."""
    x = _prep(arch, x)
    if arch.name == "lenet":
        return models.lenet_fig2_apply(variables["params"], x)[:, 0], {}
    module = arch.module()
    if train:
        out, new = module.apply(variables, x, train=True, mutable=["batch_stats"])
        return out[:, 0], {"batch_stats": new["batch_stats"]}
    return module.apply(variables, x, train=False)[:, 0], {}


def features(arch: Arch, variables, x):
    """Penultimate features (n, d) in eval mode: what DFR refits its last layer on."""
    x = _prep(arch, x)
    if arch.name == "lenet":
        return models.lenet_fig2_features(variables["params"], x)
    return arch.module().apply(variables, x, train=False, features_only=True)


# ---------------------------------------------------------------------------------------------------------------
# The shared task
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Opt:
    name: str = "adam"  # "adam" (torch defaults) or "sgd" (momentum)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0  # torch-coupled: added to the gradient before the update
    batch_size: int = 128


def optimizer(opt: Opt) -> optax.GradientTransformation:
    check(opt.name in ("adam", "sgd"), f"unknown optimizer {opt.name!r}; choose adam or sgd")
    base = optax.adam(opt.lr) if opt.name == "adam" else optax.sgd(opt.lr, momentum=opt.momentum or None)
    return optax.chain(optax.add_decayed_weights(opt.weight_decay), base) if opt.weight_decay else base


def method_state(
    n_train: int, *, lam=(0.0, 0.0), gamma=(0.0, 0.0), dro=False, eta=0.0, adj=0.0, weights=None
):
    """One restart's algorithm state (see the module docstring)."""
    logw = np.zeros(n_train, np.float32) if weights is None else np.log(np.asarray(weights, np.float32))
    check(logw.shape == (n_train,), f"sampling weights must have shape ({n_train},), got {logw.shape}")
    return {
        "lam": np.asarray(lam, np.float32).reshape(2),
        "gamma": np.asarray(gamma, np.float32).reshape(2),
        "dro": np.float32(bool(dro)),
        "eta": np.float32(eta),
        "adj": np.broadcast_to(np.asarray(adj, np.float32), (N_GROUPS,)).copy(),
        "q": np.full(N_GROUPS, 1.0 / N_GROUPS, np.float32),
        "logw": logw,
    }


def stack_states(states: list[dict]) -> dict:
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *states)


def weighted_draw(key, logw, size: int):
    """``size`` indices drawn with replacement with probability ∝ exp(logw), by inverse CDF (O(n + size·log n))."""
    w = jnp.exp(logw - jnp.max(logw))
    cdf = jnp.cumsum(w)
    u = jax.random.uniform(key, (size,), cdf.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), logw.shape[0] - 1)


@functools.cache
def make_task(arch: Arch, opt: Opt, n_train: int) -> trainer.Task:
    """The trainer task shared by ERM, SD, Group DRO and JTT (the method lives in the algorithm state). ``data``
    holds ``x, y, g`` (training) plus the evaluation arrays; the loss draws its minibatch itself, because the
    sampling weights are per restart."""
    module = arch.module()

    def init(key, data):
        variables = dict(module.init(key, _prep(arch, data["x"][:1])))
        if arch.pretrained:
            variables = dict(models.load_torchvision_resnet(variables, _checkpoint(arch.pretrained)))
        params = variables.pop("params")
        return params, variables

    def loss(params, model_state, st, data, step, key):
        idx = weighted_draw(key, st["logw"], opt.batch_size)
        xb, yb, gb = data["x"][idx], data["y"][idx], data["g"][idx]
        logits, new_stats = forward(arch, {"params": params, **model_state}, xb, train=True)
        per_example = jax.nn.softplus(-(2.0 * yb - 1.0) * logits)
        sd_term = group_methods.sd_per_class_loss(logits, yb, st["lam"], st["gamma"]) - losses.mean_nll(
            logits, yb
        )
        counts = data["train_group_counts"]
        robust, q_new, _ = group_methods.group_dro_step(
            st["q"], per_example, gb, N_GROUPS, st["eta"], group_counts_g=counts, adj=st["adj"]
        )
        base = jnp.where(st["dro"] > 0, robust, jnp.mean(per_example))
        st = {**st, "q": jnp.where(st["dro"] > 0, q_new, st["q"])}
        return base + sd_term, ({**model_state, **new_stats}, st, None)

    return trainer.Task(init=init, loss=loss, optimizer=optimizer(opt), algo_state=method_state(n_train))


def task_data(data: GroupData) -> dict[str, Any]:
    """The trainer's (shared) data: the training arrays, the evaluation splits and the training group counts."""
    out = {"x": data.train.x, "y": data.train.y, "g": data.train.g,
           "train_group_counts": data.train.group_counts.astype(np.float32)}  # fmt: skip
    for name in ("val", "test"):
        s = getattr(data, name)
        out.update({f"{name}_x": s.x, f"{name}_y": s.y, f"{name}_g": s.g})
    return out


# ---------------------------------------------------------------------------------------------------------------
# Group evaluation (per restart; the trainer vmaps it)
# ---------------------------------------------------------------------------------------------------------------


def _chunks(x, chunk: int):
    n = x.shape[0]
    c = max(1, min(chunk, n))
    pad = (-n) % c
    x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))])
    return x.reshape(-1, c, *x.shape[1:])


def logits_of(arch: Arch, variables, x, chunk: int):
    """Eval-mode logits (n,) in chunks of ``chunk`` images."""
    out = jax.lax.map(lambda a: forward(arch, variables, a, False)[0], _chunks(x, chunk))
    return out.reshape(-1)[: x.shape[0]]


def group_accuracy(logits, y, g):
    """Per-group accuracies (4,) (NaN for an empty group), average accuracy and worst-group accuracy (over the
    non-empty groups), by ``gs_jax.metrics`` (prediction ŷ > 0)."""
    return (metrics.group_accuracies(logits, y, g, N_GROUPS), metrics.accuracy(logits, y),
            metrics.worst_group_accuracy(logits, y, g, N_GROUPS))  # fmt: skip


def group_evaluator(arch: Arch, chunk: int, every: int, splits=("val", "test")) -> trainer.Evaluator:
    """``<split>_avg``, ``<split>_worst`` and ``<split>_g0..3`` on every split, every ``every`` steps."""

    def fn(state, data):
        variables = {"params": state.params, **state.model_state}
        out = {}
        for s in splits:
            acc_g, avg, worst = group_accuracy(logits_of(arch, variables, data[f"{s}_x"], chunk), data[f"{s}_y"],
                                               data[f"{s}_g"])  # fmt: skip
            out.update(
                {f"{s}_avg": avg, f"{s}_worst": worst, **{f"{s}_g{k}": acc_g[k] for k in range(N_GROUPS)}}
            )
        return out

    return trainer.Evaluator("groups", fn, every=every)


@functools.cache
def logits_fn(arch: Arch, chunk: int):
    """``f(variables_r, x) -> (R, n)`` eval-mode logits of R restarts (jitted, vmapped)."""
    return jax.jit(jax.vmap(lambda v, x: logits_of(arch, v, x, chunk), in_axes=(0, None)))


@functools.cache
def features_fn(arch: Arch, chunk: int):
    """``f(variables, x) -> (n, d)`` penultimate features of one restart (jitted)."""

    def one(v, x):
        return jax.lax.map(lambda a: features(arch, v, a), _chunks(x, chunk)).reshape(
            -1, _feat_dim(arch, v, x)
        )[: x.shape[0]]

    return jax.jit(one)


def _feat_dim(arch: Arch, v, x) -> int:
    return jax.eval_shape(lambda: features(arch, v, x[:1])).shape[-1]


def variables_of(state) -> dict[str, Any]:
    return {"params": state.params, **state.model_state}


def restart(tree, r: int):
    return jax.tree_util.tree_map(lambda a: a[r], tree)
