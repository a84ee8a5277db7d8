"""Features of Definition 1: ``YΦ₀ = U S Vᵀ``, their strengths s, and the responses z = UᵀYŷ (Eq. 4).

With labels y ∈ {−1, +1}ⁿ, Y = diag(y) and the NTRF Φ₀ (n × m, :mod:`gs_jax.ntk`), Definition 1 of the paper
calls the columns of U the *features*, s_j their *strengths* and z = UᵀYŷ the network's *responses* to them.
Three ways to get them, for growing n:

- :func:`from_ntrf`: thin SVD of YΦ₀, when Φ₀ fits in memory (small m);
- :func:`from_gram`: ``eigh`` of ``Y K Y = U S² Uᵀ`` (K = Φ₀Φ₀ᵀ), when n ≪ m; V = Φ₀ᵀ Y U S⁻¹ is recovered
  matrix-free (VJPs) by :func:`with_right_vectors` only when asked;
- :func:`top_k`: the leading k features from NTK-vector products only (Lanczos or randomized subspace
  iteration), for n in the tens of thousands.

Conventions: s is sorted descending; each column u_j is oriented so that 1ᵀu_j ≥ 0 (ties broken by making the
largest-magnitude entry positive), and v_j is flipped with it, so results are comparable across runs and
methods. Since Y y = 1, 1ᵀu_j = ⟨Yy, u_j⟩ is the label's coordinate on feature j, which this makes non-negative.

Multi-class (k outputs, class labels y_i ∈ {0, …, k−1}): Definition 1 with the one-vs-rest labels
Y_ic = 2·1[y_i = c] − 1 (:func:`class_labels`), in two forms.

- One-vs-rest, per class c (:func:`one_vs_rest_from_ntrf`, :func:`one_vs_rest_from_gram`): Φ₀⁽ᶜ⁾ = ∂ŷ_c/∂θ
  (n × m, the rows of output c), Y_c = diag(Y_:c), and Y_c Φ₀⁽ᶜ⁾ = U_c S_c V_cᵀ, z_c = U_cᵀ Y_c ŷ_c (Eq. 4 for the
  binary task "c against the rest" read on logit c). Results carry a leading class axis: U ``(k, n, r)``.
- Joint (:func:`joint_from_ntrf`, :func:`joint_from_gram`): all n·k rows of Φ₀ (example-major, row i·k + c) with
  Y = diag(vec Y_ic), YΦ₀ = U S Vᵀ and z = Uᵀ Y vec(ŷ) (:func:`joint_responses`); the features may mix outputs.
  When K has no cross-output blocks (K_(i,c),(j,c′) = 0 for c ≠ c′, e.g. only a last linear layer), the joint
  strengths are the union of the one-vs-rest ones.

The binary functions take the joint form too, given one ±1 label per row (``class_labels(y, k).reshape(-1)``).

This module does not import neural-tangents; the functions that need the model import :mod:`gs_jax.ntk` lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gs_jax import adapters
from gs_jax.errors import GsJaxError, check


class Features(NamedTuple):
    """Definition 1's decomposition YΦ₀ = U S Vᵀ (a pytree).

    Attributes:
      U: ``(n, r)`` left singular vectors of YΦ₀ (the features), columns oriented so that 1ᵀu_j ≥ 0.
      s: ``(r,)`` singular values (feature strengths), descending.
      V: ``(m, r)`` right singular vectors (``ravel_pytree`` order of the parameters), or ``None`` when not computed.
    """

    U: jnp.ndarray
    s: jnp.ndarray
    V: jnp.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.U.shape[0])

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])


class LabelAlignment(NamedTuple):
    """How the labels sit on the features (see :func:`label_alignment`).

    Attributes:
      energy: ``(r,)`` share of the labels' energy on each feature, (1ᵀu_j)² / n (sums to 1 over a full basis).
      cumulative: ``(r,)`` running sum of ``energy``: share on the top 1, 2, ..., r features.
      spectrum: ``(r,)`` s², the NTK eigenvalues of the features.
      kernel_target_alignment: yᵀKy / (n ‖K‖_F) restricted to the r features, in [0, 1].
      top_k_share: share of the energy on the top ``k`` features (``k`` as asked, else all r).
    """

    energy: jnp.ndarray
    cumulative: jnp.ndarray
    spectrum: jnp.ndarray
    kernel_target_alignment: jnp.ndarray
    top_k_share: jnp.ndarray


# ---------------------------------------------------------------------------------------------------------------
# Labels and signs
# ---------------------------------------------------------------------------------------------------------------


def as_pm1(y: Any, n: int | None = None) -> jnp.ndarray:
    """Labels as a ±1 vector: {−1, +1} kept, {0, 1} mapped explicitly by 0 → −1, 1 → +1.

    Accepts shape ``(n,)`` or ``(n, 1)``; anything else, other label values or non-finite entries raise
    GsJaxError. ``n``, if given, is the expected length. Needs concrete (not traced) labels.
    """
    try:
        y_np = np.asarray(y)
    except Exception as e:  # traced values cannot be checked
        raise GsJaxError(f"labels must be a concrete array (not traced), got {type(y).__name__}") from e
    if y_np.ndim == 2 and y_np.shape[1] == 1:
        y_np = y_np[:, 0]
    check(y_np.ndim == 1, f"labels must have shape (n,), got {y_np.shape}")
    if n is not None:
        check(y_np.shape[0] == n, f"labels have length {y_np.shape[0]} but the features have n = {n} rows")
    check(
        np.issubdtype(y_np.dtype, np.number) or y_np.dtype == bool,
        f"labels must be numeric, got {y_np.dtype}",
    )
    values = set(np.unique(y_np).tolist())
    if values <= {-1, 1}:
        out = y_np
    elif values <= {0, 1}:
        out = 2 * y_np.astype(np.int64) - 1
    else:
        shown = sorted(values, key=lambda v: (not np.isfinite(v), v))[:6]
        raise GsJaxError(
            f"labels must be in {{-1, +1}} or {{0, 1}}, got values {shown}: map them to one of these two sets"
        )
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return jnp.asarray(out, dtype=dtype)


def _orient(U: jnp.ndarray, V: jnp.ndarray | None) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """Flip columns so that 1ᵀu_j ≥ 0; a column with 1ᵀu_j ≈ 0 gets its largest-|entry| positive instead."""
    col_sum = U.sum(axis=0)
    scale = jnp.sqrt(U.shape[0]) * jnp.finfo(U.dtype).eps * 1e3  # ‖u‖ = 1, so |1ᵀu| ≤ √n
    peak = jnp.take_along_axis(U, jnp.argmax(jnp.abs(U), axis=0)[None, :], axis=0)[0]
    sign = jnp.where(jnp.abs(col_sum) > scale, jnp.sign(col_sum), jnp.sign(peak))
    sign = jnp.where(sign == 0, 1.0, sign).astype(U.dtype)
    return U * sign, (None if V is None else V * sign.astype(V.dtype))


def _check_finite(a: jnp.ndarray, name: str) -> None:
    check(bool(jnp.all(jnp.isfinite(a))), f"{name} contains NaN or inf: check the model and its inputs")


# ---------------------------------------------------------------------------------------------------------------
# Dense paths
# ---------------------------------------------------------------------------------------------------------------


def from_ntrf(phi: jnp.ndarray, y: Any) -> Features:
    """Definition 1 by thin SVD: YΦ₀ = U S Vᵀ with r = min(n, m) (U, s and V all computed).

    Args:
      phi: Φ₀ of shape ``(n, m)`` (e.g. :func:`gs_jax.ntk.ntrf`).
      y: labels, ``(n,)`` in {−1, +1} or {0, 1}.
    """
    phi = jnp.asarray(phi)
    check(phi.ndim == 2, f"phi must be a matrix Φ₀ of shape (n, m), got {phi.shape}")
    _check_finite(phi, "phi")
    y_pm = as_pm1(y, phi.shape[0]).astype(phi.dtype)
    U, s, Vt = jnp.linalg.svd(y_pm[:, None] * phi, full_matrices=False)
    U, V = _orient(U, Vt.T)
    return Features(U=U, s=s, V=V)


def from_gram(K: jnp.ndarray, y: Any, *, top_k: int | None = None) -> Features:
    """Definition 1 from the NTK Gram: ``Y K Y = U S² Uᵀ`` by ``eigh`` (no V; see :func:`with_right_vectors`).

    Args:
      K: the NTK Gram Φ₀Φ₀ᵀ, ``(n, n)``, symmetric PSD (e.g. :func:`gs_jax.ntk.empirical_ntk`).
      y: labels, ``(n,)`` in {−1, +1} or {0, 1}.
      top_k: keep only the leading ``top_k`` features (default: all n).

    Tiny negative eigenvalues from round-off are clipped to 0 before s = √λ.
    """
    K = jnp.asarray(K)
    check(K.ndim == 2 and K.shape[0] == K.shape[1], f"K must be a square (n, n) Gram matrix, got {K.shape}")
    _check_finite(K, "K")
    n = K.shape[0]
    y_pm = as_pm1(y, n).astype(K.dtype)
    r = n if top_k is None else int(top_k)
    check(1 <= r <= n, f"top_k must be in [1, n = {n}], got {top_k}")
    A = y_pm[:, None] * K * y_pm[None, :]
    lam, W = jnp.linalg.eigh(0.5 * (A + A.T))
    lam, W = lam[::-1][:r], W[:, ::-1][:, :r]
    U, _ = _orient(W, None)
    return Features(U=U, s=jnp.sqrt(jnp.clip(lam, 0.0)), V=None)


def with_right_vectors(
    features: Features, apply_fn: Callable, params: Any, x: Any, y: Any, *, rcond: float | None = None
) -> Features:
    """Fill in V = Φ₀ᵀ Y U S⁻¹ (``(m, r)``, ``ravel_pytree`` order) with r VJPs, never forming Φ₀.

    Features with s_j ≤ rcond · s_max (default: 100 · n · eps) have no defined v_j; their column is set to 0.
    """
    from gs_jax import ntk

    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    n_rows = features.U.shape[0]
    y_pm = as_pm1(y, n_rows).astype(features.U.dtype)
    tvp = ntk.ntrf_tvp(apply_fn, params, x)
    W = tvp(y_pm[:, None] * features.U)  # (m, r)
    s = features.s.astype(W.dtype)
    tol = (100 * n_rows * jnp.finfo(W.dtype).eps if rcond is None else rcond) * jnp.max(s)
    inv = jnp.where(s > tol, 1.0 / jnp.where(s > tol, s, 1.0), 0.0)
    return features._replace(V=W * inv[None, :])


# ---------------------------------------------------------------------------------------------------------------
# Matrix-free top-k
# ---------------------------------------------------------------------------------------------------------------


def top_k(
    apply_fn: Callable,
    params: Any,
    x: Any,
    y: Any,
    k: int,
    *,
    method: str = "lanczos",
    tol: float | None = None,
    oversample: int = 10,
    n_iter: int = 8,
    key: jax.Array | None = None,
    with_v: bool = False,
) -> Features:
    """The leading ``k`` features of YΦ₀ from NTK-vector products only (K is never formed).

    Works on A = Y K Y through :func:`gs_jax.ntk.ntk_vp` (one forward + one backward pass per product).

    Args:
      apply_fn, params, x: the model and inputs (see :mod:`gs_jax.ntk`; a Flax NNX or Equinox module with
        ``params=None``, see :mod:`gs_jax.adapters`).
      y: labels, one per row of Φ₀, in {−1, +1} or {0, 1}.
      k: number of features.
      method: ``"lanczos"`` (implicitly restarted Lanczos, ``scipy.sparse.linalg.eigsh``: one product at a time,
        relative accuracy ``tol``, default 1e-10 for a float64 model, 1e-5 for float32) or ``"randomized"`` (randomized subspace iteration with ``k + oversample`` columns and
        ``n_iter`` power steps, Halko et al. 2011: blocks of products, fewer passes, accuracy set by the
        spectral gap).
      key: PRNG key for the randomized start (default ``PRNGKey(0)``); Lanczos uses a fixed start vector.
      with_v: also return V (``(m, k)``) via :func:`with_right_vectors`.
    """
    from gs_jax import ntk

    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    n, kk = ntk.output_shape(apply_fn, params, x)
    rows = n * kk
    y_pm = as_pm1(y, rows)
    check(1 <= int(k) < rows, f"k must be in [1, {rows - 1}] (fewer than the {rows} rows), got {k}")
    k = int(k)
    kv = ntk.ntk_vp(apply_fn, params, x)
    if tol is None:
        tol = 1e-10 if jax.eval_shape(apply_fn, params, x).dtype == jnp.float64 else 1e-5
    if method == "lanczos":
        lam, W = _lanczos(kv, np.asarray(y_pm, dtype=np.float64), rows, k, tol)
    elif method == "randomized":
        lam, W = _randomized(
            kv, y_pm, rows, k, oversample, n_iter, jax.random.PRNGKey(0) if key is None else key
        )
    else:
        raise GsJaxError(f"unknown top_k method {method!r}; choose from ['lanczos', 'randomized']")
    U, _ = _orient(jnp.asarray(W), None)
    feats = Features(U=U, s=jnp.sqrt(jnp.clip(jnp.asarray(lam), 0.0)), V=None)
    return with_right_vectors(feats, apply_fn, params, x, y_pm) if with_v else feats


def _lanczos(kv, y_pm: np.ndarray, rows: int, k: int, tol: float):
    from scipy.sparse.linalg import LinearOperator, eigsh

    def matvec(v):
        v = np.asarray(v).reshape(-1)
        return y_pm * np.asarray(kv(jnp.asarray(y_pm * v)), dtype=np.float64)

    op = LinearOperator((rows, rows), matvec=matvec, dtype=np.float64)
    v0 = np.ones(rows) / np.sqrt(rows)  # deterministic start; the labels' direction Yy = 1
    lam, W = eigsh(op, k=k, which="LA", tol=tol, v0=v0)
    order = np.argsort(lam)[::-1]
    return lam[order], W[:, order]


def _randomized(kv, y_pm, rows: int, k: int, oversample: int, n_iter: int, key):
    p = min(rows, k + max(int(oversample), 0))
    y_col = y_pm[:, None]
    dtype = y_pm.dtype

    def matmat(B):
        return y_col * kv(y_col * B).astype(dtype)

    Q, _ = jnp.linalg.qr(jax.random.normal(key, (rows, p), dtype=dtype))
    for _ in range(max(int(n_iter), 0)):
        Q, _ = jnp.linalg.qr(matmat(Q))
    AQ = matmat(Q)
    T = Q.T @ AQ  # Rayleigh-Ritz on the subspace
    lam, W = jnp.linalg.eigh(0.5 * (T + T.T))
    lam, W = lam[::-1][:k], W[:, ::-1][:, :k]
    return lam, Q @ W


# ---------------------------------------------------------------------------------------------------------------
# Responses and label alignment
# ---------------------------------------------------------------------------------------------------------------


def responses(features: Features, y: Any, yhat: Any) -> jnp.ndarray:
    """Feature responses z = Uᵀ Y ŷ (Eq. 4).

    ``yhat`` has shape ``(..., n)`` (or ``(n, 1)``); leading axes are kept, e.g. a trajectory ``(T, n)`` gives
    ``(T, r)``. For the linearised model ŷ = Φ₀Δθ (Eq. 3), z = S Vᵀ Δθ.
    """
    n = features.U.shape[0]
    y_pm = as_pm1(y, n).astype(features.U.dtype)
    yhat = jnp.asarray(yhat)
    if yhat.ndim == 2 and yhat.shape == (n, 1):
        yhat = yhat[:, 0]
    check(
        yhat.ndim >= 1 and yhat.shape[-1] == n,
        f"yhat must have shape (..., n) with n = {n} (the features' rows), got {yhat.shape}",
    )
    return jnp.einsum("nr,...n->...r", features.U, y_pm * yhat)


def label_alignment(features: Features, y: Any = None, *, k: int | None = None) -> LabelAlignment:
    """How much of the labels' energy the features carry.

    In the coordinates of Definition 1 the label vector is Yy = 1, so feature j carries the share
    (1ᵀu_j)² / n = (yᵀu_j^K)² / n of it (u_j^K = Y u_j, the NTK eigenvector); over all n features it sums to 1.
    Also returns the spectrum s² and the kernel-target alignment yᵀKy / (n‖K‖_F) = Σ s_j²(1ᵀu_j)² / (n √Σ s_j⁴)
    computed on the r features held. ``y`` (optional) only checks the length; ``k`` selects ``top_k_share``.
    """
    n = features.U.shape[0]
    if y is not None:
        as_pm1(y, n)
    r = features.s.shape[0]
    kk = r if k is None else int(k)
    check(1 <= kk <= r, f"k must be in [1, {r}] (the number of features held), got {k}")
    energy = features.U.sum(axis=0) ** 2 / n
    cumulative = jnp.cumsum(energy)
    s2 = features.s**2
    kta = jnp.sum(s2 * energy) / jnp.sqrt(jnp.sum(s2**2))
    return LabelAlignment(
        energy=energy,
        cumulative=cumulative,
        spectrum=s2,
        kernel_target_alignment=kta,
        top_k_share=cumulative[kk - 1],
    )


# ---------------------------------------------------------------------------------------------------------------
# Multi-class: one-vs-rest per class and the joint form on the n·k rows
# ---------------------------------------------------------------------------------------------------------------


def _class_indices(y: Any, rows: int | None = None) -> tuple[np.ndarray, int]:
    """Class labels ``(n,)`` as integers, and k = ``rows // n`` (the outputs per example) when ``rows`` is given."""
    try:
        y_np = np.asarray(y)
    except Exception as e:  # traced values cannot be checked
        raise GsJaxError(f"class labels must be a concrete array (not traced), got {type(y).__name__}") from e
    check(y_np.ndim == 1, f"class labels must have shape (n,) with values in 0..k−1, got shape {y_np.shape}")
    check(
        y_np.size > 0 and np.issubdtype(y_np.dtype, np.number) and np.all(y_np == np.round(y_np)),
        "class labels must be integers 0..k−1 (one per example)",
    )
    n = y_np.shape[0]
    k = None
    if rows is not None:
        check(
            rows % n == 0 and rows // n >= 2,
            f"{rows} rows do not split into n = {n} examples × k ≥ 2 outputs: pass the multi-output Φ₀ or Gram "
            "(rows example-major, i·k + c) and one class label per example",
        )
        k = rows // n
        check(
            y_np.min() >= 0 and y_np.max() < k,
            f"class labels must lie in 0..{k - 1} for k = {k} outputs, got {int(y_np.min())}..{int(y_np.max())}",
        )
    return y_np.astype(np.int64), k


