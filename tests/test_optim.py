"""The torch-style optimisers against their update rules written out (SPEC, conventions): SGD with momentum
(buf = g at the first step), Nesterov, coupled weight decay on every parameter, MultiStepLR milestones, Adam."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gs_jax import optim
from gs_jax.errors import GsJaxError

TARGET = jnp.array([1.0, -2.0, 0.5])


def _grad(p):
    return 3.0 * (p - TARGET) + jnp.sin(p)


def _run(tx, p0, steps):
    p, state = p0, tx.init(p0)
    for _ in range(steps):
        u, state = tx.update(_grad(p), state, p)
        p = optax.apply_updates(p, u)
    return p


def _torch_sgd(p, steps, lr, wd, momentum=0.9, nesterov=False, lr_at=None):
    """torch.optim.SGD(momentum, dampening=0, nesterov, weight_decay=wd), written out."""
    buf = None
    for t in range(steps):
        g = _grad(p) + wd * p
        buf = g if buf is None else momentum * buf + g
        step = g + momentum * buf if nesterov else buf
        p = p - (lr_at(t) if lr_at else lr) * step
    return p


P0 = jnp.array([0.3, 0.2, -0.1])


def test_sgd_momentum_weight_decay_and_nesterov_match_torch(x64):
    for tx in (
        optim.injected("sgd", 1e-2, 2e-4),
        optim.build(optim.spec(name="sgd", lr=1e-2, weight_decay=2e-4)),
    ):
        np.testing.assert_allclose(_run(tx, P0, 25), _torch_sgd(P0, 25, 1e-2, 2e-4), rtol=1e-12)
    nest = optim.build(optim.spec(name="sgd", lr=1e-2, nesterov=True, weight_decay=1e-3))
    np.testing.assert_allclose(_run(nest, P0, 25), _torch_sgd(P0, 25, 1e-2, 1e-3, nesterov=True), rtol=1e-12)


def test_milestones_multiply_the_learning_rate_at_epoch_boundaries(x64):
    tx = optim.build(optim.spec(name="sgd", lr=0.1, milestones=(2, 3)), steps_per_epoch=4)
    want = _torch_sgd(P0, 16, None, 0.0, lr_at=lambda t: 0.1 * 0.1 ** ((t >= 8) + (t >= 12)))
    np.testing.assert_allclose(_run(tx, P0, 16), want, rtol=1e-12)


def test_adam_matches_torch(x64):
    for tx in (optim.injected("adam", 3e-3), optim.build(optim.spec(name="adam", lr=3e-3))):
        p = q = P0
        m = v = jnp.zeros_like(P0)
        state = tx.init(p)
        for t in range(1, 21):
            u, state = tx.update(_grad(p), state, p)
            p = optax.apply_updates(p, u)
            g = _grad(q)
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
            q = q - 3e-3 * (m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_bad_specs_are_one_line_errors():
    with pytest.raises(GsJaxError, match="unknown optimiser 'rmsprop'"):
        optim.spec(name="rmsprop")
    with pytest.raises(GsJaxError, match="unknown optimiser keys"):
        optim.spec(name="sgd", learning_rate=0.1)
    with pytest.raises(GsJaxError, match="learning rate must be > 0"):
        optim.spec(lr=-1.0)
    with pytest.raises(GsJaxError, match="unknown optimiser"):
        optim.injected("rmsprop")
