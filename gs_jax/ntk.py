"""Neural tangent kernel of any ``apply_fn(params, x)``: the NTRF Φ₀, the Gram K = Φ₀Φ₀ᵀ, K·v, linearisation.

The paper (Section 2, Eq. 2-4) writes a network near its initialisation θ₀ as ŷ ≈ Φ₀θ with the *neural tangent
random feature* matrix Φ₀ = ∂ŷ/∂θ|θ₀ (n × m) and the NTK Gram K = Φ₀Φ₀ᵀ (n × n). This module computes them
exactly for any function ``apply_fn(params, x) -> logits`` (a Flax linen ``module.apply``, a ``neural_tangents.stax``
apply function, or plain JAX) — or, with ``params=None``, a Flax NNX or Equinox module, converted at the boundary by
:mod:`gs_jax.adapters` — and the analytic infinite-width NTK of ``stax`` architectures (Eq. 1 uses the NTK
parameterisation).

Two backends compute the Gram (:func:`empirical_ntk`):

- ``"nt"``: neural-tangents 0.6.5 — structured derivatives (its fastest method, and the default here), Jacobian
  contraction, NTK-vector products. Imported through the private ``gs_jax._nt_compat`` on the jax versions it was
  tested with; it is the only module of gs_jax that reaches neural-tangents.
- ``"jax"``: gs-jax's own Jacobian contraction and NTK-vector products on public jax only (``jacrev``, ``vjp``,
  ``jvp``, ``vmap``), for any jax and with neural-tangents absent.

``backend="auto"`` (the default) takes neural-tangents where it can be imported and the jax backend elsewhere.
Φ₀ (:func:`ntrf`), the matrix-free products (:func:`ntk_vp`, :func:`ntrf_tvp`) and :func:`linearize` are plain jax
on every backend; only the infinite-width kernels need neural-tangents.

Output convention
-----------------
``apply_fn(params, x)`` must return logits of shape ``(n,)`` (binary) or ``(n, k)``. Everything here flattens the
outputs **example-major**: row ``i * k + c`` is example ``i``, output ``c``; a binary model gives ``n`` rows (``k = 1``).
Parameters are flattened in ``jax.flatten_util.ravel_pytree`` order (the column order of :func:`ntrf`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gs_jax import _nt_compat, adapters
from gs_jax._ntk_jax import as_2d as _as_2d
from gs_jax._ntk_jax import jax_kernel as _jax_kernel
from gs_jax.errors import GsJaxError, check

ApplyFn = Callable[[Any, Any], jnp.ndarray]
#: ``progress(iterable, total=..., desc=...)`` wraps a loop in a progress bar (e.g. ``gs_jax.runs.progress``).
Progress = Callable[..., Iterable]

#: Default cap (bytes) on any dense array this module materialises (Φ₀, K, or one block's Jacobians).
DENSE_LIMIT_BYTES = 2 * 1024**3

#: implementation name → neural-tangents' ``NtkImplementation`` value.
_NT_IMPLEMENTATIONS = {
    "structured": 3,  # STRUCTURED_DERIVATIVES
    "structured_derivatives": 3,
    "jacobian": 1,  # JACOBIAN_CONTRACTION
    "jacobian_contraction": 1,
    "ntvp": 2,  # NTK_VECTOR_PRODUCTS
    "ntk_vector_products": 2,
    "auto": 0,  # AUTO: neural-tangents picks by FLOP estimate
}
#: implementation name → gs-jax's own method (public jax only).
_JAX_IMPLEMENTATIONS = {
    "jacobian": "jacobian",
    "jacobian_contraction": "jacobian",
    "ntvp": "ntvp",
    "ntk_vector_products": "ntvp",
    "auto": "jacobian",
}
BACKENDS = ("auto", "nt", "jax")


def _no_progress(iterable, **_):
    return iterable


def nt_available() -> bool:
    """Whether the neural-tangents backend can be used here (installed, on a jax version it was tested with)."""
    return _nt_compat.supported()


def resolve_backend(backend: str = "auto") -> str:
    """``"nt"`` or ``"jax"``: ``"auto"`` picks neural-tangents where :func:`nt_available`, else the jax backend."""
    check(backend in BACKENDS, f"unknown NTK backend {backend!r}; choose from {list(BACKENDS)}")
    if backend == "auto":
        return "nt" if nt_available() else "jax"
    return backend


def _nt():
    """neural-tangents, imported through the compat module (one GsJaxError line where it cannot be)."""
    return _nt_compat.load()


def _gib(nbytes: float) -> str:
    """Human-readable size."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{int(nbytes)} B"


