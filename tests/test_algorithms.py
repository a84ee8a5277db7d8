"""Every registered method's loss against a hand computation in numpy (schedules as SPEC §2.4, the authors' SD
transcribed from their code), its sampling weights, its refusals, and the registry's grids."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, logsumexp

from gs_jax import algorithms
from gs_jax.algorithms import DataInfo
from gs_jax.errors import GsJaxError

INFO = DataInfo(1, n_groups=4, n_envs=2, class_counts=(33, 27), group_counts=(30, 3, 7, 20), name="toy")


@pytest.fixture
def batch(x64):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=2.0, size=60)
    y = (rng.random(60) < 0.45).astype(np.float64)
    env = (np.arange(60) % 2).astype(np.int32)
    group = (2 * y + (rng.random(60) < 0.3)).astype(np.int32)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=4))}
    wn = float(np.sum(np.asarray(params["w"]) ** 2) + np.sum(np.asarray(params["b"]) ** 2))
    return z, y, env, group, params, wn


def nll(z, y):
    p = expit(z)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def call(name, hp, step, batch, info=INFO, state=None):
    z, y, env, group, params, _ = batch
    alg = algorithms.get(name)
    hp = algorithms.hyper(name, hp)
    state = alg.init_state(hp, info) if state is None else state
    b = {"y": jnp.asarray(y), "env": jnp.asarray(env), "group": jnp.asarray(group)}
    loss, aux, new = alg.loss(algorithms.bind(hp, info), state, jnp.asarray(step), jnp.asarray(z), b, params)
    return float(loss), aux, new


def test_erm_and_sd_forms(batch):
    z, y, _, _, _, wn = batch
    n, sd = nll(z, y), np.mean(z**2)
    np.testing.assert_allclose(call("erm", {}, 5, batch)[0], n, rtol=1e-12)
    np.testing.assert_allclose(call("erm", {"l2": 0.01}, 5, batch)[0], n + 0.01 * wn, rtol=1e-12)
    np.testing.assert_allclose(call("sd", {"lam": 0.3}, 5, batch)[0], n + 0.3 * sd, rtol=1e-12)
    hp = {"lam": 1.0, "lam_warmup": 2e-5, "anneal_iters": 450}  # Colored MNIST's sd_plain
    np.testing.assert_allclose(call("sd", hp, 449, batch)[0], n + 2e-5 * sd, rtol=1e-12)
    np.testing.assert_allclose(call("sd", hp, 450, batch)[0], n + sd, rtol=1e-12)
    # the authors' Colored MNIST form: rescaled by c after the anneal step (λ_rel jumps to 1)
    hp = {"coef": 2e-5, "anneal_iters": 450}
    np.testing.assert_allclose(call("sd_rescaled", hp, 449, batch)[0], n + 2e-5 * sd, rtol=1e-12)
    np.testing.assert_allclose(call("sd_rescaled", hp, 450, batch)[0], 2e-5 * (sd + n), rtol=1e-12)


def authors_spw3(yhat, y, lam, gamma):
    """numpy transcription of the authors' loss.py ``spw3`` branch (float64), with λ per class:
    log(1 + exp(-yhat*(2y-1))).mean() + sp*((yhat[y==1]-2.5)**2).mean() + sp*((yhat[y==0]-0.44)**2).mean()"""
    loss = np.log(1 + np.exp(-yhat * (2 * y - 1))).mean()
    loss += lam[1] * ((yhat[y == 1] - gamma[1]) ** 2).mean()
    return loss + lam[0] * ((yhat[y == 0] - gamma[0]) ** 2).mean()


def test_per_class_sd_the_authors_form_and_the_papers(batch):
    z, y = batch[0], batch[1]
    for lam, gamma in (((0.1, 0.1), (0.44, 2.5)), ((0.3, 0.05), (-1.0, 1.7))):
        want = authors_spw3(z, y, lam, gamma)
        np.testing.assert_allclose(
            call("sd_spw3", {"lam": lam, "gamma": gamma}, 0, batch)[0], want, rtol=1e-10
        )
    assert algorithms.get("sd_spw3").defaults == {
        "lam": (0.1, 0.1),
        "gamma": (0.44, 2.5),
    }  # the authors' CelebA
    # the paper's form: (Σ_i ℓ_i + Σ_c λ_c/2 ‖ŷ_c − γ_c‖²) / n; λ_code[c] = λ_paper[c]·n_c/(2n) gives the authors'
    lam_p, gamma = (0.7, 0.2), (0.44, 2.5)
    n = len(z)
    ell = np.log1p(np.exp(-z * (2 * y - 1)))
    want = (ell.sum() + sum(0.5 * lam_p[c] * np.sum((z[y == c] - gamma[c]) ** 2) for c in (0, 1))) / n
    np.testing.assert_allclose(
        call("sd_class", {"lam": lam_p, "gamma": gamma}, 0, batch)[0], want, rtol=1e-10
    )
    lam_code = tuple(lam_p[c] * np.sum(y == c) / (2 * n) for c in (0, 1))
    np.testing.assert_allclose(
        call("sd_spw3", {"lam": lam_code, "gamma": gamma}, 0, batch)[0], want, rtol=1e-10
    )


def test_per_class_sd_with_an_absent_class_is_finite():
    y = np.zeros(16)
    z = np.linspace(-2, 2, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "mean of empty slice"
        assert np.isnan(authors_spw3(z, y, (0.1, 0.1), (0.44, 2.5)))
    alg = algorithms.get("sd_spw3")
    hp = algorithms.bind(algorithms.hyper("sd_spw3"), INFO)

    def f(zz):
        return alg.loss(hp, {}, 0, zz, {"y": jnp.asarray(y)}, {})[0]

    value, grad = jax.value_and_grad(f)(jnp.asarray(z, jnp.float32))
    want = np.log1p(np.exp(z)).mean() + 0.1 * np.mean((z - 0.44) ** 2)
    np.testing.assert_allclose(float(value), want, rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_irm_and_vrex_schedules_on_environment_labels(batch):
    z, y, env, _, _, wn = batch
    e = [env == k for k in (0, 1)]
    pen = np.mean([np.mean((expit(z[m]) - y[m]) * z[m]) ** 2 for m in e])  # SPEC §2.3 closed form
    n = np.mean([nll(z[m], y[m]) for m in e])
    hp = {"l2": 1e-3, "anneal_iters": 190, "penalty_weight": 91257.18613115903}
    np.testing.assert_allclose(call("irm", hp, 189, batch)[0], n + 1e-3 * wn + pen, rtol=1e-10)
    after = (n + 1e-3 * wn + 91257.18613115903 * pen) / 91257.18613115903
    np.testing.assert_allclose(call("irm", hp, 190, batch)[0], after, rtol=1e-10)
    r0, r1 = nll(z[e[0]], y[e[0]]), nll(z[e[1]], y[e[1]])
    hp = {"l2": 1e-3, "anneal_iters": 100, "penalty_weight": 1e4}
    np.testing.assert_allclose(
        call("vrex", hp, 99, batch)[0], r0 + r1 + 1e-3 * wn + (r0 - r1) ** 2, rtol=1e-10
    )
    after = (r0 + r1 + 1e-3 * wn + 1e4 * (r0 - r1) ** 2) / 1e4
    np.testing.assert_allclose(call("vrex", hp, 100, batch)[0], after, rtol=1e-10)
    # a penalty weight below 1 is not divided out
    hp = {"l2": 0.0, "anneal_iters": 0, "penalty_weight": 0.5}
    np.testing.assert_allclose(call("vrex", hp, 3, batch)[0], r0 + r1 + 0.5 * (r0 - r1) ** 2, rtol=1e-10)


def test_group_dro_one_step_by_hand(batch):
    z, y, _, group, _, _ = batch
    ell = np.log1p(np.exp(-z * (2 * y - 1)))
    L = np.array([ell[group == g].mean() if np.any(group == g) else 0.0 for g in range(4)])
    counts = np.array(INFO.group_counts, float)
    q0 = np.full(4, 0.25)
    q = q0 * np.exp(0.1 * (L + 2.0 / np.sqrt(counts)))
    q /= q.sum()
    loss, aux, state = call("group_dro", {"eta": 0.1, "adj": 2.0}, 0, batch)
    np.testing.assert_allclose(np.asarray(state["q"]), q, rtol=1e-6)
    np.testing.assert_allclose(
        loss, q @ L, rtol=1e-6
    )  # the reference scores the unadjusted losses with the new q
    np.testing.assert_allclose(float(aux["nll"]), ell.mean(), rtol=1e-10)


def test_logit_adjustment_class_and_group_priors(batch):
    z, y, _, group, _, _ = batch
    prior = np.array(INFO.class_counts, float) / 60
    shifted = z + 0.5 * (np.log(prior[1]) - np.log(prior[0]))
    np.testing.assert_allclose(call("logit_adjust", {"tau": 0.5}, 0, batch)[0], nll(shifted, y), rtol=1e-6)
    # group prior: groups 2y + a, π(y | a) from the training group counts
    c = np.array(INFO.group_counts, float)
    a = group % 2
    adj = np.log(c[2 + a] / (c[a] + c[2 + a])) - np.log(c[a] / (c[a] + c[2 + a]))
    got = call("logit_adjust", {"tau": 1.0, "prior": "group"}, 0, batch)[0]
    np.testing.assert_allclose(got, nll(z + adj, y), rtol=1e-6)
    # k classes: softmax CE of ŷ + τ·log π
    info3 = DataInfo(3, class_counts=(10, 30, 60))
    rng = np.random.default_rng(0)
    zk, yk = rng.normal(size=(8, 3)), rng.integers(0, 3, 8)
    alg = algorithms.get("logit_adjust")
    hp = algorithms.hyper("logit_adjust", {"tau": 2.0})
    loss, _, _ = alg.loss(algorithms.bind(hp, info3), alg.init_state(hp, info3), 0, jnp.asarray(zk),
                          {"y": jnp.asarray(yk)}, {})  # fmt: skip
    s = zk + 2.0 * np.log([0.1, 0.3, 0.6])
    np.testing.assert_allclose(float(loss), np.mean(logsumexp(s, axis=1) - s[np.arange(8), yk]), rtol=1e-6)


def test_sampling_weights_group_balanced_and_jtt():
    g = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    info = DataInfo(1, n_groups=4, class_counts=(4, 6), group_counts=(3, 1, 2, 4))
    w = algorithms.get("group_dro").sampling(algorithms.hyper("group_dro"), info, {"group": g})
    per_group = [w[g == k].sum() for k in range(4)]
    np.testing.assert_allclose(per_group, [1.0] * 4)  # every group equally likely
    assert (
        algorithms.get("group_dro").sampling(algorithms.hyper("group_dro", {"reweight": 0.0}), info, {})
        is None
    )
    errors = np.array([True, False, False, True])
    w = algorithms.get("jtt").sampling(
        algorithms.hyper("jtt", {"lambda_up": 5.0}), info, {"error_set": errors}
    )
    np.testing.assert_array_equal(w, [5.0, 1.0, 1.0, 5.0])
    with pytest.raises(GsJaxError, match="first stage"):
        algorithms.get("jtt").sampling(algorithms.hyper("jtt"), info, {})


def test_refusals_name_what_the_data_lacks():
    plain = DataInfo(10, class_counts=(1,) * 10, name="fashion-mnist")
    for name, what in (("irm", "environment labels"), ("vrex", "environment labels"), ("group_dro", "group labels"),
                       ("dfr", "group labels"), ("sd_spw3", "binary task")):  # fmt: skip
        with pytest.raises(GsJaxError, match=what):
            algorithms.check_supported(name, algorithms.hyper(name), plain)
    with pytest.raises(GsJaxError, match="group labels"):
        algorithms.check_supported(
            "logit_adjust", algorithms.hyper("logit_adjust", {"prior": "group"}), plain
        )
    for name in ("erm", "sd", "jtt", "logit_adjust"):
        algorithms.check_supported(name, algorithms.hyper(name), plain)


def test_registry_hyper_parameters_and_grids():
    assert {"erm", "sd", "irm", "vrex", "group_dro", "jtt", "logit_adjust", "dfr"} <= set(
        algorithms.ALGORITHMS
    )
    with pytest.raises(GsJaxError, match="registered"):
        algorithms.get("dro")
    with pytest.raises(GsJaxError, match="unknown hyper-parameters"):
        algorithms.hyper("sd", {"lambda": 0.1})
    with pytest.raises(GsJaxError, match="must be a pair"):
        algorithms.hyper("sd_spw3", {"lam": 0.1})
    with pytest.raises(GsJaxError, match="must be finite"):
        algorithms.hyper("sd", {"lam": float("nan")})
    grid = algorithms.grid("sd_spw3", {"lam": ((0.03, 0.03), (0.1, 0.1)), "gamma": ((0.44, 2.5), (0.0, 0.0)),
                                       "epochs": 3})  # fmt: skip
    assert len(grid) == 4 and grid[1] == {"lam": (0.03, 0.03), "gamma": (0.0, 0.0)}
    assert algorithms.grid("sd", {"lam": 0.1}) == [algorithms.hyper("sd", {"lam": 0.1})]
    assert [h["prior"] for h in algorithms.grid("logit_adjust", {"prior": ("class", "group")})] == [
        "class",
        "group",
    ]
    assert algorithms.static(algorithms.hyper("logit_adjust")) == (("prior", "class"),)
    assert "tau" in algorithms.numeric(algorithms.hyper("logit_adjust"))
