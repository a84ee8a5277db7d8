"""Flax linen models (float32 by default) and :func:`build`, the one way every benchmark makes a network.

- ``models.mlps``: the Colored MNIST MLP (Section 4.3), the two-moons networks (Section 2, Appendix B), a linear
  model (the control for which Eq. 5 is exact);
- ``models.convnets``: the authors' Fig. 2 LeNet (Section 4.2) and its fast banded-matmul form, VGG-16-BN and
  PreAct-ResNet (the Table 1 code), torchvision's ResNet layout and its state-dict loader (CelebA, Table 3).

One forward convention (:class:`Model`)::

    model = models.build("lenet", num_outputs=10)
    variables = model.init(key, x[:1])                       # {"params": ..., ["batch_stats": ...]}
    logits, updates = model.apply(variables, x, train=True)  # logits (n,) for one output, else (n, k)
    feats = model.features(variables, x)                     # penultimate activations (n, d), eval mode

Inputs are normalised inside the model (``input_norm``: one of :data:`INPUT_NORMS`, the statistics' one home);
uint8 images are scaled to [0, 1] first, so a uint8 cache of decoded images can be fed as is.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gs_jax.errors import GsJaxError, check
from gs_jax.models.convnets import (
    VGG,
    Bottleneck,
    LeNetFig2,
    PreActBlock,
    PreActResNet,
    ResNet,
    lenet_fig2_apply,
    lenet_fig2_features,
    load_torchvision_resnet,
)
from gs_jax.models.mlps import CmnistMLP, Linear, MoonsMLP, TorchBatchNorm, TorchDense

# per-channel (mean, std) on [0, 1] pixels: ImageNet (torchvision's pretrained ResNets, the CelebA pipeline), the
# CIFAR-10 statistics the Table 1 code uses for CIFAR-10 and CIFAR-100 alike (SPEC §5.1), and Fashion-MNIST's (its
# 60,000 training images, computed from the IDX files: 0.28604, 0.35302) for the Table 1 analogue
INPUT_NORMS = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}
IMAGENET_MEAN = np.asarray(INPUT_NORMS["imagenet"][0], np.float32)
IMAGENET_STD = np.asarray(INPUT_NORMS["imagenet"][1], np.float32)

# name → (module factory from the build keywords, has batch statistics (None: iff ``batchnorm``), takes ``train``)
_ARCHS: dict[str, tuple] = {
    "cmnist_mlp": (
        lambda num_outputs=1, hidden=300, grayscale=False: CmnistMLP(hidden, grayscale),
        False,
        False,
    ),
    "moons_mlp": (
        lambda num_outputs=1, hidden=500, n_hidden=1, dropout=0.0, batchnorm=False: MoonsMLP(
            hidden, n_hidden, dropout, batchnorm
        ),
        None,  # batch statistics iff batchnorm
        True,
    ),
    "linear": (lambda num_outputs=1: Linear(num_outputs), False, False),
    "lenet": (lambda num_outputs=10: LeNetFig2(num_classes=num_outputs), False, False),
    "vgg": (lambda num_outputs=10, width=1.0: VGG(num_classes=num_outputs, width=width), True, True),
    "preact": (
        lambda num_outputs=10, depth=110, base_channels=16: PreActResNet(depth, num_outputs, base_channels),
        True,
        True,
    ),
    "resnet": (
        lambda num_outputs=1, stage_sizes=(3, 4, 6, 3), width=64: ResNet(
            tuple(stage_sizes), width, num_outputs
        ),
        True,
        True,
    ),
}
ARCHS = tuple(_ARCHS)


@dataclasses.dataclass(frozen=True)
class Model:
    """A network with one forward convention (hashable: a static argument of jitted functions, one compiled program
    per distinct value). Make it with :func:`build`."""

    name: str
    options: tuple  # sorted (keyword, value) pairs of the build call
    input_norm: str = ""

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def num_outputs(self) -> int:
        return int(self.kwargs.get("num_outputs", 1))

    @functools.cached_property
    def module(self) -> nn.Module:
        return _ARCHS[self.name][0](**self.kwargs)

    @property
    def batchnorm(self) -> bool:
        flag = _ARCHS[self.name][1]
        return bool(self.kwargs.get("batchnorm", False)) if flag is None else flag

    def prepare(self, x):
        """The network's input: uint8 → [0, 1], then ``(x − mean)/std`` with the ``input_norm`` statistics."""
        x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
        if not self.input_norm:
            return x
        mean, std = INPUT_NORMS[self.input_norm]
        return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)

    def init(self, key, x) -> dict[str, Any]:
        """Initial variables ``{"params": …, ["batch_stats": …]}`` from one example batch ``x``."""
        rngs = {"params": key, "dropout": key} if self.name == "moons_mlp" else key
        return dict(self.module.init(rngs, self.prepare(x)))

    def apply(self, variables, x, *, train: bool = False, rng=None):
        """``(logits, updates)``: logits (n,) for one output, (n, k) else; ``updates`` the new batch statistics in
        train mode (``{}`` without BatchNorm or in eval mode). ``rng`` drives dropout in train mode."""
        x = self.prepare(x)
        if (
            self.name == "lenet"
        ):  # the same function as the module, with fast matmul convolutions (tested equal)
            out = lenet_fig2_apply(variables["params"], x)
            return (out[:, 0] if self.num_outputs == 1 else out), {}
        kw = {"train": train} if _ARCHS[self.name][2] else {}
        rngs = {"dropout": rng} if (train and rng is not None and self.kwargs.get("dropout", 0) > 0) else {}
        if train and self.batchnorm:
            out, new = self.module.apply(variables, x, mutable=["batch_stats"], rngs=rngs, **kw)
            updates = {"batch_stats": new["batch_stats"]}
        else:
            out, updates = self.module.apply(variables, x, rngs=rngs, **kw), {}
        if self.name == "resnet" and self.num_outputs == 1:
            out = out[:, 0]
        return out, updates

    def logits(self, variables, x):
        """Eval-mode logits."""
        return self.apply(variables, x, train=False)[0]

    def features(self, variables, x):
        """Penultimate activations (n, d) in eval mode: what a last-layer refit (DFR) works on."""
        x = self.prepare(x)
        if self.name == "lenet":
            return lenet_fig2_features(variables["params"], x)
        if self.name in ("resnet", "cmnist_mlp"):
            kw = {"train": False} if self.name == "resnet" else {}
            return self.module.apply(variables, x, features_only=True, **kw)
        raise GsJaxError(f"model {self.name!r} has no features path; DFR needs lenet, resnet or cmnist_mlp")