# ---------------------------------------------------------------------------------------------------------------
# Shapes and checks
# ---------------------------------------------------------------------------------------------------------------


def _n_examples(x: Any, name: str = "x") -> int:
    leaves = jax.tree_util.tree_leaves(x)
    check(len(leaves) > 0, f"{name} is empty: pass an array of inputs with the examples along axis 0")
    shapes = [np.shape(leaf) for leaf in leaves]
    check(
        all(len(s) >= 1 for s in shapes),
        f"{name} must have the examples along axis 0, got shapes {shapes}: add a batch axis (x[None])",
    )
    n = shapes[0][0]
    check(
        all(s[0] == n for s in shapes),
        f"{name} leaves disagree on the number of examples (axis 0): {shapes}",
    )
    check(n >= 1, f"{name} has no examples (axis 0 has length 0)")
    return int(n)


def output_shape(apply_fn: ApplyFn, params: Any, x: Any) -> tuple[int, int]:
    """``(n, k)`` for ``apply_fn(params, x)``: logits ``(n,)`` give ``k = 1``; raise GsJaxError on anything else.

    Evaluated abstractly (``jax.eval_shape``), so it costs nothing; a shape error inside ``apply_fn`` (inputs that
    do not fit the model) is turned into one GsJaxError line.
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    n = _n_examples(x)
    try:
        out = _abstract_output(apply_fn, params, x)
    except GsJaxError:
        raise
    except Exception as e:  # lax TypeError, flax ScopeParamShapeError, ...: inputs that do not fit the model
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        x_shapes = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(x)]
        raise GsJaxError(
            f"apply_fn(params, x) failed for x of shape {x_shapes[0] if len(x_shapes) == 1 else x_shapes}: "
            f"{first} (check that x has the input shape the model was initialised with)"
        ) from e
    check(
        isinstance(out, jax.ShapeDtypeStruct),
        f"apply_fn must return one array of logits, got a {type(out).__name__}",
    )
    check(
        out.ndim in (1, 2) and out.shape[0] == n,
        f"apply_fn(params, x) must return logits of shape (n,) or (n, k) with n = {n}, got {out.shape}",
    )
    return n, (1 if out.ndim == 1 else int(out.shape[1]))


def _spec(tree: Any) -> tuple:
    """A hashable description of a pytree's structure, shapes and dtypes (what ``jax.eval_shape`` depends on)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple(
        (np.shape(a), a.dtype if hasattr(a, "dtype") else jnp.result_type(a)) for a in leaves
    )


@functools.lru_cache(maxsize=256)
def _cached_output(apply_fn: ApplyFn, params_spec: tuple, x_spec: tuple) -> jax.ShapeDtypeStruct:
    def abstract(spec):
        treedef, leaves = spec
        return jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in leaves])

    return jax.eval_shape(apply_fn, abstract(params_spec), abstract(x_spec))


def _abstract_output(apply_fn: ApplyFn, params: Any, x: Any) -> Any:
    """``jax.eval_shape(apply_fn, params, x)``, cached on the shapes: re-tracing a Flax model costs ~0.2 ms a call,
    comparable to a small NTK Gram itself."""
    try:
        hash(apply_fn)
    except TypeError:  # an apply_fn that cannot key the cache: evaluate afresh
        return jax.eval_shape(apply_fn, params, x)
    return _cached_output(apply_fn, _spec(params), _spec(x))


