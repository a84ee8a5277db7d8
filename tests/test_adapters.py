"""gs_jax.adapters: the same toy network written in Flax linen, Flax NNX and Equinox (same weights) gives the same NTK,
features and responses; modules in the wrong place or of other libraries are one-line errors naming what is
accepted. The Equinox tests skip where Equinox is not installed."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gs_jax import adapters, features, monitor, ntk
from gs_jax.errors import GsJaxError

N, D, H = 12, 3, 16


def _eqx():
    return pytest.importorskip("equinox")


class LinenNet(nn.Module):
    classes: int

    @nn.compact
    def __call__(self, x):
        h = jnp.tanh(nn.Dense(H)(x))  # Dense_0 (created first)
        out = nn.Dense(self.classes)(h)  # Dense_1
        return out[:, 0] if self.classes == 1 else out


class NnxNet(nnx.Module):
    def __init__(self, classes: int, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(D, H, rngs=rngs, param_dtype=jnp.float64)
        self.l2 = nnx.Linear(H, classes, rngs=rngs, param_dtype=jnp.float64)
        self.classes = classes

    def __call__(self, x):
        out = self.l2(jnp.tanh(self.l1(x)))
        return out[:, 0] if self.classes == 1 else out


def _equinox_net(classes, w):
    """An Equinox module (one example in, as Equinox modules are called) with the linen weights ``w``."""
    eqx = _eqx()

    class EqxNet(eqx.Module):
        l1: eqx.nn.Linear
        l2: eqx.nn.Linear

        def __call__(self, x):
            out = self.l2(jnp.tanh(self.l1(x)))
            return out[0] if out.shape[0] == 1 else out

    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    net = EqxNet(eqx.nn.Linear(D, H, key=key1), eqx.nn.Linear(H, classes, key=key2))
    # Equinox stores weight as (out, in): the transpose of the linen/NNX kernel
    for layer, name in ((lambda m: m.l1, "Dense_0"), (lambda m: m.l2, "Dense_1")):
        net = eqx.tree_at(lambda m, layer=layer: layer(m).weight, net, w[name]["kernel"].T)
        net = eqx.tree_at(lambda m, layer=layer: layer(m).bias, net, w[name]["bias"])
    return net


def _models(classes: int, library: str):
    """``(model, params, x)`` for ``library``, every library holding the same float64 weights."""
    x = jax.random.normal(jax.random.PRNGKey(1), (N, D), dtype=jnp.float64)
    w = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64), LinenNet(classes).init(jax.random.PRNGKey(2), x)["params"]
    )
    if library == "linen":
        return (lambda p, xx: LinenNet(classes).apply({"params": p}, xx)), w, x
    if library == "nnx":
        net = NnxNet(classes, nnx.Rngs(0))
        for layer, name in ((net.l1, "Dense_0"), (net.l2, "Dense_1")):
            layer.kernel[...] = w[name]["kernel"]
            layer.bias[...] = w[name]["bias"]
        return net, None, x
    return _equinox_net(classes, w), None, x


def _perturbed(model, params):
    """The same elementwise change of every weight in any library: θ → 1.1 θ + 0.01, and the new logits."""
    apply_fn, theta = adapters.as_apply_fn(model, params)
    theta2 = jax.tree_util.tree_map(lambda a: 1.1 * a + 0.01, theta)
    return apply_fn, theta, theta2


@pytest.mark.parametrize("library", ["nnx", "equinox"])
@pytest.mark.parametrize("classes", [1, 3])
def test_same_network_in_every_library_gives_the_same_ntk_features_and_responses(classes, library, x64):
    ref_model, ref_params, x = _models(classes, "linen")
    model, params, _ = _models(classes, library)
    # the logits, the Gram on both backends, Φ₀Φ₀ᵀ (Φ₀'s columns are in each library's parameter order) and K·v
    np.testing.assert_allclose(adapters.as_apply_fn(model, params)[0](*adapters.as_apply_fn(model, params)[1:], x),
                               ref_model(ref_params, x), atol=1e-12)  # fmt: skip
    K_ref = np.asarray(ntk.empirical_ntk(ref_model, ref_params, x, backend="jax"))
    for backend in ("jax", "auto"):
        np.testing.assert_allclose(ntk.empirical_ntk(model, params, x, backend=backend), K_ref, atol=1e-10)
    phi = np.asarray(ntk.ntrf(model, params, x))
    np.testing.assert_allclose(phi @ phi.T, K_ref, atol=1e-10)
    assert phi.shape[1] == ntk.num_params(ref_params)
    v = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (K_ref.shape[0],), dtype=jnp.float64))
    np.testing.assert_allclose(ntk.ntk_vp(model, params, x)(v), K_ref @ v, atol=1e-10)
    # features (dense and matrix-free) and responses along a perturbation, in each form of Definition 1
    forms = [None] if classes == 1 else ["one_vs_rest", "joint"]
    y = np.arange(N) % max(classes, 2)
    _, _, ref_theta2 = _perturbed(ref_model, ref_params)
    apply_fn, _, theta2 = _perturbed(model, params)
    for form in forms:
        for method in (
            ("dense", "lanczos") if classes == 1 else ("dense",)
        ):  # multi-class Lanczos: test_multiclass
            ref = monitor.at_reference(ref_model, ref_params, x, y, 3, form=form, method=method)
            got = monitor.at_reference(model, params, x, y, 3, form=form, method=method)
            for a, b in zip(got, ref, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-7)
            np.testing.assert_allclose(monitor.responses(got, apply_fn(theta2, x)),
                                       monitor.responses(ref, ref_model(ref_theta2, x)), atol=1e-7)  # fmt: skip
    if classes == 1:
        f_ref = features.top_k(ref_model, ref_params, x, y, 3, with_v=True)
        f_got = features.top_k(model, params, x, y, 3, with_v=True)
        np.testing.assert_allclose(f_got.s, f_ref.s, rtol=1e-8)
        # V in each library's parameter order: the same vectors once mapped through Φ₀ (Φ₀ V = Y U S)
        ref_phi = np.asarray(ntk.ntrf(ref_model, ref_params, x))
        np.testing.assert_allclose(phi @ np.asarray(f_got.V), ref_phi @ np.asarray(f_ref.V), atol=1e-7)
    # the linearised model, Eq. 3, at the perturbed parameters
    np.testing.assert_allclose(ntk.linearize(model, params)(theta2, x),
                               ntk.linearize(ref_model, ref_params)(ref_theta2, x), atol=1e-10)  # fmt: skip


def test_equinox_module_passed_as_params_with_an_apply_function(x64):
    # the named failure: a raw Equinox module as ``params`` of a function that calls it (non-array leaves inside)
    model, _, x = _models(1, "equinox")
    K = ntk.empirical_ntk(lambda m, xx: jax.vmap(m)(xx), model, x)
    np.testing.assert_allclose(K, ntk.empirical_ntk(model, None, x), atol=1e-12)


def test_equinox_batched_module(x64):
    eqx = _eqx()

    class Batched(eqx.Module):
        w: jax.Array

        def __call__(self, x):  # takes the whole batch
            return jnp.tanh(x @ self.w)

    model = Batched(jnp.linspace(-1.0, 1.0, D))
    x = jax.random.normal(jax.random.PRNGKey(4), (N, D), dtype=jnp.float64)
    apply_fn, theta = adapters.from_equinox(model, batched=True)
    jac = jax.jacrev(lambda w: jnp.tanh(x @ w))(model.w)  # brute force: Φ₀ of the batch, (n, D)
    np.testing.assert_allclose(ntk.empirical_ntk(apply_fn, theta, x), jac @ jac.T, atol=1e-12)


def test_nnx_state_other_than_params_is_held_fixed(x64):
    class WithNorm(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(D, H, rngs=rngs, param_dtype=jnp.float64)
            self.bn = nnx.BatchNorm(H, use_running_average=True, rngs=rngs, param_dtype=jnp.float64)
            self.l2 = nnx.Linear(H, 1, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.bn(self.l1(x))))[:, 0]

    model = WithNorm(nnx.Rngs(0))
    model.bn.mean[...] = jnp.full(H, 0.3)  # batch statistics: state, not parameters
    x = jax.random.normal(jax.random.PRNGKey(5), (N, D), dtype=jnp.float64)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jacrev(lambda t: nnx.merge(graphdef, unravel(t), rest)(x))(flat)  # brute force over Params only
    phi = ntk.ntrf(model, None, x)
    assert phi.shape == jac.shape == (N, (D * H + H) + 2 * H + (H + 1))  # l1, bn scale and bias, l2
    np.testing.assert_allclose(phi, jac, atol=1e-12)
    np.testing.assert_allclose(ntk.empirical_ntk(model, None, x), jac @ jac.T, atol=1e-10)


def test_apply_functions_of_the_same_structure_compare_equal(x64):
    # gs_jax.ntk keys its compilation caches on the apply function: the same model twice, or a copy with other
    # weights, must give equal (and equally hashed) apply functions
    a, _ = adapters.as_apply_fn(NnxNet(2, nnx.Rngs(0)))
    b, _ = adapters.as_apply_fn(NnxNet(2, nnx.Rngs(1)))
    assert a == b and hash(a) == hash(b)
    eqx = _eqx()
    m1 = eqx.nn.MLP(D, 2, 8, 1, key=jax.random.PRNGKey(0))
    m2 = eqx.nn.MLP(D, 2, 8, 1, key=jax.random.PRNGKey(1))
    a, _ = adapters.as_apply_fn(m1)
    b, _ = adapters.as_apply_fn(m2)
    assert a == b and hash(a) == hash(b)


def test_anything_else_is_a_one_line_error_naming_what_is_accepted(x64):
    x = jnp.ones((N, D))
    linen = LinenNet(1)
    params = linen.init(jax.random.PRNGKey(0), x)["params"]
    cases = [
        ((linen, params), "Flax linen module, which holds no parameters"),
        (("not a model", params), "a Flax NNX module or an Equinox module"),
        ((lambda p, xx: xx, None), "params is None but the model is a function"),
        ((NnxNet(1, nnx.Rngs(0)), params), "pass params=None"),
        ((lambda p, xx: xx, {"w": jnp.ones(2), "f": jnp.tanh}), r"params\['f'\] is a"),
        ((lambda p, xx: xx, linen), "Flax linen module"),
    ]
    for (model, p), message in cases:
        with pytest.raises(GsJaxError, match=message) as err:
            ntk.empirical_ntk(model, p, x)
        assert "\n" not in str(err.value)
    with pytest.raises(GsJaxError, match="NNX module"):
        monitor.at_reference("model", None, x, np.arange(N) % 2, 2)