def build(name: str, *, input_norm: str = "", **kwargs) -> Model:
    """The network ``name`` (one of :data:`ARCHS`) with its keyword arguments (``num_outputs`` for every one, plus
    ``hidden``, ``width``, ``depth``… as the architecture takes; see ``_ARCHS``). Unknown names, keywords or
    ``input_norm`` values are one-line errors naming the valid ones."""
    if name not in _ARCHS:
        raise GsJaxError(f"unknown model {name!r}; choose from {', '.join(ARCHS)}")
    check(
        input_norm in ("", *INPUT_NORMS),
        f"unknown input_norm {input_norm!r}; choose from '', {', '.join(INPUT_NORMS)}",
    )
    import inspect

    accepted = set(inspect.signature(_ARCHS[name][0]).parameters)
    unknown = set(kwargs) - accepted
    check(not unknown, f"model {name!r} takes no {sorted(unknown)}; it takes {sorted(accepted)}")
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    return Model(name, options, input_norm)


@functools.cache
def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The arrays of a converted torchvision checkpoint (an ``.npz`` of its state dict; README, "CelebA"), read once
    per path; a missing or unreadable file is a one-line error."""
    from pathlib import Path

    check(Path(path).is_file(), f"net.pretrained: no file '{path}'; convert torchvision's weights (README)")
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as err:  # a truncated or foreign file
        raise GsJaxError(f"net.pretrained: '{path}' is not a readable .npz of a state dict ({err})") from err


def param_count(variables) -> int:
    """Number of trained parameters in ``variables["params"]``."""
    return int(sum(np.size(a) for a in jax.tree_util.tree_leaves(variables["params"])))


__all__ = [
    "ARCHS", "INPUT_NORMS", "IMAGENET_MEAN", "IMAGENET_STD", "Model", "build", "param_count", "read_state_dict",
    "CmnistMLP", "Linear", "MoonsMLP", "TorchDense", "TorchBatchNorm", "LeNetFig2", "lenet_fig2_apply",
    "lenet_fig2_features", "VGG", "PreActBlock", "PreActResNet", "Bottleneck", "ResNet", "load_torchvision_resnet",
]  # fmt: skip
