"""How a training step draws its batch: full batch, epochs of shuffled minibatches, or draws with replacement by
per-example weights (group-balanced sampling, JTT's up-weighted error set). Pure functions on the device.

A :class:`Sampler` is a pair of functions of ONE restart (the trainer vmaps them)::

    state = sampler.init(data, algo_state, key)             # once, after initialisation
    batch, state = sampler.draw(data, state, t, key)        # every step

``key`` is the restart's stream key (the same at every step; draws derive their own keys from it and ``t``);
``t`` is the step, an **unbatched** scalar (all restarts step together), so per-epoch work runs under a real
``lax.cond`` once per epoch even inside ``vmap``: the permutation of an epoch is drawn at its first step and kept
in the sampler state, instead of being re-drawn and re-sorted at every step (O(n log n) per step, which dominated
at small batches). Nothing depends on how the steps are cut into chunks, so a resumed run draws the same batches.

A minibatch is a dict of the sampled ``fields`` of ``data`` plus ``idx``, the sampled indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gs_jax.errors import check

BATCH_STREAM = 2**31 - 1  # fold_in index of the epoch-permutation stream (steps use 0, 1, 2, ...)
AUG_STREAM = 2**31 - 2  # fold_in index of the augmentation stream


class Sampler(NamedTuple):
    """``init(data, algo_state, key) -> state`` and ``draw(data, state, t, key) -> (batch, state)``."""

    init: Callable
    draw: Callable


def full_batch() -> Sampler:
    """Every step sees all the data (the default)."""
    return Sampler(lambda data, algo_state, key: {}, lambda data, state, t, key: (data, state))


def _size(data, fields) -> int:
    return int(jax.tree_util.tree_leaves({k: data[k] for k in fields} if fields else data)[0].shape[0])


def _take(data, fields, idx):
    picked = {k: data[k] for k in fields} if fields else data
    return {**jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), picked), "idx": idx}


def epoch_permutation(key, epoch, n: int) -> jax.Array:
    """The permutation of epoch ``epoch``: ``permutation(fold_in(fold_in(key, 2³¹ − 1), epoch), n)``."""
    return jax.random.permutation(jax.random.fold_in(jax.random.fold_in(key, BATCH_STREAM), epoch), n)


def weighted_draw(key, cdf, size: int) -> jax.Array:
    """``size`` indices drawn with replacement with probability ∝ the increments of ``cdf`` (inverse CDF)."""
    u = jax.random.uniform(key, (size,), cdf.dtype) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), cdf.shape[0] - 1)


def _cdf(algo_state, n: int):
    logw = algo_state.get("logw") if isinstance(algo_state, dict) else None
    if logw is None:
        return jnp.arange(1, n + 1, dtype=jnp.float32), jnp.asarray(False)
    return jnp.cumsum(jnp.exp(logw - jnp.max(logw))), jnp.any(logw != logw[0])


def epochs(batch_size: int, fields: Sequence[str] = (), *, weighted: bool = False) -> Sampler:
    """Epochs of shuffled minibatches without replacement; the last ``n mod batch_size`` examples of each
    permutation are dropped (a ``drop_last`` loader). Step t is batch ``t mod b`` of epoch ``t // b``
    (b = ⌊n / batch_size⌋).

    ``weighted=True``: restarts whose ``algo_state["logw"]`` is not constant draw with replacement, probability
    ∝ exp(logw) (:func:`with_replacement`'s draw), the others keep their epoch permutations — so a method that
    samples by weights (Group DRO's balanced groups, JTT) runs beside uniform ones in one program.
    """
    check(batch_size >= 1, f"batch_size must be ≥ 1, got {batch_size}")

    def init(data, algo_state, key):
        n = _size(data, fields)
        check(n >= batch_size, f"batch_size {batch_size} is larger than the training set ({n} examples)")
        state = {"perm": epoch_permutation(key, 0, n)}
        if weighted:
            state["cdf"], state["weighted"] = _cdf(algo_state, n)
        return state

    def draw(data, state, t, key):
        n = _size(data, fields)
        per_epoch = n // batch_size
        epoch, i = t // per_epoch, t % per_epoch
        perm = jax.lax.cond(i == 0, lambda: epoch_permutation(key, epoch, n), lambda: state["perm"])
        idx = jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))
        if weighted:
            drawn = weighted_draw(jax.random.fold_in(key, t), state["cdf"], batch_size)
            idx = jnp.where(state["weighted"], drawn, idx)
        return _take(data, fields, idx), {**state, "perm": perm}

    return Sampler(init, draw)


def with_replacement(batch_size: int, fields: Sequence[str] = ()) -> Sampler:
    """``batch_size`` examples drawn with replacement at every step, probability ∝ exp(``algo_state["logw"]``)
    (uniform without it), from the step key ``fold_in(key, t)``. The CDF is computed once, at init."""
    check(batch_size >= 1, f"batch_size must be ≥ 1, got {batch_size}")

    def init(data, algo_state, key):
        return {"cdf": _cdf(algo_state, _size(data, fields))[0]}

    def draw(data, state, t, key):
        idx = weighted_draw(jax.random.fold_in(key, t), state["cdf"], batch_size)
        return _take(data, fields, idx), state

    return Sampler(init, draw)


def transformed(sampler: Sampler, fn: Callable[[dict[str, Any], Any, Any], dict[str, Any]]) -> Sampler:
    """``sampler`` followed by ``fn(batch, t, key) -> batch`` (e.g. data augmentation from
    ``fold_in(fold_in(key, AUG_STREAM), t)``)."""

    def draw(data, state, t, key):
        batch, state = sampler.draw(data, state, t, key)
        return fn(batch, t, key), state

    return Sampler(sampler.init, draw)


def augment_crop_flip(x_nhwc, key, pad: int = 4):
    """RandomCrop(H, padding=pad) + RandomHorizontalFlip on the device: zero padding in pixel space (as torch pads
    the un-normalised tensor), one crop offset and flip per image."""
    n, h, w, c = x_nhwc.shape
    k_off, k_flip = jax.random.split(key)
    offs = jax.random.randint(k_off, (n, 2), 0, 2 * pad + 1)
    flip = jax.random.bernoulli(k_flip, 0.5, (n,))
    padded = jnp.pad(x_nhwc, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(img, off, f):
        crop = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
        return jnp.where(f, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offs, flip)


def crop_flip(fields: Sequence[str] = ("x",)) -> Callable:
    """A :func:`transformed` function augmenting ``fields`` with :func:`augment_crop_flip`."""

    def fn(batch, t, key):
        k = jax.random.fold_in(jax.random.fold_in(key, AUG_STREAM), t)
        return {**batch, **{f: augment_crop_flip(batch[f], k) for f in fields}}

    return fn