def class_labels(y: Any, num_classes: int) -> jnp.ndarray:
    """The one-vs-rest label matrix Y_ic = 2·1[y_i = c] − 1, shape ``(n, num_classes)``, entries ±1.

    ``class_labels(y, k).reshape(-1)`` gives the per-row labels of the joint form (row i·k + c, example-major).
    """
    y_np, _ = _class_indices(y, len(np.asarray(y)) * int(num_classes))
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return jnp.asarray(2.0 * (y_np[:, None] == np.arange(int(num_classes))[None, :]) - 1.0, dtype=dtype)


def one_vs_rest_from_ntrf(phi: jnp.ndarray, y: Any) -> Features:
    """Per class c: Y_c Φ₀⁽ᶜ⁾ = U_c S_c V_cᵀ by thin SVD, Φ₀⁽ᶜ⁾ the rows ``c::k`` of Φ₀ (Definition 1 per class).

    Args:
      phi: Φ₀ of a k-output model, ``(n * k, m)``, rows example-major (:func:`gs_jax.ntk.ntrf`).
      y: class labels ``(n,)`` in 0..k−1.

    Returns:
      Features with a leading class axis: U ``(k, n, r)``, s ``(k, r)``, V ``(k, m, r)``, r = min(n, m).
    """
    phi = jnp.asarray(phi)
    check(phi.ndim == 2, f"phi must be a matrix Φ₀ of shape (n·k, m), got {phi.shape}")
    y_np, k = _class_indices(y, phi.shape[0])
    Y = class_labels(y_np, k)
    per = [from_ntrf(phi[c::k], Y[:, c]) for c in range(k)]
    return Features(*(jnp.stack(a) for a in zip(*per, strict=True)))


