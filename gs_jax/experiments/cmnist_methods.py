"""Colored MNIST rows that are more than one training run: JTT (its first stage, then the up-weighted second) and
DFR (an ERM network, then its last layer refit on group-balanced features), and the dispatch of every row.

Colored MNIST trains full batch, so JTT's "epoch" is one step: its first stage is ERM for ``identify_epochs``
full-batch steps of the row's schedule (as cheap as that many steps), its error set the training examples that
network gets wrong; the second stage draws ``n`` examples per step with replacement, the error set ``lambda_up``
times as likely (the registry's sampling weights; Liu et al. 2021, Algorithm 1).

DFR (Kirichenko et al. 2023) refits the last layer on group-balanced *held-out* data; the Colored MNIST protocol
(SPEC §2.1) has none (the e = 0.9 environment is the test set), so this is the paper's ``DFR^Tr_Tr`` variant: the
ERM row's network, its penultimate features of the training set standardised, the inverse penalty ``c`` chosen by
the worst-group accuracy on one half of the training set of a fit on a group-balanced subsample of the other half,
then ``n_refits`` group-balanced refits on all of it, averaged. ``penalty = "l1"`` (the reference's liblinear
L1 logistic regression) is solved by FISTA (:func:`fit_l1`), ``"l2"`` by ``group_methods.fit_last_layer``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import group_methods, losses, metrics
from gs_jax.errors import check
from gs_jax.experiments import cmnist_core as cmnist


def check_row(row: cmnist.Row) -> None:
    """Refuse, in one line, a two-stage row the schedule cannot run."""
    for hp in row.settings:
        if row.method == "jtt":
            t = int(hp["identify_epochs"])
            check(
                1 <= t, f"methods.{row.name}.identify_epochs must be ≥ 1 (full-batch steps of ERM), got {t}"
            )
        if row.method == "dfr":
            check(
                hp["penalty"] in ("l1", "l2"),
                f"methods.{row.name}.penalty must be 'l1' or 'l2', got {hp['penalty']!r}",
            )
            check(int(hp["n_refits"]) >= 1, f"methods.{row.name}.n_refits must be ≥ 1, got {hp['n_refits']}")
            check(all(float(c) > 0 for c in np.atleast_1d(hp["c"])), f"methods.{row.name}.c must be > 0")


def run_row(row: cmnist.Row, data, seeds, *, checkpoint_dir, **kw) -> tuple[list[cmnist.CmnistResult], dict]:
    """Train one row: ``(results per setting, extra summary entries)``."""
    if row.method == "jtt":
        return _jtt(row, data, seeds, checkpoint_dir=checkpoint_dir, **kw)
    if row.method == "dfr":
        return _dfr(row, data, seeds, checkpoint_dir=checkpoint_dir, **kw)
    results = cmnist.train_restarts(row.method, data, seeds, settings=row.settings, schedule=row.schedule,
                                    name=row.name, checkpoint_dir=checkpoint_dir, **kw)  # fmt: skip
    return results, {}


# ---------------------------------------------------------------------------------------------------------------
# JTT
# ---------------------------------------------------------------------------------------------------------------


def _train_logits(schedule, params, x):
    model = cmnist.model_of(schedule)
    return np.asarray(jax.jit(jax.vmap(lambda p, xx: model.logits({"params": p}, xx)))(params, x))


def _jtt(row, data, seeds, *, checkpoint_dir, **kw):
    results, extra = [], {"jtt_identification": []}
    for hp in row.settings:
        t = int(hp["identify_epochs"])
        first = {**row.schedule, "steps": t}
        ident = cmnist.train_restarts("erm", data, seeds, schedule=first, name=f"{row.name}: identification",
                                      checkpoint_dir=None if checkpoint_dir is None
                                      else checkpoint_dir.with_name(f"{row.name}_identify_T{t}"),
                                      **{**kw, "on_eval": None})[0]  # fmt: skip
        logits = _train_logits(first, ident.params, data["x"])
        errors = np.stack([group_methods.jtt_error_set((lg > 0).astype(np.int32), y.astype(np.int32))
                           for lg, y in zip(logits, data["y"], strict=True)])  # fmt: skip
        groups = [
            np.bincount(g[e], minlength=cmnist.N_GROUPS).tolist()
            for g, e in zip(data["group"], errors, strict=True)
        ]
        extra["jtt_identification"].append({"identify_steps": t, "error_set_size": errors.sum(1).tolist(),
                                            "error_set_groups": groups})  # fmt: skip
        results += cmnist.train_restarts("jtt", data, seeds, settings=[hp], schedule=row.schedule, name=row.name,
                                         checkpoint_dir=checkpoint_dir, error_sets=errors, **kw)  # fmt: skip
    return results, extra


# ---------------------------------------------------------------------------------------------------------------
# DFR
# ---------------------------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("iterations",))
def _fista(x_na, y_n, l1, iterations: int):
    """min_θ mean_i softplus(−(2y−1)·x_iᵀθ) + l1·‖w‖₁ (bias θ_last unpenalised) by FISTA with step 1/L,
    L = ‖X‖₂²/(4n) (the logistic loss's gradient Lipschitz constant). Returns ``(θ, max |prox-gradient step|·L)``."""
    n = x_na.shape[0]
    lip = jnp.linalg.norm(x_na, 2) ** 2 / (4.0 * n) + 1e-12
    mask = jnp.ones(x_na.shape[1], x_na.dtype).at[-1].set(0.0)

    def grad(theta):
        return jax.grad(lambda t: losses.mean_nll(x_na @ t, y_n))(theta)

    def prox(v):
        return jnp.where(mask > 0, jnp.sign(v) * jnp.maximum(jnp.abs(v) - l1 / lip, 0.0), v)

    def body(_, carry):
        theta, z, tk = carry
        new = prox(z - grad(z) / lip)
        tn = (1.0 + jnp.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
        return new, new + (tk - 1.0) / tn * (new - theta), tn

    zero = jnp.zeros(x_na.shape[1], x_na.dtype)
    theta, _, _ = jax.lax.fori_loop(0, iterations, body, (zero, zero, jnp.asarray(1.0, x_na.dtype)))
    residual = jnp.max(jnp.abs(prox(theta - grad(theta) / lip) - theta)) * lip
    return theta, residual


def fit_l1(features_nd, y_n, *, c: float, iterations: int = 3000):
    """L1 logistic regression as scikit-learn's ``LogisticRegression(penalty="l1", C=c)`` up to the intercept
    (unpenalised here, penalised by liblinear): min c·Σ log-loss + ‖w‖₁, i.e. the mean loss + ‖w‖₁/(c·n).
    Returns ``(w, b, residual)`` (the prox-gradient residual; ≈ 0 at the optimum)."""
    x = jnp.asarray(features_nd, jnp.float32)
    x_na = jnp.concatenate([x, jnp.ones((x.shape[0], 1), x.dtype)], axis=1)
    theta, res = _fista(x_na, jnp.asarray(y_n, jnp.float32), 1.0 / (c * x.shape[0]), iterations)
    return theta[:-1], theta[-1], float(res)


def _fit(hp, f, y, c):
    if hp["penalty"] == "l1":
        w, b, _ = fit_l1(f, y, c=c)
        return np.asarray(w), float(b)
    w, b = group_methods.fit_last_layer(f, y, l2=1.0 / (c * len(y)))
    return np.asarray(w), float(b)


def _worst(logits, y, g):
    acc = np.asarray(
        metrics.group_accuracies(jnp.asarray(logits), jnp.asarray(y), jnp.asarray(g), cmnist.N_GROUPS)
    )
    return float(np.nanmin(acc))


def _dfr(row, data, seeds, *, checkpoint_dir, **kw):
    base = cmnist.train_restarts("erm", data, seeds, schedule=row.schedule, name=f"{row.name}: ERM network",
                                 checkpoint_dir=checkpoint_dir, **kw)[0]  # fmt: skip
    model = cmnist.model_of(row.schedule)
    feats = jax.jit(jax.vmap(lambda p, x: model.features({"params": p}, x)))
    results, extra = [], {"dfr": []}
    for hp in row.settings:
        cs = [float(c) for c in np.atleast_1d(hp["c"])]
        chosen, finals = [], {k: [] for k in ("train_acc", "test_acc", "train_nll", "test_nll")}
        four = {env: {"acc": [], "entropy": []} for env in base.four_env}
        for r, seed in enumerate(seeds):
            p = jax.tree_util.tree_map(lambda a, r=r: a[r : r + 1], base.params)
            ftr = np.asarray(feats(p, data["x"][r : r + 1]))[0]
            mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
            ftr = (ftr - mu) / sd
            y, g = data["y"][r], data["group"][r]
            key = jax.random.fold_in(
                jax.random.PRNGKey(int(seed) + 7919), 0
            )  # the worst-group DFR's seed offset
            perm = np.asarray(jax.random.permutation(key, len(y)))
            a, b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
            scores = []
            for j, c in enumerate(cs):
                sub = a[
                    group_methods.group_balanced_indices(
                        g[a], cmnist.N_GROUPS, jax.random.fold_in(key, 1 + j)
                    )
                ]
                w, c0 = _fit(hp, ftr[sub], y[sub], c)
                scores.append(_worst(ftr[b] @ w + c0, y[b], g[b]))
            c = cs[int(np.argmax(scores))]
            ws, bs = [], []
            for k in range(int(hp["n_refits"])):
                idx = group_methods.group_balanced_indices(
                    g, cmnist.N_GROUPS, jax.random.fold_in(key, 1000 + k)
                )
                w, c0 = _fit(hp, ftr[idx], y[idx], c)
                ws.append(w)
                bs.append(c0)
            w, c0 = np.mean(ws, 0), float(np.mean(bs))

            def head(x, p=p, mu=mu, sd=sd, w=w, c0=c0):
                return jnp.asarray(((np.asarray(feats(p, x[None]))[0] - mu) / sd) @ w + c0)

            chosen.append(c)
            for split, x_, y_ in (("train", data["x"][r], y), ("test", data["test_x"][r], data["test_y"][r])):
                lg = head(x_)
                finals[f"{split}_acc"].append(float(losses.mean_accuracy(lg, jnp.asarray(y_))))
                finals[f"{split}_nll"].append(float(losses.mean_nll(lg, jnp.asarray(y_))))
            for i, env in enumerate(four):
                lg = head(data["four_x"][r, i])
                four[env]["acc"].append(float(losses.mean_accuracy(lg, jnp.asarray(data["four_y"][r, i]))))
                four[env]["entropy"].append(float(jnp.mean(metrics.binary_entropy_from_logits(lg))))
        final = {"step": base.final["step"], **{k: np.asarray(v) for k, v in finals.items()}}
        four_env = {env: {k: np.asarray(v) for k, v in d.items()} for env, d in four.items()}
        results.append(base._replace(final=final, four_env=four_env))
        extra["dfr"].append({"protocol": "DFR^Tr_Tr (no validation split): c by worst-group accuracy on half of the "
                                         "training set", "c_chosen": chosen,
                             "erm_network_test_acc": [float(v) for v in base.final["test_acc"]]})  # fmt: skip
    return results, extra


__all__ = ["check_row", "run_row", "fit_l1"]
