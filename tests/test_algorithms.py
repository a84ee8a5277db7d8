"""Each objective's schedule against a hand computation in numpy (SPEC §2.4)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from gs_jax import algorithms
from gs_jax.errors import GsJaxError


@pytest.fixture
def envs(x64):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=2.0, size=(2, 30))
    y = (rng.random((2, 30)) < 0.5).astype(np.float64)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=4))}
    wn = float(np.sum(np.asarray(params["w"]) ** 2) + np.sum(np.asarray(params["b"]) ** 2))
    return z, y, params, wn


def nll(z, y):
    p = expit(z)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def call(hp, step, z, y, params):
    algorithm = algorithms.get(hp.algorithm)
    state = algorithm.init_state(hp)
    loss, aux, new_state = algorithm.loss(
        hp, state, jnp.asarray(step), jnp.asarray(z), jnp.asarray(y), params
    )
    assert new_state == state  # the four environment methods carry no state
    return float(loss), aux


def test_erm(envs):
    z, y, params, wn = envs
    hp = algorithms.Hyper("erm")
    np.testing.assert_allclose(call(hp, 5, z, y, params)[0], nll(z.ravel(), y.ravel()), rtol=1e-12)
    hp = algorithms.Hyper("erm", l2=0.01)
    np.testing.assert_allclose(
        call(hp, 5, z, y, params)[0], nll(z.ravel(), y.ravel()) + 0.01 * wn, rtol=1e-12
    )


def test_sd_authors_schedule(envs):
    z, y, params, _ = envs
    c, n, sd = 2e-5, nll(z.ravel(), y.ravel()), np.mean(z**2)
    hp = algorithms.Hyper("sd", anneal_iters=450, sd_coef=c)
    np.testing.assert_allclose(call(hp, 449, z, y, params)[0], n + c * sd, rtol=1e-12)
    np.testing.assert_allclose(
        call(hp, 450, z, y, params)[0], c * (sd + n), rtol=1e-12
    )  # rescaled, λ_rel = 1


def test_sd_plain(envs):
    z, y, params, _ = envs
    n, sd = nll(z.ravel(), y.ravel()), np.mean(z**2)
    hp = algorithms.Hyper("sd", anneal_iters=450, sd_coef=2e-5, sd_form="plain", sd_lambda=1.0)
    np.testing.assert_allclose(call(hp, 10, z, y, params)[0], n + 2e-5 * sd, rtol=1e-12)
    np.testing.assert_allclose(call(hp, 1000, z, y, params)[0], n + sd, rtol=1e-12)
    with pytest.raises(ValueError, match="sd_form"):
        call(hp._replace(sd_form="other"), 0, z, y, params)


def test_irm_schedule(envs):
    z, y, params, wn = envs
    pen = np.mean([np.mean((expit(z[e]) - y[e]) * z[e]) ** 2 for e in (0, 1)])
    n = np.mean([nll(z[e], y[e]) for e in (0, 1)])
    hp = algorithms.Hyper("irm", l2=1e-3, anneal_iters=190, penalty_weight=91257.18613115903)
    np.testing.assert_allclose(call(hp, 189, z, y, params)[0], n + 1e-3 * wn + pen, rtol=1e-10)
    after = (n + 1e-3 * wn + 91257.18613115903 * pen) / 91257.18613115903
    np.testing.assert_allclose(call(hp, 190, z, y, params)[0], after, rtol=1e-10)


def test_vrex_schedule(envs):
    z, y, params, wn = envs
    r0, r1 = nll(z[0], y[0]), nll(z[1], y[1])
    hp = algorithms.Hyper("vrex", l2=1e-3, anneal_iters=100, penalty_weight=1e4)
    np.testing.assert_allclose(
        call(hp, 99, z, y, params)[0], r0 + r1 + 1e-3 * wn + (r0 - r1) ** 2, rtol=1e-10
    )
    after = (r0 + r1 + 1e-3 * wn + 1e4 * (r0 - r1) ** 2) / 1e4
    np.testing.assert_allclose(call(hp, 100, z, y, params)[0], after, rtol=1e-10)


def test_penalty_weight_below_one_is_not_divided(envs):
    z, y, params, wn = envs
    r0, r1 = nll(z[0], y[0]), nll(z[1], y[1])
    hp = algorithms.Hyper("vrex", l2=0.0, anneal_iters=0, penalty_weight=0.5)
    np.testing.assert_allclose(call(hp, 3, z, y, params)[0], r0 + r1 + 0.5 * (r0 - r1) ** 2, rtol=1e-10)


def test_sd_per_class_against_numpy(envs):
    """Σ_c λ_c/2 · mean_{y=c}(ŷ − γ_c)² over both environments, on top of the mean BCE."""
    z, y, params, _ = envs
    lam, gam = (0.3, 0.1), (-0.5, 2.0)
    hp = algorithms.Hyper("sd_per_class", sd_lam_c=lam, sd_gamma_c=gam)
    zf, yf = z.reshape(-1), y.reshape(-1)
    pen = sum(lam[c] / 2 * np.mean((zf[yf == c] - gam[c]) ** 2) for c in (0, 1))
    np.testing.assert_allclose(call(hp, 0, z, y, params)[0], nll(zf, yf) + pen, rtol=1e-10)


def test_registry():
    assert set(algorithms.ALGORITHMS) == {"erm", "sd", "sd_per_class", "irm", "vrex"}
    with pytest.raises(GsJaxError, match="choose from"):
        algorithms.get("dro")