def num_params(params: Any) -> int:
    """m, the number of scalar parameters (columns of Φ₀)."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def _itemsize(params: Any) -> int:
    leaves = jax.tree_util.tree_leaves(params)
    return max((np.dtype(leaf.dtype).itemsize for leaf in leaves), default=4)


# ---------------------------------------------------------------------------------------------------------------
# Φ₀: the neural tangent random features (Eq. 2)
# ---------------------------------------------------------------------------------------------------------------


def ntrf(apply_fn: ApplyFn, params: Any, x: Any, *, max_bytes: int = DENSE_LIMIT_BYTES) -> jnp.ndarray:
    """The NTRF matrix Φ₀ = ∂ŷ/∂θ at ``params`` (Eq. 2), flattened to ``(n * k, m)``.

    Rows are example-major (row ``i * k + c`` = example i, output c; ``n`` rows for binary logits); columns follow
    ``ravel_pytree(params)``. Only for sizes where Φ₀ fits in memory (``n·k·m`` entries ≤ ``max_bytes``); beyond
    that use :func:`empirical_ntk` (n ≪ m) or ``gs_jax.features.top_k`` (matrix-free).
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    n, k = output_shape(apply_fn, params, x)
    m = num_params(params)
    need = n * k * m * _itemsize(params)
    check(
        need <= max_bytes,
        f"Φ₀ of shape ({n * k}, {m}) would need {_gib(need)} (limit {_gib(max_bytes)}): use "
        "gs_jax.ntk.empirical_ntk (with batch_size) or gs_jax.features.top_k (matrix-free) instead, "
        "or raise max_bytes",
    )
    theta, unravel = ravel_pytree(params)

    def f_flat(theta_m):
        return apply_fn(unravel(theta_m), x).reshape(-1)

    jac = jax.jacfwd if m < n * k else jax.jacrev
    return jax.jit(jac(f_flat))(theta)


# ---------------------------------------------------------------------------------------------------------------
# K = Φ₀Φ₀ᵀ through neural-tangents
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _cached_kernel_fn(apply_fn: ApplyFn, backend: str, method: Any, vmap_axes: Any, binary: bool) -> Callable:
    return _make_kernel_fn(apply_fn, backend, method, vmap_axes, binary)


def _make_kernel_fn(apply_fn: ApplyFn, backend: str, method: Any, vmap_axes: Any, binary: bool) -> Callable:
    """A jitted ``kernel(params, x1, x2)`` giving ``(n1 * k, n2 * k)`` (``(n1, n2)`` for binary logits)."""
    if backend == "jax":
        return jax.jit(_example_major(_jax_kernel(apply_fn, method, vmap_axes)))
    nt = _nt()
    if binary:
        # (n,) logits: neural-tangents returns (n1, n2) directly; carrying a singleton output axis instead makes
        # its structured-derivative contractions measurably slower.
        fn = nt.empirical_ntk_fn(
            lambda p, x: apply_fn(p, x).reshape(-1),
            trace_axes=(),
            vmap_axes=vmap_axes,
            implementation=method,
        )
        return jax.jit(lambda params, x1, x2: fn(x1, x2, params))
    fn = nt.empirical_ntk_fn(_as_2d(apply_fn), trace_axes=(), vmap_axes=vmap_axes, implementation=method)
    return jax.jit(_example_major(lambda params, x1, x2: fn(x1, x2, params)))


def _example_major(ntk_nnkk: Callable) -> Callable:
    """``kernel(params, x1, x2)``: the ``(n1, n2, k, k)`` Gram of ``ntk_nnkk`` as ``(n1 * k, n2 * k)``."""

    def kernel(params, x1, x2):
        k_nnkk = ntk_nnkk(params, x1, x2)
        n1, n2, k, _ = k_nnkk.shape
        return k_nnkk.transpose(0, 2, 1, 3).reshape(n1 * k, n2 * k)

    return kernel


