"""Losses and penalties as pure functions of logits and labels — one home per equation.

Conventions: **binary** tasks have one logit per example, ``logits`` of shape ``(n,)`` and labels in {0, 1};
**k-class** tasks have ``logits`` of shape ``(n, k)`` and integer labels in ``0..k−1``. Every function that takes
logits accepts both unless its docstring says otherwise. Sums over examples are written as means (the authors'
code does); where the paper writes a sum, the docstring gives the factor.

- cross-entropy: :func:`per_example_nll`, :func:`mean_nll` (the logistic loss of Eq. 5 for one logit);
- Spectral Decoupling (Eq. 17): :func:`sd_penalty`, :func:`sd_regularised`, and the per-class forms of §4.4,
  :func:`sd_class_penalty` (the paper's, with the ½) and :func:`sd_spw3_penalty` (the authors' CelebA code);
- IRMv1 :func:`irm_penalty`, V-REx :func:`vrex_penalty` / :func:`vrex_penalty_reference`;
- :func:`segment_means` (per-environment and per-group means), :func:`weight_norm` (Σ‖p‖²).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def per_example_nll(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Cross-entropy of each example, ``(n,)``.

    One logit: ``log(1 + exp(−m))`` with the margin m = ŷ·(2y − 1), computed as ``softplus(−m)``: finite for every
    margin (the authors' naive form overflows below m ≈ −88, SPEC §7.8), and its gradient −σ(−m) keeps its
    relative precision at large margins, where the equal form ``softplus(ŷ) − y·ŷ`` has gradient σ(ŷ) − y, which
    rounds to 0 in float32 once m > 17 (a saturated network would stop learning from its fitted examples for a
    reason of arithmetic, not of the loss). k logits: ``−log softmax(ŷ)_y``.
    """
    if logits.ndim == 1:
        return jax.nn.softplus(-(2.0 * y.astype(logits.dtype) - 1.0) * logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_p, y.astype(jnp.int32)[:, None], axis=-1)[:, 0]


