"""Metrics on hand-built examples whose answers are worked out in the comments."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gs_jax import metrics
from gs_jax.errors import GsJaxError

# Eight examples, four groups. Group 3 is the smallest (one example) and the only one with accuracy 0.
#            i:    0     1     2     3     4     5     6     7
LOGITS = np.array([2.0, -1.0, 0.5, -3.0, 1.0, 0.0, -0.2, -4.0], np.float32)
#     pred (ŷ>0):   1     0     1     0     1     0     0     0      (a logit of exactly 0 predicts 0)
Y = np.array([1, 0, 0, 0, 1, 1, 0, 1])
#      correct:     1     1     0     1     1     0     1     0      -> 5 / 8
GROUPS = np.array([2, 0, 0, 1, 2, 2, 1, 3])
# group 0: {1, 2} -> 1/2; group 1: {3, 6} -> 2/2; group 2: {0, 4, 5} -> 2/3; group 3: {7} -> 0/1


def test_accuracy_binary_and_multiclass():
    assert float(metrics.accuracy(LOGITS, Y)) == pytest.approx(5 / 8)
    scores = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.5]], np.float32)
    # argmax: 1, 0, 2, 1 against labels 1, 2, 2, 0 -> 2 / 4
    assert float(metrics.accuracy(scores, np.array([1, 2, 2, 0]))) == pytest.approx(0.5)
    np.testing.assert_array_equal(metrics.predictions(scores), [1, 0, 2, 1])


def test_group_and_worst_group_accuracy():
    acc = np.asarray(metrics.group_accuracies(LOGITS, Y, GROUPS, 4))
    np.testing.assert_allclose(acc, [1 / 2, 1.0, 2 / 3, 0.0], rtol=1e-6)
    # the worst group is the smallest one (a single example), not the group with the most errors (groups 0, 2)
    assert float(metrics.worst_group_accuracy(LOGITS, Y, GROUPS, 4)) == 0.0
    np.testing.assert_array_equal(metrics.group_counts(GROUPS, 4), [2, 2, 3, 1])


def test_empty_group_is_nan_and_ignored():
    keep = GROUPS != 3  # drop group 3; ask for 5 groups so groups 3 and 4 are empty
    acc = np.asarray(metrics.group_accuracies(LOGITS[keep], Y[keep], GROUPS[keep], 5))
    np.testing.assert_allclose(acc[:3], [1 / 2, 1.0, 2 / 3], rtol=1e-6)
    assert np.isnan(acc[3]) and np.isnan(acc[4])
    assert float(metrics.worst_group_accuracy(LOGITS[keep], Y[keep], GROUPS[keep], 5)) == pytest.approx(0.5)


def test_average_accuracy_plain_and_group_weighted():
    assert float(metrics.average_accuracy(LOGITS, Y)) == pytest.approx(5 / 8)
    # weights 1, 1, 2, 0 over groups with accuracies 1/2, 1, 2/3, 0: (1/2 + 1 + 4/3) / 4 = 17/24
    w = np.array([1.0, 1.0, 2.0, 0.0])
    got = metrics.average_accuracy(LOGITS, Y, GROUPS, 4, group_weights=w)
    assert float(got) == pytest.approx(17 / 24, rel=1e-6)
    # an empty group's weight is dropped: groups 0..2 only, weights 1, 1, 2 -> same 17/24
    keep = GROUPS != 3
    w2 = np.array([1.0, 1.0, 2.0, 5.0])
    got2 = metrics.average_accuracy(LOGITS[keep], Y[keep], GROUPS[keep], 4, group_weights=w2)
    assert float(got2) == pytest.approx(17 / 24, rel=1e-6)
    with pytest.raises(GsJaxError):
        metrics.average_accuracy(LOGITS, Y, group_weights=w)


def test_metrics_jit():
    wga = jax.jit(functools.partial(metrics.worst_group_accuracy, n_groups=4))
    assert float(wga(jnp.asarray(LOGITS), jnp.asarray(Y), jnp.asarray(GROUPS))) == 0.0
    ga = jax.jit(metrics.group_accuracies, static_argnames="n_groups")
    np.testing.assert_allclose(ga(LOGITS, Y, GROUPS, n_groups=4), [0.5, 1.0, 2 / 3, 0.0], rtol=1e-6)


def test_binary_entropy_against_direct_formula():
    z = np.linspace(-8, 8, 33)
    p = 1 / (1 + np.exp(-z))
    direct = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    np.testing.assert_allclose(metrics.binary_entropy_from_logits(z.astype(np.float32)), direct, atol=2e-6)
    assert float(metrics.binary_entropy_from_logits(jnp.float32(0.0))) == pytest.approx(math.log(2), rel=1e-6)
    extreme = np.asarray(metrics.binary_entropy_from_logits(jnp.array([-200.0, 200.0])))
    assert np.all(np.isfinite(extreme)) and np.all(extreme < 1e-30)


def test_mean_std_population_ignoring_non_finite():
    # values 0.70, 0.74, 0.78 (+ a NaN and an inf): mean 0.74; population var = (0.04² + 0 + 0.04²)/3
    mean, std = metrics.mean_std([0.70, 0.74, float("nan"), 0.78, float("inf")])
    assert mean == pytest.approx(0.74) and std == pytest.approx(math.sqrt(2 * 0.04**2 / 3))
    assert metrics.mean_std(np.array([0.5])) == (0.5, 0.0)
    m, s = metrics.mean_std([float("nan")])
    assert math.isnan(m) and math.isnan(s)


def test_format_mean_std():
    assert metrics.format_mean_std(0.7489, 0.0121) == "74.9 ± 1.2"
    assert metrics.format_mean_std(0.83244, 0.02011, digits=2) == "83.24 ± 2.01"
    assert metrics.format_mean_std(1.5, 0.25, scale=1, digits=2) == "1.50 ± 0.25"
    assert metrics.format_mean_std(float("nan"), float("nan")) == "N/A"


def test_bad_logits_shape_is_one_line():
    with pytest.raises(GsJaxError) as err:
        metrics.accuracy(np.zeros((2, 2, 2)), np.zeros(2))
    assert "\n" not in str(err.value)
