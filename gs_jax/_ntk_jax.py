"""Private: gs-jax's own empirical NTK on public jax (``jacrev``, ``vjp``, ``jvp``, ``vmap``) — the ``backend="jax"``
of :func:`gs_jax.ntk.empirical_ntk`, for any jax and with neural-tangents absent. Only ``gs_jax.ntk`` imports it.

Two methods, as neural-tangents names them: Jacobian contraction (per-example Jacobians, contracted parameter leaf by
parameter leaf) and NTK-vector products (a VJP of each basis cotangent, then a JVP). Both return the Gram as
``(n1, n2, k, k)``; ``gs_jax.ntk`` flattens it example-major and handles blocks, checks and caching.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gs_jax.errors import check

ApplyFn = Callable[[Any, Any], jnp.ndarray]


def as_2d(apply_fn: ApplyFn) -> ApplyFn:
    """``apply_fn`` with its logits reshaped to ``(n, k)`` (binary ``(n,)`` becomes ``(n, 1)``)."""

    def f(params, x):
        out = apply_fn(params, x)
        return out.reshape(out.shape[0], -1)

    return f


def _per_example(apply_fn: ApplyFn) -> Callable:
    """``g(params, x_i) -> (k,)``: the model on one example (batch axis added and removed)."""
    f2 = as_2d(apply_fn)
    return lambda p, xi: f2(p, jax.tree_util.tree_map(lambda a: a[None], xi))[0]


def _jacobians(apply_fn: ApplyFn, params: Any, x: Any, vmap_axes: Any) -> Any:
    """∂ŷ/∂θ as a parameter-shaped pytree with leaves ``(n, k, *leaf.shape)``.

    ``vmap_axes=0``: one reverse-mode Jacobian per example, vmapped (k VJPs on one example each — the cost of n·k
    backward passes, independent of how examples interact in the batch). ``None``: the Jacobian of the whole batch
    (for models that mix examples, e.g. BatchNorm in training mode): n·k VJPs through the full batch.
    """
    if vmap_axes is None:
        return jax.jacrev(lambda p: as_2d(apply_fn)(p, x))(params)
    check(vmap_axes == 0, f"vmap_axes must be 0 or None on the jax backend, got {vmap_axes!r}")
    return jax.vmap(jax.jacrev(_per_example(apply_fn)), in_axes=(None, 0))(params, x)


def _contract(j1: Any, j2: Any) -> jnp.ndarray:
    """Σ over parameter leaves of J₁ J₂ᵀ: ``(n1, k, ...) × (n2, k, ...) -> (n1, n2, k, k)``."""
    terms = jax.tree_util.tree_map(
        lambda a, b: jnp.einsum(
            "ikp,jlp->ijkl", a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
        ),
        j1,
        j2,
    )
    return functools.reduce(jnp.add, jax.tree_util.tree_leaves(terms))


def jax_kernel(apply_fn: ApplyFn, method: str, vmap_axes: Any) -> Callable:
    """``ntk(params, x1, x2) -> (n1, n2, k, k)`` by Jacobian contraction or NTK-vector products (x2=None: x1)."""
    if method == "jacobian":

        def ntk_jac(params, x1, x2):
            j1 = _jacobians(apply_fn, params, x1, vmap_axes)
            j2 = j1 if x2 is None else _jacobians(apply_fn, params, x2, vmap_axes)
            return _contract(j1, j2)

        return ntk_jac

    f2 = as_2d(apply_fn)

    def ntk_vp_cols(params, x1, x2):
        """Column (j, l) of K is Φ₀(x1) Φ₀(x2)ᵀ e_jl: a VJP of the basis cotangent e_jl at x2 (one example when the
        examples are independent), then a JVP at x1; vmapped over all n2·k basis vectors."""
        xb = x1 if x2 is None else x2
        n2 = jax.tree_util.tree_leaves(xb)[0].shape[0]
        k = jax.eval_shape(f2, params, jax.tree_util.tree_map(lambda a: a[:1], x1)).shape[1]
        eye = jnp.eye(k, dtype=jax.eval_shape(f2, params, x1).dtype)

        def jvp_x1(tangent):
            return jax.jvp(lambda p: f2(p, x1), (params,), (tangent,))[1]  # (n1, k)

        if vmap_axes is None:
            _, vjp = jax.vjp(lambda p: f2(p, xb), params)
            basis = jnp.eye(n2 * k, dtype=eye.dtype).reshape(n2 * k, n2, k)
            cols = jax.vmap(lambda c: jvp_x1(vjp(c)[0]))(basis)  # (n2 * k, n1, k)
            cols = cols.reshape(n2, k, *cols.shape[1:])
        else:
            check(vmap_axes == 0, f"vmap_axes must be 0 or None on the jax backend, got {vmap_axes!r}")
            g = _per_example(apply_fn)

            def col(xj, e_l):
                _, vjp = jax.vjp(lambda p: g(p, xj), params)
                return jvp_x1(vjp(e_l)[0])  # (n1, k)

            cols = jax.vmap(lambda xj: jax.vmap(lambda e: col(xj, e))(eye))(xb)  # (n2, k, n1, k)
        return cols.transpose(2, 0, 3, 1)  # (n1, n2, k_x1, k_x2)

    return ntk_vp_cols
