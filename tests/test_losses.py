"""Each loss and penalty against an independent computation (numpy closed forms, finite differences, scipy)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from gs_jax import losses


@pytest.fixture
def batch(x64):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=50)
    y = (rng.random(50) < 0.5).astype(np.float64)
    return z, y


def test_mean_nll_matches_numpy(batch):
    z, y = batch
    p = expit(z)
    ref = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(losses.mean_nll(jnp.asarray(z), jnp.asarray(y)), ref, rtol=1e-12)
    # stable for huge logits (the naive form overflows)
    assert np.isfinite(losses.mean_nll(jnp.array([1e4, -1e4]), jnp.array([0.0, 1.0])))


def test_accuracy_tie_counts_as_class_zero():
    z = jnp.array([0.0, 0.0, 1.0, -1.0])
    y = jnp.array([0.0, 1.0, 1.0, 1.0])
    assert float(losses.mean_accuracy(z, y)) == 0.5


def test_sd_penalty(batch):
    z, _ = batch
    np.testing.assert_allclose(losses.sd_penalty(jnp.asarray(z)), np.mean(z**2), rtol=1e-12)


def test_sd_per_class(batch):
    z, y = batch
    lam, gam = (0.3, 2.0), (-1.0, 0.5)
    ref = sum(0.5 * lam[c] * np.mean((z[y == c] - gam[c]) ** 2) for c in (0, 1))
    got = losses.sd_penalty_per_class(jnp.asarray(z), jnp.asarray(y), lam, gam)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_irm_penalty_finite_difference_and_closed_form(batch):
    z, y = batch

    def nll(s):
        p = expit(s * z)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    h = 1e-5
    fd = (nll(1 + h) - nll(1 - h)) / (2 * h)  # central difference, error O(h²) ≈ 1e-10
    got = float(losses.irm_penalty(jnp.asarray(z), jnp.asarray(y)))
    np.testing.assert_allclose(got, fd**2, rtol=1e-7)
    closed = np.mean((expit(z) - y) * z) ** 2  # SPEC §2.3 closed form
    np.testing.assert_allclose(got, closed, rtol=1e-12)


def test_vrex_penalties(x64):
    risks = np.array([0.3, 0.7, 0.4])
    np.testing.assert_allclose(losses.vrex_penalty(jnp.asarray(risks)), np.var(risks), rtol=1e-12)
    np.testing.assert_allclose(losses.vrex_penalty_reference(0.3, 0.7), 0.16, rtol=1e-12)
    two = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(
        4 * losses.vrex_penalty(two), losses.vrex_penalty_reference(0.3, 0.7), rtol=1e-12
    )


def test_entropy_matches_authors_formula_and_is_stable(batch):
    z, _ = batch
    p = expit(z)
    authors = np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p + 1e-8)))
    np.testing.assert_allclose(losses.binary_entropy_from_logits(jnp.asarray(z)), authors, atol=1e-6)
    # where the authors' formula gives NaN (p underflows to 0), ours gives ~0
    big = losses.binary_entropy_from_logits(jnp.array([-200.0, 200.0], dtype=jnp.float32))
    assert np.isfinite(big) and float(big) < 1e-6
    np.testing.assert_allclose(losses.binary_entropy_from_logits(jnp.zeros(3)), np.log(2), rtol=1e-12)


def test_weight_norm(x64):
    params = {"a": {"kernel": jnp.ones((2, 3)), "bias": jnp.arange(3.0)}, "b": jnp.array([2.0])}
    assert float(losses.weight_norm(params)) == 6 + 5 + 4