def _kernel_fn(
    apply_fn: ApplyFn, backend: str, implementation: str | None, vmap_axes: Any, binary: bool
) -> Callable:
    backend = resolve_backend(backend)
    if backend == "nt":
        implementation = "structured" if implementation is None else implementation
        check(
            implementation in _NT_IMPLEMENTATIONS,
            f"unknown NTK implementation {implementation!r} for backend 'nt'; choose from "
            f"{sorted(_NT_IMPLEMENTATIONS)}",
        )
        method = _NT_IMPLEMENTATIONS[implementation]
    else:
        implementation = "jacobian" if implementation is None else implementation
        check(
            implementation in _JAX_IMPLEMENTATIONS,
            f"NTK implementation {implementation!r} is not available on the jax backend (structured derivatives "
            f"are neural-tangents' own); choose from {sorted(_JAX_IMPLEMENTATIONS)}"
            if implementation in _NT_IMPLEMENTATIONS
            else f"unknown NTK implementation {implementation!r}; choose from {sorted(_JAX_IMPLEMENTATIONS)}",
        )
        method = _JAX_IMPLEMENTATIONS[implementation]
    try:
        hash((apply_fn, vmap_axes))
    except TypeError:  # unhashable apply_fn / vmap_axes: build (and compile) afresh
        return _make_kernel_fn(apply_fn, backend, method, vmap_axes, binary)
    return _cached_kernel_fn(apply_fn, backend, method, vmap_axes, binary)


def _pad_rows(x: Any, size: int) -> Any:
    """Pad every leaf of ``x`` along axis 0 to ``size`` rows by repeating its last row."""

    def pad(a):
        a = jnp.asarray(a)
        extra = size - a.shape[0]
        if extra == 0:
            return a
        return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, x)


def _slice_rows(x: Any, start: int, stop: int) -> Any:
    return jax.tree_util.tree_map(lambda a: a[start:stop], x)


#: ``batch_size="auto"``: on CPU, Grams beyond this many examples are computed in blocks of AUTO_BLOCK rows.
AUTO_BLOCK_ABOVE = 768
AUTO_BLOCK = 512


def auto_batch_size(n1: int, n2: int) -> int | None:
    """The block size ``batch_size="auto"`` picks: None (one call) on accelerators and for small Grams; on CPU
    blocks of 512 beyond 768 examples. Measured with jax 0.9.2 on 2 CPU cores, the CMNIST MLP Gram at n = 1024
    takes 0.030 s in one call and 0.020 s in 512-blocks (jax 0.4.25 took 0.020 s in one call), and the blocks bound
    the working memory by the block instead of by n."""
    if jax.default_backend() != "cpu" or max(n1, n2) <= AUTO_BLOCK_ABOVE:
        return None
    return AUTO_BLOCK


