"""Multilayer perceptrons: the Colored MNIST MLP (Section 4.3, SPEC §2.2) and the two-moons networks (Section 2,
Appendix B, SPEC §1.2/§1.5) with PyTorch's default ``nn.Linear`` initialisation where the figures depend on it."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class CmnistMLP(nn.Module):
    """392 → hidden → hidden → 1 ReLU MLP with Xavier-uniform weights and zero biases (the authors' init).

    ``grayscale=True`` is the oracle: the (n, 392) input is viewed as (n, 2, 196) and the two colour channels are
    summed, recovering the grey digit whatever its colour; the first layer is then 196 → hidden.
    Returns logits of shape (n,).
    """

    hidden: int = 300
    grayscale: bool = False

    @nn.compact
    def __call__(self, x_nd: jnp.ndarray, features_only: bool = False) -> jnp.ndarray:
        if self.grayscale:
            x_nd = x_nd.reshape(x_nd.shape[0], 2, -1).sum(axis=1)
        dense = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
        h = nn.relu(nn.Dense(self.hidden, **dense)(x_nd))
        h = nn.relu(nn.Dense(self.hidden, **dense)(h))
        if features_only:
            return h
        return nn.Dense(1, **dense)(h)[:, 0]


class Linear(nn.Module):
    """ŷ = Wx + b on flattened inputs (flax's default init): the model for which Eq. 5 is exact (Φ₀ = [x, 1]), a
    control beside the networks. ``num_outputs=1`` returns logits of shape (n,), else (n, num_outputs)."""

    num_outputs: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out = nn.Dense(self.num_outputs)(x.reshape(x.shape[0], -1))
        return out[:, 0] if self.num_outputs == 1 else out


# ----------------------------------------------------------------------------------------------------------------
# Two-moons (Section 2, Fig. 1, Appendix B; SPEC §1.2, §1.5): ReLU MLPs with PyTorch's default nn.Linear init
# ----------------------------------------------------------------------------------------------------------------


def _torch_uniform(fan_in: int):
    """U(−1/√fan_in, +1/√fan_in): torch's nn.Linear default for both weight (kaiming_uniform, a=√5) and bias."""
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """``nn.Dense`` with PyTorch's default ``nn.Linear`` initialisation (weights AND biases uniform ±1/√fan_in).

    Flax's default (lecun_normal weights, zero biases) is a different network at init; the two-moons figures
    depend on the authors' init (SPEC §1.2).
    """

    features: int

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _torch_uniform(fan_in), (fan_in, self.features))
        bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
        return x @ kernel + bias


class TorchBatchNorm(nn.Module):
    """``torch.nn.BatchNorm1d`` semantics: train mode normalises with the batch mean and BIASED variance and
    updates running statistics with momentum 0.1 using the UNBIASED variance; eval mode uses the running ones.

    Running statistics live in the ``batch_stats`` collection (``mean`` starts at 0, ``var`` at 1); affine scale 1,
    shift 0 at init.
    """

    momentum: float = 0.1
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x_nd, train: bool):
        d = x_nd.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((d,), x_nd.dtype))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((d,), x_nd.dtype))
        scale = self.param("scale", nn.initializers.ones, (d,))
        shift = self.param("bias", nn.initializers.zeros, (d,))
        if train:
            n = x_nd.shape[0]
            mean = jnp.mean(x_nd, axis=0)
            var = jnp.mean((x_nd - mean) ** 2, axis=0)
            if not self.is_initializing():
                m = self.momentum
                ra_mean.value = (1 - m) * ra_mean.value + m * jax.lax.stop_gradient(mean)
                ra_var.value = (1 - m) * ra_var.value + m * jax.lax.stop_gradient(var) * n / max(n - 1, 1)
        else:
            mean, var = ra_mean.value, ra_var.value
        return (x_nd - mean) / jnp.sqrt(var + self.eps) * scale + shift


class MoonsMLP(nn.Module):
    """The authors' two-moons network: ``Linear(2, h) → [BatchNorm] → [Dropout] → ReLU → (Linear(h, h) → ReLU)×
    (n_hidden − 1) → Linear(h, 1)`` with torch init; returns logits of shape (n,).

    Defaults are the Fig. 1 net (2 → 500 → 1, 2,001 parameters). Appendix B variants: ``dropout=0.7`` (inverted
    dropout on the first pre-activation, before ReLU; needs an rng ``dropout`` when ``train``), ``batchnorm=True``
    (BatchNorm1d between the first Linear and ReLU), ``n_hidden=4`` (the "5-layer" net: 4 hidden layers).
    """

    hidden: int = 500
    n_hidden: int = 1
    dropout: float = 0.0
    batchnorm: bool = False

    @nn.compact
    def __call__(self, x_n2: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        h = TorchDense(self.hidden)(x_n2)
        if self.batchnorm:
            h = TorchBatchNorm()(h, train)
        if self.dropout > 0:
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.relu(h)
        for _ in range(self.n_hidden - 1):
            h = nn.relu(TorchDense(self.hidden)(h))
        return TorchDense(1)(h)[..., 0]
