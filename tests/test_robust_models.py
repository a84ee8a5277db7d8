"""CIFAR robustness models: shapes, gradients, BatchNorm state, parameter counts against hand counts."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax.errors import GsJaxError
from gs_jax.models.convnets import VGG, VGG16_CFG, LeNetFig2, PreActResNet

# rbg keys: XLA compiles threefry's unrolled rounds once per initialiser, which makes a jitted VGG init take ~10 s
# on a CPU; the RngBitGenerator-based implementation compiles in a fraction of that.
KEY = jax.random.key(0, impl="rbg")


def n_params(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def images(n=2, hw=32, c=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, hw, hw, c)), jnp.float32)


# ----------------------------------------------------------------------------------------------------------------
# LeNetFig2
# ----------------------------------------------------------------------------------------------------------------


def lenet_reference(p, x, slope=0.01):
    """The Fig. 2 forward pass written with lax primitives: conv VALID → leaky → max-pool, twice; dense stack."""

    def conv(h, layer):
        out = jax.lax.conv_general_dilated(
            h, layer["kernel"], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return out + layer["bias"][None, None, None, :]

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    leaky = lambda h: jnp.where(h > 0, h, slope * h)
    h = pool(leaky(conv(x, p["Conv_0"])))
    h = pool(leaky(conv(h, p["Conv_1"]))).reshape(x.shape[0], -1)
    h = leaky(h @ p["TorchDense_0"]["kernel"] + p["TorchDense_0"]["bias"][None, :])
    h = leaky(h @ p["TorchDense_1"]["kernel"] + p["TorchDense_1"]["bias"][None, :])
    return h @ p["TorchDense_2"]["kernel"] + p["TorchDense_2"]["bias"][None, :]


def test_lenet_fig2_hand_count_shapes_and_reference():
    model = LeNetFig2()
    x = images()
    params = jax.jit(model.init)(KEY, x)["params"]
    hand = (
        (5 * 5 * 3 * 12 + 12) + (5 * 5 * 12 * 32 + 32) + (800 * 240 + 240) + (240 * 192 + 192) + (192 * 2 + 2)
    )
    assert n_params(params) == hand == 249_442
    assert params["TorchDense_0"]["kernel"].shape == (800, 240)  # the paper's 800 = 5·5·32
    logits = jax.jit(model.apply)({"params": params}, x)
    assert logits.shape == (2, 2)
    np.testing.assert_allclose(logits, jax.jit(lenet_reference)(params, x), rtol=1e-5, atol=1e-6)
    # torch default init: U(±1/√fan_in), fan_in = 3·5·5 for the first conv
    bound = 1 / np.sqrt(75)
    assert (
        np.abs(params["Conv_0"]["kernel"]).max() <= bound and np.abs(params["Conv_0"]["bias"]).max() <= bound
    )


def test_lenet_fig2_fashion_mnist_and_backward():
    model = LeNetFig2(num_classes=10)
    x = images(hw=28, c=1)
    params = jax.jit(model.init)(KEY, x)["params"]
    assert params["TorchDense_0"]["kernel"].shape == (4 * 4 * 32, 240)
    y = jnp.array([3, 7])

    def loss(p):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    grads = jax.jit(jax.grad(loss))(params)
    leaves = jax.tree.leaves(jax.device_get(grads))
    assert all(np.all(np.isfinite(g)) and np.abs(g).max() > 0 for g in leaves)
    with pytest.raises(GsJaxError, match="at least 14×14") as err:
        model.init(jax.random.key(0), images(hw=12, c=1))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------------------------
# BatchNorm models
# ----------------------------------------------------------------------------------------------------------------


def _check_train_eval(model, x, n_classes):
    """Init, a train-mode forward and backward pass, and an eval-mode forward pass, each jit-compiled once."""
    variables = jax.jit(functools.partial(model.init, train=False))(KEY, x)
    params, stats = variables["params"], variables["batch_stats"]

    def loss(p):
        logits, updates = model.apply(
            {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(logits**2), (logits, updates["batch_stats"])

    (_, (logits, new_stats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert logits.shape == (x.shape[0], n_classes)
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), stats, new_stats)
    assert all(jax.tree.leaves(moved))  # train mode: every running mean and variance moved
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(jax.device_get(grads)))
    assert np.abs(grads["Dense_0"]["kernel"]).max() > 0

    apply_eval = jax.jit(functools.partial(model.apply, train=False, mutable=["batch_stats"]))
    logits_eval, same = apply_eval(variables, x)
    jax.tree.map(np.testing.assert_array_equal, same["batch_stats"], stats)  # eval mode: unchanged
    assert logits_eval.shape == (x.shape[0], n_classes)
    return variables, new_stats


def test_vgg_small_forward_backward_and_batch_stats():
    # a shrunk cfg and width: the full VGG-16 structure is checked by the hand count below (no compile needed)
    model = VGG(num_classes=10, cfg=(8, 8, "M", 16, "M"), width=0.5)
    x = images(hw=16)
    variables, new_stats = _check_train_eval(model, x, 10)
    p = variables["params"]
    assert p["Conv_0"]["kernel"].shape == (3, 3, 3, 4) and p["Dense_0"]["kernel"].shape == (4 * 4 * 8, 10)
    # torch BatchNorm running mean with momentum 0.1: 0.9·0 + 0.1·(batch mean of the first conv's output)
    conv0 = (
        jax.lax.conv_general_dilated(
            x, p["Conv_0"]["kernel"], (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        + p["Conv_0"]["bias"][None, None, None, :]
    )
    np.testing.assert_allclose(
        new_stats["BatchNorm_0"]["mean"], 0.1 * np.asarray(conv0).mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6
    )


def test_vgg16_hand_count():
    model = VGG(num_classes=10)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    convs = [v for v in VGG16_CFG if v != "M"]
    assert len(convs) == 13
    c_in, conv_params, bn = 3, 0, 0
    for c in convs:
        conv_params += 3 * 3 * c_in * c + c
        bn += 2 * c
        c_in = c
    assert n_params(shapes["params"]) == conv_params + bn + 512 * 10 + 10 == 14_728_266
    assert n_params(shapes["batch_stats"]) == bn


def test_preact_resnet_small_forward_backward_and_batch_stats():
    model = PreActResNet(depth=8, num_classes=5, base_channels=4)
    variables, _ = _check_train_eval(model, images(), 5)
    p = variables["params"]
    # stage 2 and 3 first blocks change width → 1×1 projection with stride 2; stage 1 is the identity
    assert "Conv_2" not in p["PreActBlock_0"] and p["PreActBlock_1"]["Conv_2"]["kernel"].shape == (1, 1, 4, 8)
    for bad in (7, 9, 2):
        with pytest.raises(GsJaxError, match="6n \\+ 2") as err:
            PreActResNet(depth=bad).init(jax.random.key(0), images(n=1))
        assert "\n" not in str(err.value)


def test_preact_resnet110_hand_count():
    model = PreActResNet(depth=110, num_classes=100)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    total, c_in, n = 3 * 3 * 3 * 16, 16, 18
    for c in (16, 32, 64):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c + (c_in * c if c_in != c else 0)
            c_in = c
    total += 2 * 64 + 64 * 100 + 100
    assert n_params(shapes["params"]) == total
    assert 1.7e6 < total < 1.74e6  # "1.7M" for ResNet-110 (He et al., 2016)


@pytest.mark.parametrize("form", ["banded", "patch"])
@pytest.mark.parametrize("shape", [(2, 28, 28, 1, 12), (3, 9, 13, 3, 4)])
def test_banded_conv_equals_lax_conv(shape, form):
    """The LeNet's fast convolutions (banded matmul; im2col patches at small batches) against XLA's own VALID
    convolution, on square and non-square images with one and several input channels: a wrong band offset or a
    row/column mix-up moves it by O(1)."""
    from gs_jax.models.convnets import _banded_conv, _patch_conv

    n, hh, ww, cin, f = shape
    kx, kk, kb = jax.random.split(jax.random.PRNGKey(5), 3)
    h = jax.random.normal(kx, (n, hh, ww, cin))
    kernel, bias = jax.random.normal(kk, (5, 5, cin, f)), jax.random.normal(kb, (f,))
    ref = jax.lax.conv_general_dilated(h, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    got = (_banded_conv if form == "banded" else _patch_conv)(h, kernel, bias)
    assert got.shape == (n, hh - 4, ww - 4, f)
    np.testing.assert_allclose(got, ref + bias, rtol=1e-5, atol=1e-5)