def empirical_ntk(
    apply_fn: ApplyFn,
    params: Any,
    x1: Any,
    x2: Any = None,
    *,
    implementation: str | None = None,
    backend: str = "auto",
    batch_size: int | str | None = "auto",
    vmap_axes: Any = 0,
    max_bytes: int = DENSE_LIMIT_BYTES,
    progress: Progress | None = None,
) -> jnp.ndarray:
    """The empirical NTK Gram K(x₁, x₂) = Φ₀(x₁) Φ₀(x₂)ᵀ, shape ``(n1 * k, n2 * k)`` (example-major rows/columns).

    Args:
      apply_fn: ``apply_fn(params, x) -> logits`` of shape ``(n,)`` or ``(n, k)``.
      params: the parameters θ₀ at which Φ₀ is taken.
      x1, x2: inputs, examples along axis 0; ``x2=None`` gives the symmetric Gram K(x₁, x₁).
      implementation: ``"structured"`` (structured derivatives; neural-tangents only, its default and usually
        the fastest), ``"jacobian"`` (Jacobian contraction; the jax backend's default), ``"ntvp"`` (NTK-vector
        products) or ``"auto"``; ``None`` takes the backend's default.
      backend: ``"nt"`` (neural-tangents), ``"jax"`` (gs-jax's own, public jax only) or ``"auto"`` (neural-tangents
        where it can be imported, see :func:`nt_available`).
      batch_size: compute K in ``batch_size × batch_size`` blocks (the last block padded, so one compilation),
        which bounds the working memory by the block instead of by n; the dense result is assembled on the host.
        For x2=None only the upper block triangle is computed. ``"auto"`` (default): see :func:`auto_batch_size`;
        ``None``: one call.
      vmap_axes: the batch axis of ``apply_fn`` for neural-tangents (0: examples independent, the usual case;
        ``None`` for a model that mixes examples, e.g. BatchNorm in training mode).
      max_bytes: refuse (GsJaxError) a dense result, or an unbatched Jacobian contraction, larger than this.
      progress: wraps the loop over blocks, e.g. ``gs_jax.runs.progress`` for a bar (default: none).

    Returns:
      ``K`` of shape ``(n1 * k, n2 * k)``; ``(n1, n2)`` for binary logits.
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    n1, k = output_shape(apply_fn, params, x1)
    n2 = n1 if x2 is None else output_shape(apply_fn, params, x2)[0]
    item = _itemsize(params)
    m = num_params(params)
    out_bytes = n1 * n2 * k * k * item
    check(
        out_bytes <= max_bytes,
        f"a dense NTK Gram of shape ({n1 * k}, {n2 * k}) would need {_gib(out_bytes)} (limit {_gib(max_bytes)}): "
        "use gs_jax.features.top_k (matrix-free NTK-vector products) for the leading features without forming K, "
        "or compute it in row blocks K(x1[i:i+b], x2) with batch_size=... and consume each block, "
        "or raise max_bytes",
    )
    if batch_size == "auto":
        batch_size = auto_batch_size(n1, n2)
    if batch_size is not None:
        check(
            isinstance(batch_size, (int, np.integer)) and int(batch_size) >= 1,
            f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}",
        )
    rows = n1 + n2 if batch_size is None else 2 * min(int(batch_size), max(n1, n2))
    jac_bytes = rows * k * m * item
    check(
        implementation not in ("jacobian", "jacobian_contraction", None)
        or jac_bytes <= max_bytes
        or (implementation is None and resolve_backend(backend) == "nt"),
        f"the Jacobian contraction holds {rows * k} × {m} Jacobian entries ({_gib(jac_bytes)}, limit "
        f"{_gib(max_bytes)}): pass a smaller batch_size, implementation='structured', or use "
        "gs_jax.features.top_k (matrix-free)",
    )
    kernel = _kernel_fn(apply_fn, backend, implementation, vmap_axes, binary=k == 1)
    if batch_size is None or (batch_size >= n1 and batch_size >= n2):
        # x2=None takes the symmetric path (one set of Jacobians), measurably faster than passing (x1, x1)
        return kernel(params, x1, x2)
    return _blocked(kernel, params, x1, x2, n1, n2, k, int(batch_size), progress or _no_progress)


def _blocked(kernel, params, x1, x2, n1, n2, k, b, progress: Progress, devices=None) -> jnp.ndarray:
    """Assemble K block by block (float of the params' precision) in one device array updated in place.

    The blocks are spread round-robin over ``devices`` (default: every visible device): one wave dispatches a block
    to each device (jax runs them concurrently), then writes the wave into K. K is written through a donated
    buffer, so the Gram's n1·n2 entries are held once (assembling it on the host and converting at the end
    held them twice: 8 B·n² at float32).
    """
    symmetric = x2 is None
    xb = x1 if symmetric else x2
    devices = list(devices or jax.devices())
    starts1, starts2 = range(0, n1, b), range(0, n2, b)
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    out = jnp.zeros((n1 * k, n2 * k), dtype=dtype, device=devices[0])
    blocks = [(i, j) for i in starts1 for j in starts2 if not symmetric or j >= i]
    padded1 = {i: _pad_rows(_slice_rows(x1, i, min(i + b, n1)), b) for i in starts1}
    padded2 = padded1 if symmetric else {j: _pad_rows(_slice_rows(xb, j, min(j + b, n2)), b) for j in starts2}
    params_on = [jax.device_put(params, d) for d in devices] if len(devices) > 1 else [params]

    def store(out, i, j, blk):
        shape = (min(b, n1 - i) * k, min(b, n2 - j) * k)
        blk = jax.device_put(blk, devices[0]) if len(devices) > 1 else blk
        return _store_block(out, blk, i * k, j * k, shape=shape, mirror=symmetric and j > i)

    wave = []
    for n_done, (i, j) in enumerate(progress(blocks, total=len(blocks), desc="NTK blocks")):
        slot = n_done % len(params_on)
        if len(params_on) > 1:
            d = devices[slot]
            wave.append(
                (i, j, kernel(params_on[slot], jax.device_put(padded1[i], d), jax.device_put(padded2[j], d)))
            )
        else:
            wave.append((i, j, kernel(params, padded1[i], padded2[j])))
        if len(wave) == len(params_on):
            for w in wave:
                out = store(out, *w)
            wave = []
    for w in wave:
        out = store(out, *w)
    return out


@functools.partial(jax.jit, static_argnames=("shape", "mirror"), donate_argnums=0)
def _store_block(out, blk, row, col, *, shape, mirror):
    """``out[row:row+r, col:col+c] = blk[:r, :c]`` (and its transpose at (col, row) when ``mirror``), in place."""
    blk = blk[: shape[0], : shape[1]]
    out = jax.lax.dynamic_update_slice(out, blk, (row, col))
    return jax.lax.dynamic_update_slice(out, blk.T, (col, row)) if mirror else out


# ---------------------------------------------------------------------------------------------------------------
# Matrix-free K·v
# ---------------------------------------------------------------------------------------------------------------


def _products(
    name: str, arg: str, apply_fn: ApplyFn, params: Any, x: Any, product
) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """Jit ``product(vjp, f, p, v_nk)`` for one vector ``(n*k,)`` or a batch ``(n*k, p)`` (vmapped), shape-checked.

    ``vjp`` pulls an ``(n, k)`` cotangent back to a parameter pytree, ``f(q)`` is the ``(n, k)`` output at
    parameters ``q``. params and x are traced arguments, not closed-over constants: XLA then sees one program
    whatever n is (closing over a linearisation's residuals embeds them as constants, which is slow to compile and
    was observed to give wrong products on CPU for n = 1000).
    """
    n, k = output_shape(apply_fn, params, x)
    f2 = _as_2d(apply_fn)
    dtype = _abstract_output(apply_fn, params, x).dtype  # cached by output_shape just above

    def one(p, xx, v_r):
        f = lambda q: f2(q, xx)  # noqa: E731
        _, vjp = jax.vjp(f, p)
        return product(lambda c: vjp(c)[0], f, p, v_r.reshape(n, k).astype(dtype))

    single = jax.jit(one)
    batch = jax.jit(jax.vmap(one, in_axes=(None, None, 1), out_axes=1))

    def apply(v):
        v = jnp.asarray(v)
        check(
            v.ndim in (1, 2) and v.shape[0] == n * k,
            f"{name}: {arg} must have shape ({n * k},) or ({n * k}, p), got {v.shape}",
        )
        return single(params, x, v) if v.ndim == 1 else batch(params, x, v)

    return apply


def ntk_vp(apply_fn: ApplyFn, params: Any, x: Any) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """A jitted closure ``v -> K v`` with K = Φ₀Φ₀ᵀ on ``x``, without forming K or Φ₀.

    ``K v = Φ₀ (Φ₀ᵀ v)``: a VJP (Φ₀ᵀ v, a parameter-shaped pytree) followed by a JVP, so each product costs
    about three forward passes and the intermediate memory is that of the activations on ``x``. ``v`` has shape
    ``(n * k,)`` (example-major) or ``(n * k, p)`` for p products at once (matrix-matrix, vmapped).
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)

    def kv(vjp, f, p, v_nk):
        return jax.jvp(f, (p,), (vjp(v_nk),))[1].reshape(-1)

    return _products("ntk_vp", "v", apply_fn, params, x, kv)