def one_vs_rest_from_gram(K: jnp.ndarray, y: Any, *, top_k: int | None = None) -> Features:
    """Per class c: ``Y_c K⁽ᶜᶜ⁾ Y_c = U_c S_c² U_cᵀ`` by ``eigh``, K⁽ᶜᶜ⁾ = ``K[c::k, c::k]`` the Gram of output c.

    Args:
      K: the NTK Gram of a k-output model, ``(n * k, n * k)``, example-major (:func:`gs_jax.ntk.empirical_ntk`).
      y: class labels ``(n,)`` in 0..k−1.
      top_k: keep the leading ``top_k`` features of each class (default: all n).

    Returns:
      Features with a leading class axis: U ``(k, n, r)``, s ``(k, r)``; no V.
    """
    K = jnp.asarray(K)
    check(K.ndim == 2 and K.shape[0] == K.shape[1], f"K must be a square (n·k, n·k) Gram, got {K.shape}")
    y_np, k = _class_indices(y, K.shape[0])
    Y = class_labels(y_np, k)
    per = [from_gram(K[c::k, c::k], Y[:, c], top_k=top_k) for c in range(k)]
    return Features(U=jnp.stack([f.U for f in per]), s=jnp.stack([f.s for f in per]), V=None)


def joint_from_ntrf(phi: jnp.ndarray, y: Any) -> Features:
    """The joint form: YΦ₀ = U S Vᵀ on all n·k rows of Φ₀, Y = diag(vec Y_ic) (U ``(n * k, r)``)."""
    phi = jnp.asarray(phi)
    check(phi.ndim == 2, f"phi must be a matrix Φ₀ of shape (n·k, m), got {phi.shape}")
    y_np, k = _class_indices(y, phi.shape[0])
    return from_ntrf(phi, class_labels(y_np, k).reshape(-1))


