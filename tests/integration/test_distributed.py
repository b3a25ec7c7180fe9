"""tf.distribute: under MirroredStrategy (2 replicas) the compiled steps use
the same learning rates and momenta as on one device, and knobs created in
the strategy scope are mirrored and updated on every replica."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from helpers import simulate_adam
from helpers import simulate_sgd

from keras_trainplus import schedules as S


@pytest.fixture(scope="module")
def results():
    script = pathlib.Path(__file__).with_name("_mirrored_probe.py")
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def _pairs(sequence):
    # Global batch 2: update k touches weights 2k, 2k+1 with gradient 1/2.
    return np.repeat(sequence, 2)


@pytest.mark.tf_only
@pytest.mark.parametrize("case", ["sgd", "adam"])
def test_mirrored_matches_single_device(results, case):
    single, mirrored = results[case]["single"], results[case]["mirrored"]
    assert mirrored["n"] == 2 and single["n"] == 1
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-6, atol=1e-9)
    assert mirrored["logs"] == single["logs"]
    n = len(single["w"]) // 2
    if case == "sgd":
        lr = S.OneCycle(0.1, n, pct_start=0.4)
        mom = S.OneCycle.momentum(0.85, 0.95, n, pct_start=0.4)
        lrs = np.array([lr(i) for i in range(n)])
        moms = np.array([mom(i) for i in range(n)])
        # Each update sees a 2-hot gradient of 1/2: same as two one-hot
        # probes at half the learning rate.
        expected = _pairs(simulate_sgd(lrs * 0.5, moms))
    else:
        lr = S.Cyclical(0.001, 0.01, 5, 3, mode="triangular2")
        mom = S.Cyclical(0.9, 0.8, 5, 3, mode="triangular2")
        lrs = np.array([lr(i) for i in range(n)])
        moms = np.array([mom(i) for i in range(n)])
        expected = _pairs(simulate_adam(lrs, moms, epsilon=2e-7))
    np.testing.assert_allclose(mirrored["w"], expected, rtol=5e-5)


@pytest.mark.tf_only
def test_knob_in_strategy_scope_is_mirrored(results):
    single, mirrored = results["knob"]["single"], results["knob"]["mirrored"]
    assert len(mirrored["replicas"]) == 2
    lrs = np.repeat([0.1, 0.2, 0.3], len(single["w"]) // 3)
    np.testing.assert_allclose(single["w"], -0.5 * lrs, rtol=1e-6)
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-6)


@pytest.mark.tf_only
def test_newbob_with_step_shape_under_mirrored(results):
    single = results["newbob"]["single"]
    mirrored = results["newbob"]["mirrored"]
    assert mirrored["logs"]["learning_rate"] == [0.1, 0.1, 0.05]
    assert mirrored["logs"] == single["logs"]
    shape = np.array([S.Linear(0.5, 1.0, 4)(i) for i in range(24)])
    lrs = np.repeat([0.1, 0.1, 0.05], 8) * shape
    np.testing.assert_allclose(
        mirrored["w"], -0.5 * np.repeat(lrs, 2), rtol=1e-6
    )
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-6)


@pytest.mark.tf_only
def test_dropout_schedule_on_stock_dropout_under_mirrored(results):
    for run in ("single", "mirrored"):
        logs = results["dropout"][run]["logs"]
        np.testing.assert_allclose(
            logs["zero_frac"], [0.5, 0.0, 0.25], atol=0.01
        )
        assert logs["dropout_rate"] == [0.5, 0.0, 0.25]
    assert results["dropout"]["mirrored"]["n"] == 2


@pytest.mark.tf_only
def test_clipping_under_mirrored_equals_one_device(results):
    """Keras's own clipping gives 2x the threshold on 2 replicas; ours clips
    the aggregated gradient."""
    single = results["clip"]["single"]["logs"]["update_norm"]
    mirrored = results["clip"]["mirrored"]["logs"]["update_norm"]
    # rtol 1e-3: after the unclipped epoch the weights are ~2e4, where
    # float32 resolves steps of ~2e-3 (still far from 2x the threshold).
    np.testing.assert_allclose(
        single, [10.0, 1000 * np.sqrt(8), 5.0], rtol=1e-3
    )
    np.testing.assert_allclose(mirrored, single, rtol=1e-3)


@pytest.mark.tf_only
def test_lr_finder_under_mirrored(results):
    single = results["finder"]["single"]
    mirrored = results["finder"]["mirrored"]
    assert mirrored["n"] == 2
    assert single["restored"] and mirrored["restored"]
    assert len(mirrored["losses"]) == 16
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["lrs"], single["lrs"], rtol=1e-12)


@pytest.mark.tf_only
def test_augmentation_under_mirrored(results):
    single, mirrored = (
        results["augment"]["single"],
        results["augment"]["mirrored"],
    )
    assert mirrored["n"] == 2
    for name in ("cutout", "mixup", "cutmix", "specaugment"):
        # Identical data on both replicas, different draws (Keras's own
        # layers draw the same numbers on every replica).
        assert mirrored[name + "_replicas_differ"], name
        assert mirrored[name + "_changed"] and single[name + "_changed"]
    for name in ("mixup", "cutmix"):
        for run in (single, mirrored):
            assert run[name + "_fit_loss"] < 1e-10, name
            assert run[name + "_fit_vs_orig"] > 1e-3, name


@pytest.mark.tf_only
def test_mirrored_with_steps_per_execution_raises_clearly(results):
    single, mirrored = (
        results["spe_guard"]["single"],
        results["spe_guard"]["mirrored"],
    )
    for name in ("onecycle", "newbob", "finder"):
        assert single[name] == "ok", single[name]
        assert "keras/issues/19246" in mirrored[name], mirrored[name]
        assert "steps_per_execution=4" in mirrored[name]


@pytest.mark.tf_only
@pytest.mark.parametrize("case", ["warmup", "per_epoch", "generic"])
def test_every_lr_preset_matches_single_device(results, case):
    """WarmupDecayLR, PerEpochLR (with a per-step shape) and the generic
    driver with LR, beta_1 and weight decay: weights after 24 updates and
    logged values equal on 2 replicas and on one device."""
    single, mirrored = results[case]["single"], results[case]["mirrored"]
    assert mirrored["n"] == 2
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-6, atol=1e-9)
    assert mirrored["logs"] == single["logs"]
    assert any(abs(w) > 1e-6 for w in single["w"])


@pytest.mark.tf_only
def test_scheduled_dropout_layer_under_mirrored(results):
    single = results["scheduled_dropout"]["single"]["logs"]["zero_frac"]
    mirrored = results["scheduled_dropout"]["mirrored"]["logs"]["zero_frac"]
    np.testing.assert_allclose(single, [0.25, 0.5, 0.0], atol=0.01)
    np.testing.assert_allclose(mirrored, [0.25, 0.5, 0.0], atol=0.01)