def ntrf_tvp(apply_fn: ApplyFn, params: Any, x: Any) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """A jitted closure ``w -> Φ₀ᵀ w`` (shape ``(m,)``, ``ravel_pytree`` order), or ``(n*k, p) -> (m, p)``."""
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    return _products("ntrf_tvp", "w", apply_fn, params, x, lambda vjp, f, p, w_nk: ravel_pytree(vjp(w_nk))[0])


# ---------------------------------------------------------------------------------------------------------------
# Linearised model (Eq. 3)
# ---------------------------------------------------------------------------------------------------------------


def linearize(apply_fn: ApplyFn, params: Any) -> ApplyFn:
    """The linearised model ŷ_lin(θ, x) = ŷ(θ₀, x) + Φ₀(x)(θ − θ₀) around θ₀ = ``params`` (Eq. 3).

    One JVP per call (what ``neural_tangents.linearize`` computes, on public jax). Returns ``f_lin(params, x)``
    with the same signature and output shape as ``apply_fn`` (for a module: θ as ``adapters.as_apply_fn`` gives).
    """
    apply_fn, params = adapters.as_apply_fn(apply_fn, params)
    params0 = params

    def f_lin(p, x):
        delta = jax.tree_util.tree_map(lambda a, b: a - b, p, params0)
        f0, df = jax.jvp(lambda q: apply_fn(q, x), (params0,), (delta,))
        return f0 + df

    return f_lin