def joint_from_gram(K: jnp.ndarray, y: Any, *, top_k: int | None = None) -> Features:
    """The joint form from the full Gram: ``Y K Y = U S² Uᵀ`` on the n·k rows (U ``(n * k, r)``, no V)."""
    K = jnp.asarray(K)
    check(K.ndim == 2 and K.shape[0] == K.shape[1], f"K must be a square (n·k, n·k) Gram, got {K.shape}")
    y_np, k = _class_indices(y, K.shape[0])
    return from_gram(K, class_labels(y_np, k).reshape(-1), top_k=top_k)


def _multi_logits(yhat: Any, n: int, k: int) -> jnp.ndarray:
    yhat = jnp.asarray(yhat)
    check(
        yhat.ndim >= 2 and yhat.shape[-2:] == (n, k),
        f"yhat must have shape (..., n, k) = (..., {n}, {k}) (logits of the k outputs), got {yhat.shape}",
    )
    return yhat


def one_vs_rest_responses(features: Features, y: Any, yhat: Any) -> jnp.ndarray:
    """z_c = U_cᵀ Y_c ŷ_c for every class c (Eq. 4 per class); ``yhat`` ``(..., n, k)`` gives ``(..., k, r)``."""
    check(features.U.ndim == 3, f"one-vs-rest features have U of shape (k, n, r), got {features.U.shape}")
    k, n = int(features.U.shape[0]), int(features.U.shape[1])
    y_np, _ = _class_indices(y, n * k)
    Y = class_labels(y_np, k).astype(features.U.dtype)
    return jnp.einsum("cnr,...nc->...cr", features.U, Y * _multi_logits(yhat, n, k))


def joint_responses(features: Features, y: Any, yhat: Any) -> jnp.ndarray:
    """z = Uᵀ Y vec(ŷ) on the n·k rows (Eq. 4, joint form); ``yhat`` ``(..., n, k)`` gives ``(..., r)``."""
    rows = int(features.U.shape[0])
    y_np, k = _class_indices(y, rows)
    yhat = _multi_logits(yhat, rows // k, k)
    y_rows = class_labels(y_np, k).reshape(-1)
    return responses(features, y_rows, yhat.reshape(*yhat.shape[:-2], rows))
