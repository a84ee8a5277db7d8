"""Losses and penalties as pure functions of logits and labels ({0,1} labels, logits of shape (n,)).

CE, Spectral Decoupling (Eq. 17: λ/2‖ŷ‖², and the per-class variant λ_c/2‖ŷ−γ_c‖²), IRM penalty, V-REx.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mean_nll(logits_n: jax.Array, y_n: jax.Array) -> jax.Array:
    """Binary cross-entropy with logits, mean over examples (stable: softplus(ŷ) − y·ŷ)."""
    return jnp.mean(jax.nn.softplus(logits_n) - y_n * logits_n)


def mean_accuracy(logits_n: jax.Array, y_n: jax.Array) -> jax.Array:
    """Mean of [(ŷ > 0) == y]; a logit of exactly 0 predicts class 0 (as the authors' code)."""
    return jnp.mean(((logits_n > 0).astype(y_n.dtype) == y_n).astype(jnp.float32))


def sd_penalty(logits: jax.Array) -> jax.Array:
    """Spectral Decoupling term as the authors' code computes it: mean over examples of ŷ².

    Eq. 17 writes SD as (λ/2)‖ŷ‖²; with a mean instead of a sum the two differ by the constant 2/n, which the
    coefficient absorbs.
    """
    return jnp.mean(logits**2)


def sd_regularised(nll: jax.Array, penalty: jax.Array, lam) -> jax.Array:
    """Eq. 17 in the authors' mean form: ``nll + λ·penalty`` with ``penalty = sd_penalty(ŷ)`` (so λ here is the
    paper's λ/2 up to the 2/n of a sum vs a mean). The one home of the SD objective: Colored MNIST's ``sd`` and the
    two-moons trainer both call it."""
    return nll + lam * penalty


def sd_penalty_per_class(logits_n: jax.Array, y_n: jax.Array, lam_c, gamma_c) -> jax.Array:
    """Per-class SD (Section 4.3 variant): Σ_c λ_c/2 · mean_{i: y_i=c} (ŷ_i − γ_c)².

    ``lam_c`` and ``gamma_c`` are length-2 sequences indexed by the {0,1} label.
    """
    total = 0.0
    for c in (0, 1):
        mask = (y_n == c).astype(logits_n.dtype)
        count = jnp.maximum(jnp.sum(mask), 1.0)
        total = total + 0.5 * lam_c[c] * jnp.sum(mask * (logits_n - gamma_c[c]) ** 2) / count
    return total


def irm_penalty(logits_n: jax.Array, y_n: jax.Array) -> jax.Array:
    """IRMv1 penalty: (d/ds mean_nll(s·ŷ, y) at s = 1)², by automatic differentiation in the dummy scale s."""
    grad_s = jax.grad(lambda s: mean_nll(s * logits_n, y_n))(jnp.asarray(1.0, logits_n.dtype))
    return grad_s**2


def vrex_penalty(risks_e: jax.Array) -> jax.Array:
    """V-REx penalty: population variance of the per-environment risks.

    For two environments this is (r₀ − r₁)²/4; the V-REx reference code uses (r₀ − r₁)², i.e. 4× this value
    (:func:`vrex_penalty_reference`).
    """
    return jnp.var(risks_e)


def vrex_penalty_reference(risk_0: jax.Array, risk_1: jax.Array) -> jax.Array:
    """The V-REx reference code's two-environment penalty (r₀ − r₁)²."""
    return (risk_0 - risk_1) ** 2


def binary_entropy_from_logits(logits_n: jax.Array) -> jax.Array:
    """Mean binary entropy of σ(ŷ) in nats, stable for any logit (softplus form).

    H(σ(z)) = softplus(z) − z·σ(z). The authors' formula −(p ln p + (1−p) ln(1−p+1e-8)) equals this up to the 1e-8
    and gives NaN when p underflows to 0 (SPEC §2.6).
    """
    return jnp.mean(jax.nn.softplus(logits_n) - logits_n * jax.nn.sigmoid(logits_n))


def weight_norm(params) -> jax.Array:
    """Σ over all parameter tensors (weights and biases) of ‖p‖² (the IRM/V-REx L2 term)."""
    return sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))


def sd_mean_squared_logits(logits_nk: jax.Array, y_n: jax.Array, lam) -> jax.Array:
    """Table 1's SD objective in the authors' code form (SPEC §5.1): ``CE + λ · mean(ŷ²)`` for k-class logits.

    CE is the softmax cross-entropy with integer labels y ∈ 0..k−1, averaged over the batch; the SD term averages
    the squared logits over the batch AND the k classes (``SD · logits.pow(2).mean()``), so λ here is Eq. 17's λ/2
    up to the factor 2/(n·k) of a mean vs a sum. The Fig. 2 code's ``sd_coef · Σ_c ŷ_c²`` per example is this
    with λ = k · sd_coef. λ = 0 is ERM.
    """
    log_p = jax.nn.log_softmax(logits_nk, axis=-1)
    nll = -jnp.mean(jnp.take_along_axis(log_p, y_n[:, None].astype(jnp.int32), axis=-1))
    return nll + lam * jnp.mean(logits_nk**2)