# ---------------------------------------------------------------------------------------------------------------
# Infinite width (neural_tangents.stax, NTK parameterisation)
# ---------------------------------------------------------------------------------------------------------------


def relu_mlp_stax(
    widths: tuple[int, ...] | int = 500,
    *,
    out_dim: int = 1,
    W_std: float = 2.0**0.5,
    b_std: float | None = 0.1,
    parameterization: str = "ntk",
) -> tuple[Callable, Callable, Callable]:
    """A ReLU MLP as ``neural_tangents.stax``: ``(init_fn, apply_fn, kernel_fn)``.

    ``widths`` are the hidden widths (an int for the paper's two-layer network ``d → width → out_dim``, Fig. 1).
    In the NTK parameterisation (Eq. 1 of the paper: weights N(0, 1) scaled by σ_w/√fan_in in the forward pass)
    the empirical NTK of ``apply_fn`` at ``init_fn`` converges to ``kernel_fn(x1, x2, "ntk")`` as the widths grow.
    """
    stax = _nt().stax
    widths = (widths,) if isinstance(widths, int) else tuple(widths)
    layers = []
    for w in widths:
        layers += [stax.Dense(w, W_std=W_std, b_std=b_std, parameterization=parameterization), stax.Relu()]
    layers.append(stax.Dense(out_dim, W_std=W_std, b_std=b_std, parameterization=parameterization))
    return stax.serial(*layers)


def infinite_width_ntk(kernel_fn: Callable, x1: Any, x2: Any = None, *, batch_size: int | None = None):
    """The analytic infinite-width NTK Θ(x₁, x₂) of a ``neural_tangents.stax`` ``kernel_fn``, shape ``(n1, n2)``.

    One row per example (the infinite-width NTK is the identity across outputs). ``batch_size`` uses
    ``neural_tangents.batch`` (n must then be divisible by it).
    """
    n1 = _n_examples(x1, "x1")
    if x2 is not None:
        _n_examples(x2, "x2")
    fn = kernel_fn
    if batch_size is not None:
        check(
            n1 % int(batch_size) == 0,
            f"infinite_width_ntk: n={n1} must be divisible by batch_size={batch_size}",
        )
        fn = _nt().batch(kernel_fn, batch_size=int(batch_size))
    return fn(x1, x2, "ntk")
