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


def test_per_class_sd_forms_against_the_paper_and_the_authors_code(batch):
    # Unbalanced classes (n₀ ≠ n₁) and distinct λ_c, γ_c, so that a swapped class index, a batch-size (n) instead
    # of per-class (n_c) normalisation or a lost/extra ½ each change the value.
    z, y = batch
    z, y = z[:37], y[:37]
    idx = [np.flatnonzero(y == c) for c in (0, 1)]
    assert len(idx[0]) != len(idx[1])
    zj, yj = jnp.asarray(z), jnp.asarray(y)
    lam, gam = (0.3, 2.0), (-1.0, 0.5)
    # the paper (§4.4, Eq. 17 per class): Σ_c (λ_c/2)·‖ŷ_c − γ_c‖², divided by n
    paper = sum(lam[c] / 2 * np.sum((z[idx[c]] - gam[c]) ** 2) for c in (0, 1)) / len(z)
    np.testing.assert_allclose(losses.sd_class_penalty(zj, yj, lam, gam), paper, rtol=1e-12)
    # the authors' CelebA code (--mode spw3), transcribed literally, no ½, per-class means:
    #   sp * ((yhat[y == 1] - 2.5) ** 2).mean() + sp * ((yhat[y == 0] - 0.44) ** 2).mean(),  sp = 0.1
    sp = 0.1
    authors = sp * ((z[y == 1] - 2.5) ** 2).mean() + sp * ((z[y == 0] - 0.44) ** 2).mean()
    np.testing.assert_allclose(losses.sd_spw3_penalty(zj, yj, (sp, sp), (0.44, 2.5)), authors, rtol=1e-12)
    # an absent class adds nothing (the authors' .mean() of an empty tensor is NaN)
    only0 = jnp.zeros(5)
    assert float(losses.sd_spw3_penalty(jnp.ones(5), only0, (sp, sp), (0.44, 2.5))) == pytest.approx(
        sp * 0.56**2
    )


def test_cross_entropy_binary_and_k_class(batch):
    z, y = batch
    p = expit(z)
    np.testing.assert_allclose(losses.per_example_nll(jnp.asarray(z), jnp.asarray(y)),
                               -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-10)  # fmt: skip
    rng = np.random.default_rng(1)
    zk, yk = rng.normal(size=(20, 4)), rng.integers(0, 4, 20)
    logp = zk - np.log(np.exp(zk).sum(1, keepdims=True))
    np.testing.assert_allclose(losses.mean_nll(jnp.asarray(zk), jnp.asarray(yk)), -logp[np.arange(20), yk].mean(),
                               rtol=1e-12)  # fmt: skip


def test_the_logistic_gradient_keeps_its_precision_at_large_margins():
    """float32, margin 30: the true gradient is −σ(−30) ≈ −9.4e-14; the form softplus(ŷ) − yŷ would give σ(ŷ) − y = 0."""
    import jax

    g = jax.grad(lambda z: losses.mean_nll(z, jnp.array([1.0], jnp.float32)))(jnp.array([30.0], jnp.float32))
    np.testing.assert_allclose(float(g[0]), -expit(-30.0), rtol=1e-5)


def test_segment_means_and_the_per_environment_irm_penalty(batch):
    z, y = batch
    env = np.arange(len(z)) % 3
    means, counts = losses.segment_means(jnp.asarray(z), jnp.asarray(env), 4)
    np.testing.assert_allclose(means[:3], [z[env == e].mean() for e in range(3)], rtol=1e-12)
    assert float(means[3]) == 0.0 and list(np.asarray(counts)) == [17, 17, 16, 0]
    per_env = losses.irm_penalty(jnp.asarray(z), jnp.asarray(y), jnp.asarray(env), 3)
    for e in range(3):
        want = losses.irm_penalty(jnp.asarray(z[env == e]), jnp.asarray(y[env == e]))
        np.testing.assert_allclose(per_env[e], want, rtol=1e-10)


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
    two = jnp.array([0.3, 0.7])
    np.testing.assert_allclose(losses.vrex_penalty_reference(two), 0.16, rtol=1e-12)
    np.testing.assert_allclose(4 * losses.vrex_penalty(two), losses.vrex_penalty_reference(two), rtol=1e-12)
    # E > 2: 2·Σ(r − r̄)², i.e. 2E × the variance
    np.testing.assert_allclose(
        losses.vrex_penalty_reference(jnp.asarray(risks)), 6 * np.var(risks), rtol=1e-12
    )


def test_weight_norm(x64):
    params = {"a": {"kernel": jnp.ones((2, 3)), "bias": jnp.arange(3.0)}, "b": jnp.array([2.0])}
    assert float(losses.weight_norm(params)) == 6 + 5 + 4
