"""On a GPU (skipped where jax sees none): the NTK Gram and a short vmapped Colored MNIST run agree with the CPU.

float32 on both devices; the GPU's matmuls (TF32 off by default in jax for float32 — `jax_default_matmul_precision`
is left as is) sum in another order, so the tolerances are float32 round-off over the lengths of the sums.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import models, ntk
from gs_jax.data import colored_mnist, mnist
from gs_jax.experiments import cmnist as cmnist_exp

pytestmark = pytest.mark.gpu


def _on(device, fn, *args):
    args = jax.device_put(args, device)
    with jax.default_device(device):
        return jax.tree_util.tree_map(np.asarray, fn(*args))


@pytest.mark.parametrize("backend", ["auto", "jax"])
def test_ntk_gram_gpu_equals_cpu(backend):
    model = models.CmnistMLP(hidden=64)
    x = jax.random.normal(jax.random.PRNGKey(0), (256, 392), dtype=jnp.float32)
    params = model.init(jax.random.PRNGKey(1), x[:2])

    def gram(p, xx):
        return ntk.empirical_ntk(model.apply, p, xx, backend=backend)

    gpu = _on(jax.devices("gpu")[0], gram, params, x)
    cpu = _on(jax.devices("cpu")[0], gram, params, x)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4 * np.abs(cpu).max())


def test_cmnist_restarts_gpu_equal_cpu():
    pool = mnist.load_pool()  # the embedded 5,000 digits
    seeds = [1234, 1235]
    data = cmnist_exp.restart_data([colored_mnist.build_restart(pool, s, four_envs=False) for s in seeds])
    schedule = {"hidden": 32, "lr": 1e-3, "steps": 21, "grayscale": False}

    def run(d):
        return cmnist_exp.train_restarts("erm", d, seeds, schedule=schedule, eval_every=10)[0].final

    gpu = _on(jax.devices("gpu")[0], run, data)
    cpu = _on(jax.devices("cpu")[0], run, data)
    for key in ("train_acc", "test_acc"):
        np.testing.assert_allclose(gpu[key], cpu[key], atol=2e-3, err_msg=key)  # a point or two may flip