def mean_nll(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean cross-entropy over examples (BCE with logits for one logit, softmax CE for k)."""
    return jnp.mean(per_example_nll(logits, y))


def mean_accuracy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean of [(ŷ > 0) == y] for one logit (a logit of exactly 0 predicts class 0, as the authors' code)."""
    return jnp.mean(((logits > 0).astype(y.dtype) == y).astype(jnp.float32))


def sd_penalty(logits: jax.Array) -> jax.Array:
    """Spectral Decoupling term as the authors' code computes it: the mean of ŷ² over examples (and classes).

    Eq. 17 writes SD as (λ/2)‖ŷ‖²; a mean over the n examples (and k classes) instead of a sum differs by the
    constant 2/(n·k), which the coefficient absorbs. The Fig. 2 code's per-example ``Σ_c ŷ_c²`` is k × this.
    """
    return jnp.mean(logits**2)


def sd_regularised(nll: jax.Array, penalty: jax.Array, lam) -> jax.Array:
    """Eq. 17 in the authors' mean form: ``nll + λ·penalty`` with ``penalty = sd_penalty(ŷ)``."""
    return nll + lam * penalty


def _class_square_sums(logits_n: jax.Array, y_n: jax.Array, gamma) -> tuple[jax.Array, jax.Array]:
    """For c ∈ {0, 1}: S_c = Σ_{i: y_i = c} (ŷ_i − γ_c)² and n_c = #{i : y_i = c}, each ``(2,)``."""
    masks = jnp.stack([(y_n == c).astype(logits_n.dtype) for c in (0, 1)])
    gamma = jnp.asarray(gamma, logits_n.dtype)
    sums = jnp.sum(masks * (logits_n[None, :] - gamma[:, None]) ** 2, axis=1)
    return sums, jnp.sum(masks, axis=1)


def sd_class_penalty(logits_n: jax.Array, y_n: jax.Array, lam, gamma) -> jax.Array:
    """The paper's per-class SD (§4.4 with Eq. 17), divided by the batch size n:

        (1/n) · Σ_c (λ_c/2) ‖ŷ_c − γ_c‖²,   ŷ_c = the logits of the examples of class c.

    Added to :func:`mean_nll` this is Eq. 17's objective ``Σ_i ℓ_i + Σ_c λ_c/2‖ŷ_c − γ_c‖²`` divided by n (the
    minimiser is unchanged). One logit; ``lam``, ``gamma`` are length-2, indexed by the label. An absent class
    adds 0 (an empty sum).
    """
    sums, _ = _class_square_sums(logits_n, y_n, gamma)
    return jnp.sum(0.5 * jnp.asarray(lam, logits_n.dtype) * sums) / logits_n.shape[0]


def sd_spw3_penalty(logits_n: jax.Array, y_n: jax.Array, lam, gamma) -> jax.Array:
    """The authors' CelebA SD term (``--mode spw3``, SPEC §4.3): **no ½** and per-class means,

        Σ_c λ_c · mean_{i: y_i = c} (ŷ_i − γ_c)²,

    so each class pulls with the same strength whatever its share of the batch. The authors use λ = (0.1, 0.1)
    and γ = (0.44, 2.5) (dark, blond). A class absent from the batch adds 0 (value and gradient); the authors'
    ``.mean()`` of an empty tensor gives NaN there (SPEC §7.12). One logit; ``lam``, ``gamma`` indexed by label.
    """
    sums, counts = _class_square_sums(logits_n, y_n, gamma)
    return jnp.sum(jnp.asarray(lam, logits_n.dtype) * sums / jnp.maximum(counts, 1.0))


def segment_means(values_n: jax.Array, ids_n: jax.Array, n_segments: int) -> tuple[jax.Array, jax.Array]:
    """Mean of ``values`` within each segment (environment, group) and the counts, both ``(n_segments,)``.

    An empty segment has mean 0 (as Group DRO's reference ``compute_group_avg``, which divides by
    ``count + (count == 0)``).
    """
    ids_n = ids_n.astype(jnp.int32)
    sums = jax.ops.segment_sum(values_n, ids_n, num_segments=n_segments)
    counts = jax.ops.segment_sum(jnp.ones_like(values_n), ids_n, num_segments=n_segments)
    return sums / jnp.maximum(counts, 1.0), counts


def irm_penalty(logits: jax.Array, y: jax.Array, env: jax.Array | None = None, n_envs: int = 1) -> jax.Array:
    """IRMv1 penalty (Arjovsky et al. 2019): (d/ds R_e(s·ŷ) at s = 1)², by automatic differentiation in the dummy
    scale s; ``(n_envs,)`` per environment when ``env`` labels are given, else the scalar of the whole batch."""
    one = jnp.asarray(1.0, logits.dtype)
    if env is None:
        return jax.grad(lambda s: mean_nll(s * logits, y))(one) ** 2
    risks = lambda s: segment_means(per_example_nll(s * logits, y), env, n_envs)[0]  # noqa: E731
    return jax.jacfwd(risks)(one) ** 2


def vrex_penalty(risks_e: jax.Array) -> jax.Array:
    """V-REx penalty (Krueger et al. 2021): the population variance of the per-environment risks."""
    return jnp.var(risks_e)


def vrex_penalty_reference(risks_e: jax.Array) -> jax.Array:
    """The V-REx reference code's penalty, ``(r₀ − r₁)²`` for two environments; for E environments
    ``2·Σ_e (r_e − r̄)²`` (= 2E × :func:`vrex_penalty`), which is that at E = 2."""
    if risks_e.shape[0] == 2:
        return (risks_e[0] - risks_e[1]) ** 2
    return 2.0 * jnp.sum((risks_e - jnp.mean(risks_e)) ** 2)


def weight_norm(params) -> jax.Array:
    """Σ over all parameter tensors (weights and biases) of ‖p‖² (the IRM/V-REx L2 term)."""
    return sum(jnp.sum(p**2) for p in jax.tree_util.tree_leaves(params))
