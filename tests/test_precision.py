import jax.numpy as jnp

from gs_jax import precision


def test_x64_context_switches_and_restores():
    before = precision.x64_enabled()
    with precision.x64(True):
        assert jnp.zeros(1).dtype == jnp.float64
        with precision.x64(False):
            assert jnp.zeros(1).dtype == jnp.float32
        assert precision.x64_enabled()
    assert precision.x64_enabled() == before


def test_x64_fixture(x64):
    assert jnp.asarray(1.0).dtype == jnp.float64
