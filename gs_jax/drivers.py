"""First stages that a registered method runs before its own training (``algorithms.Algorithm.driver``), written
once for every supervised benchmark built with ``gs_jax.supervised``.

- ``jtt_identify`` (JTT, Liu et al. ICML 2021, Algorithm 1 stage 1): the identification model is ERM trained for T
  epochs with the benchmark's own network, optimiser and sampler; the training examples it misclassifies are the
  error set that the second stage up-samples λ_up× (``algorithms.ALGORITHMS["jtt"].sampling``)::

      errors = drivers.jtt_identify(spec, {"x": x, "y": y}, keys, epochs=1)          # (R, n) bool, one per seed
      state = supervised.restart_state(spec, "jtt", hp, {"error_set": errors[r], "n": n})
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from gs_jax import evaluators, group_methods, metrics, supervised, trainer
from gs_jax.errors import check

DRIVERS = ("jtt_identify",)


def jtt_identify(spec: supervised.Spec, data, keys, *, epochs: int, chunk: int = 256,
                 saveat: trainer.SaveAt = trainer.SaveAt(), progress: trainer.Progress = trainer.Progress()
                 ) -> np.ndarray:  # fmt: skip
    """JTT's error sets, bool ``(R, n)``: restart r trains ERM from ``keys[r]`` for ``epochs`` epochs of ``spec``
    (its model, optimiser, sampler and augmentation; no other method) on ``data`` (``x``, ``y`` and the sampled
    fields), then marks the training examples its eval-mode network misclassifies (``group_methods.jtt_error_set``)."""
    check(epochs >= 1, f"jtt identify_epochs must be ≥ 1, got {epochs}")
    erm = dataclasses.replace(spec, branches=(("erm", ()),))
    keys = jax.numpy.asarray(keys)
    n = int(np.shape(data["y"])[0])
    algo = supervised.stack([supervised.restart_state(erm, "erm", {}, {"n": n})] * int(keys.shape[0]))
    res = trainer.train(supervised.make_task(erm), data, keys, steps=epochs * spec.steps_per_epoch,
                        data_per_restart=False, init=trainer.Init(algo_state=algo), saveat=saveat, progress=progress,
                        layout=trainer.Layout(max_chunk=spec.steps_per_epoch))  # fmt: skip
    model = spec.model
    logits = jax.jit(jax.vmap(lambda v, x: evaluators.logits(model, v, x, chunk), in_axes=(0, None)))(
        evaluators.variables_of(res.state), data["x"]
    )
    y = np.asarray(data["y"])
    return np.stack([group_methods.jtt_error_set(np.asarray(metrics.predictions(lg)), y) for lg in logits])
