"""Convolutional networks on NHWC images: the authors' Fig. 2 LeNet (and its banded-matmul form), VGG-16-BN and
PreAct-ResNet of the Table 1 code, and torchvision's ResNet layout with a state-dict loader (CelebA, Table 3)."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gs_jax.errors import check
from gs_jax.models.mlps import TorchDense, _torch_uniform

# ----------------------------------------------------------------------------------------------------------------
# CIFAR robustness (Section 4.2, Table 1, Fig. 2; SPEC §5.1): the authors' Fig. 2 LeNet and the Table 1 networks
# (VGG-16-BN and PreAct-ResNet-110 of the CIFAR classification code they forked). Inputs are NHWC images.
# BatchNorm models keep running statistics in the ``batch_stats`` collection: ``train=True`` normalises with batch
# statistics and updates them (apply with ``mutable=["batch_stats"]``); ``train=False`` uses the running ones.
# BatchNorm follows torch's defaults: momentum 0.1 (flax momentum 0.9), epsilon 1e-5.
# ----------------------------------------------------------------------------------------------------------------


# Kaiming-normal, fan-out mode, ReLU gain: torch ``kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`` (an
# untruncated normal with variance 2 / fan_out), the upstream code's default initialiser for convs and linears.
_kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _batch_norm(train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)


def _check_images(x: jnp.ndarray, name: str) -> None:
    check(
        x.ndim == 4, f"{name} expects NHWC images of shape (n, height, width, channels), got shape {x.shape}"
    )


class LeNetFig2(nn.Module):
    """The authors' Fig. 2 network (SPEC §5.1): ``conv 5×5 (C→12) → leaky ReLU → max-pool 2 → conv 5×5 (12→32)
    → leaky ReLU → max-pool 2 → flatten → 240 → 192 → num_classes``, leaky ReLU (slope 0.01) between the dense
    layers, no padding, torch default init (weights and biases U(±1/√fan_in)).

    Input (n, H, W, C), e.g. CIFAR-2 (n, 32, 32, 3): 32 → 28 → 14 → 10 → 5, so the flattened features are
    5·5·32 = 800 as in the paper's "800 → 240"; the flatten size is computed from the input, so (n, 28, 28, 1)
    Fashion-MNIST gives 4·4·32 = 512. Needs H, W ≥ 14. Returns logits (n, num_classes).
    """

    num_classes: int = 2
    negative_slope: float = 0.01

    @nn.compact
    def __call__(self, x_nhwc: jnp.ndarray) -> jnp.ndarray:
        _check_images(x_nhwc, "LeNetFig2")
        check(
            min(x_nhwc.shape[1:3]) >= 14,
            f"LeNetFig2 needs images of at least 14×14 pixels, got {x_nhwc.shape[1]}×{x_nhwc.shape[2]}",
        )

        def act(h):
            return nn.leaky_relu(h, negative_slope=self.negative_slope)

        h = x_nhwc
        for features in (12, 32):
            fan_in = h.shape[-1] * 5 * 5
            init = _torch_uniform(fan_in)
            h = nn.Conv(features, (5, 5), padding="VALID", kernel_init=init, bias_init=init)(h)
            h = nn.max_pool(act(h), (2, 2), strides=(2, 2))
        h = h.reshape(h.shape[0], -1)
        for width in (240, 192):
            h = act(TorchDense(width)(h))
        return TorchDense(self.num_classes)(h)


def _banded_conv(h, kernel, bias):
    """VALID k×k convolution (NHWC input, HWIO kernel) as ONE matmul: the k row-shifted views of the input, side
    by side, times a banded (Toeplitz) matrix that holds the kernel's column shifts.

    out[n, r, c, f] = Σᵢ Σⱼ Σₐ h[n, r+i, c+j, a] · K[i, j, a, f] = Σ_(i,w,a) rows[n, r, (i, w, a)] · T[(i, w, a), (c, f)]
    with rows[n, r, (i, w, a)] = h[n, r+i, w, a] and T[(i, w, a), (c, f)] = K[i, w−c, a, f] for 0 ≤ w−c < k, else 0.
    It does more multiply-adds than an im2col matmul (the band's zeros) but on operands a GEMM kernel runs near
    peak, with k copies of the input instead of k²: for the Fig. 2 LeNet under PGD it is ~1.5× faster on a CPU.
    """
    kh, kw, cin, f = kernel.shape
    n, hh, ww, _ = h.shape
    ho, wo = hh - kh + 1, ww - kw + 1
    shift = np.zeros((kw, ww, wo), h.dtype)  # shift[j, w, c] = 1 iff w = c + j
    for j in range(kw):
        shift[j, np.arange(wo) + j, np.arange(wo)] = 1
    band = jnp.einsum("jwc,ijaf->iwacf", shift, kernel).reshape(kh * ww * cin, wo * f)
    rows = jnp.concatenate([h[:, i : i + ho].reshape(n, ho, ww * cin) for i in range(kh)], axis=-1)
    return (rows.reshape(n * ho, kh * ww * cin) @ band).reshape(n, ho, wo, f) + bias


def _patch_conv(h, kernel, bias):
    """VALID k×k convolution (NHWC, HWIO) as an im2col matmul whose patches are the k² shifted views of the input
    side by side: ``cols[n, r, c, (i, j, a)] = h[n, r+i, c+j, a]``, then ``cols @ K.reshape(k·k·C, F)``.

    The fewest multiply-adds (no band zeros) and no band matrix to build from the kernel at every call: at batch 1
    (the Fig. 2 protocol) a training step of the LeNet is about 2× faster than with :func:`_banded_conv`; from
    about 32 images on the banded form wins (its operands suit the GEMM kernel better). Same function to float32
    rounding (tested against ``lax.conv``).
    """
    kh, kw, cin, f = kernel.shape
    n, hh, ww, _ = h.shape
    ho, wo = hh - kh + 1, ww - kw + 1
    cols = jnp.concatenate([h[:, i : i + ho, j : j + wo, :] for i in range(kh) for j in range(kw)], axis=-1)
    return (cols.reshape(n * ho * wo, kh * kw * cin) @ kernel.reshape(kh * kw * cin, f)).reshape(
        n, ho, wo, f
    ) + bias


# batches of at most this many images use :func:`_patch_conv`, larger ones :func:`_banded_conv` (measured on 2 CPU
# cores: a training step at batch 1 and 8 is ~2× faster with patches, at 32 and 128 ~1.2× slower)
PATCH_CONV_MAX_BATCH = 8


def _pool2(h):
    n, hh, ww, c = h.shape
    return h[:, : hh // 2 * 2, : ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))


def lenet_fig2_features(params, x_nhwc, negative_slope: float = 0.01):
    """The penultimate activations (n, 192) of :class:`LeNetFig2` on its own parameter tree (see
    :func:`lenet_fig2_apply`); the last layer maps them to the logits."""
    _check_images(x_nhwc, "lenet_fig2_features")

    def act(z):
        return jax.nn.leaky_relu(z, negative_slope)

    h = x_nhwc
    conv = _patch_conv if h.shape[0] <= PATCH_CONV_MAX_BATCH else _banded_conv
    for name in ("Conv_0", "Conv_1"):
        h = _pool2(act(conv(h, params[name]["kernel"], params[name]["bias"])))
    h = h.reshape(h.shape[0], -1)
    for name in ("TorchDense_0", "TorchDense_1"):
        h = act(h @ params[name]["kernel"] + params[name]["bias"])
    return h


def lenet_fig2_apply(params, x_nhwc, negative_slope: float = 0.01):
    """:class:`LeNetFig2` on its own parameter tree, with matmul convolutions (:func:`_banded_conv`; at batches of at
    most :data:`PATCH_CONV_MAX_BATCH` images :func:`_patch_conv`) and a reshape max-pool: the same function (the tests compare them), written for speed. XLA:CPU runs ``lax.conv``
    inside a ``while`` loop (the trainer's ``lax.scan`` chunks, the attacks' ``fori_loop``) about 10× slower than
    outside one, and ``max_pool``'s backward (select-and-scatter) another 4× slower; the matmul form runs at matmul
    speed in both places (PGD at batch 256: 954 ms with ``lax.conv``, 142 ms with im2col matmuls, 119 ms banded).
    Returns logits (n, num_classes)."""
    h = lenet_fig2_features(params, x_nhwc, negative_slope)
    return h @ params["TorchDense_2"]["kernel"] + params["TorchDense_2"]["bias"]


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG-16-BN for 32×32 images, as in the Table 1 code (SPEC §5.1; the upstream ``vgg`` with channels
    64, 128, 256, 512, 512 and 2, 2, 3, 3, 3 layers): each number in ``cfg`` is a 3×3 conv (padding 1, with bias)
    → BatchNorm → ReLU, each "M" a 2×2 max-pool; then flatten and one linear layer to ``num_classes``.

    Init: Kaiming-normal fan-out for conv and linear weights, conv biases torch's default U(±1/√fan_in), linear
    bias 0, BatchNorm scale 1 and shift 0. ``width`` multiplies every channel count (1.0 = the paper's network;
    small values for tests). For 32×32 inputs the five pools leave 1×1×512·width features. Returns logits
    (n, num_classes).
    """

    num_classes: int = 10
    cfg: tuple = VGG16_CFG
    width: float = 1.0

    @nn.compact
    def __call__(self, x_nhwc: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        _check_images(x_nhwc, "VGG")
        check(self.width > 0, f"VGG width must be > 0, got {self.width}")
        n_pool = sum(v == "M" for v in self.cfg)
        check(
            min(x_nhwc.shape[1:3]) >= 2**n_pool,
            f"VGG with {n_pool} max-pools needs images of at least {2**n_pool} pixels, got {x_nhwc.shape[1:3]}",
        )
        h = x_nhwc
        for v in self.cfg:
            if v == "M":
                h = nn.max_pool(h, (2, 2), strides=(2, 2))
                continue
            fan_in = h.shape[-1] * 3 * 3
            conv = nn.Conv(
                max(1, round(v * self.width)),
                (3, 3),
                padding=((1, 1), (1, 1)),
                kernel_init=_kaiming_fan_out,
                bias_init=_torch_uniform(fan_in),
            )
            h = nn.relu(_batch_norm(train)(conv(h)))
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(self.num_classes, kernel_init=_kaiming_fan_out, bias_init=nn.initializers.zeros)(h)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., 2016b), as the upstream ``resnet_preact.BasicBlock``::

        y = conv3×3(relu(bn2(conv3×3_stride(relu(bn1(x))))))  +  shortcut

    ``preact=True`` (first block of a stage) also feeds relu(bn1(x)) to the shortcut; otherwise the shortcut sees
    the raw x. The shortcut is the identity, or a 1×1 conv with the block's stride where the shape changes. Convs
    have no bias.
    """

    features: int
    stride: int = 1
    preact: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        def conv(k, stride):
            pad = (k - 1) // 2
            return nn.Conv(
                self.features,
                (k, k),
                strides=(stride, stride),
                padding=((pad, pad), (pad, pad)),
                use_bias=False,
                kernel_init=_kaiming_fan_out,
            )

        pre = nn.relu(_batch_norm(train)(x))
        if self.preact:
            x = pre
        y = conv(3, self.stride)(pre)
        y = conv(3, 1)(nn.relu(_batch_norm(train)(y)))
        if x.shape[-1] != self.features or self.stride != 1:
            x = conv(1, self.stride)(x)
        return y + x


class PreActResNet(nn.Module):
    """Pre-activation ResNet for CIFAR with basic blocks (SPEC §5.1: PreAct-ResNet-110 for CIFAR-100 in Table 1).

    ``depth = 6n + 2``: a 3×3 conv (3 → base_channels), three stages of n :class:`PreActBlock` with
    base_channels × (1, 2, 4) channels (the first block of stages 2 and 3 has stride 2; the first block of every
    stage takes its shortcut after the pre-activation), then BatchNorm → ReLU → global average pool → linear.
    depth 110 (n = 18) and base_channels 16 is the paper's network; depth 8 (n = 1) is the smallest. Init as
    :class:`VGG` (Kaiming fan-out, linear bias 0). Input (n, 32, 32, 3); returns logits (n, num_classes).
    """

    depth: int = 110
    num_classes: int = 10
    base_channels: int = 16

    @nn.compact
    def __call__(self, x_nhwc: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        _check_images(x_nhwc, "PreActResNet")
        check(
            self.depth >= 8 and (self.depth - 2) % 6 == 0,
            f"PreActResNet depth must be 6n + 2 with n ≥ 1 (8, 14, 20, …, 110), got {self.depth}",
        )
        n_blocks = (self.depth - 2) // 6
        h = nn.Conv(
            self.base_channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=_kaiming_fan_out
        )(x_nhwc)
        for multiplier, stride in ((1, 1), (2, 2), (4, 2)):
            for i in range(n_blocks):
                block = PreActBlock(self.base_channels * multiplier, stride if i == 0 else 1, preact=i == 0)
                h = block(h, train)
        h = nn.relu(_batch_norm(train)(h))
        h = jnp.mean(h, axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=_kaiming_fan_out, bias_init=nn.initializers.zeros)(h)


# ----------------------------------------------------------------------------------------------------------------
# CelebA worst-group network (Section 4.3, Table 3; SPEC §4.2): torchvision's ResNet-50 layout, one logit
# ----------------------------------------------------------------------------------------------------------------


def _conv(features: int, k: int, stride: int, name: str) -> nn.Conv:
    pad = (k - 1) // 2
    return nn.Conv(
        features, (k, k), (stride, stride), padding=((pad, pad), (pad, pad)), use_bias=False, name=name
    )


def _bn(train: bool, name: str, scale_init=nn.initializers.ones) -> nn.BatchNorm:
    # torch BatchNorm2d: momentum 0.1 (flax 0.9), eps 1e-5
    return nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, scale_init=scale_init, name=name
    )


class Bottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (v1.5: the stride on the 3×3 conv): 1×1 → 3×3 → 1×1 (×4), projection shortcut
    ``downsample`` when the shape changes. Sub-module names follow torchvision's state-dict keys."""

    planes: int
    stride: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        out = nn.relu(_bn(train, "bn1")(_conv(self.planes, 1, 1, "conv1")(x)))
        out = nn.relu(_bn(train, "bn2")(_conv(self.planes, 3, self.stride, "conv2")(out)))
        out = _bn(train, "bn3")(_conv(self.planes * 4, 1, 1, "conv3")(out))
        if self.stride != 1 or x.shape[-1] != self.planes * 4:
            x = _bn(train, "downsample_1")(_conv(self.planes * 4, 1, self.stride, "downsample_0")(x))
        return nn.relu(out + x)


class ResNet(nn.Module):
    """torchvision's ResNet with bottleneck blocks: ``stage_sizes`` (3, 4, 6, 3) and ``width`` 64 is ResNet-50
    (23.5 M parameters + the head). The head is a fresh ``Linear(2048 → num_outputs)`` with torch's default init,
    as the authors replace ``fc`` (SPEC §4.2). ``features_only=True`` returns the pooled features (n, 8·width·…)
    (DFR refits the head on them). Input (n, H, W, 3), already normalised; returns (n, num_outputs)."""

    stage_sizes: tuple = (3, 4, 6, 3)
    width: int = 64
    num_outputs: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False, features_only: bool = False):
        _check_images(x, "ResNet")
        h = nn.relu(_bn(train, "bn1")(_conv(self.width, 7, 2, "conv1")(x)))
        h = nn.max_pool(h, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for i, blocks in enumerate(self.stage_sizes):
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                h = Bottleneck(self.width * 2**i, stride, name=f"layer{i + 1}_{j}")(h, train)
        h = jnp.mean(h, axis=(1, 2))
        if features_only:
            return h
        return TorchDense(self.num_outputs, name="fc")(h)


def load_torchvision_resnet(variables, arrays, *, skip=("fc.",)):
    """``variables`` ({"params", "batch_stats"} of :class:`ResNet`) with every entry replaced by the tensor of a
    torchvision ResNet ``state_dict`` (``arrays``: a mapping name → array, e.g. ``np.load("resnet50.npz")``).

    Names map ``layer1.0.downsample.1.running_mean`` → ``batch_stats/layer1_0/downsample_1/mean``; conv weights
    (O, I, kh, kw) → kernels (kh, kw, I, O); BatchNorm ``weight``/``bias`` → ``scale``/``bias``; ``num_batches_tracked``
    is dropped; keys starting with ``skip`` (the ImageNet ``fc``, replaced by the one-logit head) are left at their
    initialisation. Every other key must find its slot with the same shape, and every slot outside ``skip`` must be
    filled, else a clear error: a checkpoint of another depth or width cannot load silently half-way.
    """
    import flax

    flat = {k: v for k, v in flax.traverse_util.flatten_dict(flax.core.unfreeze(variables), sep="/").items()}
    filled = set()
    for name, value in arrays.items():
        if name.endswith("num_batches_tracked") or any(name.startswith(s) for s in skip):
            continue
        *path, leaf = name.split(".")
        module = re.sub(r"(layer\d+|downsample)/(\d+)", r"\1_\2", "/".join(path))
        value = np.asarray(value)
        if leaf == "weight" and value.ndim == 4:
            target, value = f"params/{module}/kernel", value.transpose(2, 3, 1, 0)
        elif leaf == "weight" and value.ndim == 2:
            target, value = f"params/{module}/kernel", value.T
        else:
            target = {"weight": f"params/{module}/scale", "bias": f"params/{module}/bias",
                      "running_mean": f"batch_stats/{module}/mean", "running_var": f"batch_stats/{module}/var"}.get(
                leaf, "")  # fmt: skip
        check(target in flat, f"checkpoint key '{name}' has no place in this ResNet (depth/width differ?)")
        check(
            flat[target].shape == value.shape,
            f"checkpoint key '{name}' has shape {value.shape}, the ResNet expects {flat[target].shape}",
        )
        flat[target] = jnp.asarray(value, flat[target].dtype)
        filled.add(target)
    head = tuple(f"params/{s.rstrip('.')}/" for s in skip)
    missing = [k for k in flat if k not in filled and not k.startswith(head)]
    check(
        not missing,
        f"the checkpoint lacks {len(missing)} ResNet entries (first: '{missing[0] if missing else ''}')",
    )
    return flax.traverse_util.unflatten_dict(flat, sep="/")
