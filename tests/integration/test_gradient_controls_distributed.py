"""Gradient accumulation schedules and gradient noise under MirroredStrategy
(2 replicas): the same weights as one device, and replicas bit-identical
(one noise draw per update, the same on every replica)."""

import json
import pathlib

import numpy as np
import pytest

from tests.helpers import run_script


@pytest.fixture(scope="module")
def results():
    script = pathlib.Path(__file__).with_name("_gradient_controls_probe.py")
    proc = run_script([str(script)], "tensorflow")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


CASES = [
    "accumulation-1",
    "noise-1",
    "both-1",
    "fine_tuning-1",
    "averaging-1",
]


@pytest.mark.tf_only
@pytest.mark.parametrize("case", CASES + ["noise_unseeded-1"])
def test_replicas_are_bit_identical(results, case):
    mirrored = results[case]["mirrored"]
    assert mirrored["n"] == 2
    for per_replica in mirrored["replicas"]:
        assert len(per_replica) == 2
        assert per_replica[0] == per_replica[1]


@pytest.mark.tf_only
@pytest.mark.parametrize("case", CASES)
def test_mirrored_matches_one_device(results, case):
    single, mirrored = results[case]["single"], results[case]["mirrored"]
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-5, atol=1e-6)
    assert mirrored["iterations"] == single["iterations"]
    assert mirrored["logs"].keys() == single["logs"].keys()
    for key, values in single["logs"].items():  # val_loss: float sums
        np.testing.assert_allclose(mirrored["logs"][key], values, rtol=1e-6)


@pytest.mark.tf_only
@pytest.mark.parametrize("case", ["accumulation-1"])
def test_accumulation_equals_bigger_batches(results, case):
    """Factors 2, 4, 5 at batch 8: batches of 16, then 32, then 40, 40, 16
    (the leftover of the last epoch)."""
    reference = results["reference"]
    for run in ("single", "mirrored"):
        np.testing.assert_allclose(
            results[case][run]["w"], reference["w"], rtol=1e-5, atol=1e-6
        )
        assert results[case][run]["iterations"] == 6 + 3 + 3
    assert results[case]["single"]["logs"]["gradient_accumulation"] == [
        2.0,
        4.0,
        5.0,
    ]


@pytest.mark.tf_only
def test_fine_tuning_logs(results):
    logs = results["fine_tuning-1"]["single"]["logs"]
    assert logs["lr_multiplier:a"] == [0.0, 0.0, 0.5]
    assert logs["lr_multiplier:b"] == [0.0, 0.25, 0.25]
    assert logs["lr_multiplier:head"] == [1.0, 1.0, 0.0]


@pytest.mark.tf_only
def test_weight_averaging_logs(results):
    logs = results["averaging-1"]["single"]["logs"]
    assert logs["swa_n_models"] == [0, 1, 2]
    assert len(logs["ema_decay"]) == 3 and "val_loss" in logs


@pytest.mark.tf_only
def test_swa_recomputes_batch_norm_under_mirrored(results):
    """The pass over the training data sees the global batches: the
    statistics equal a direct computation, the same on both replicas."""
    out = results["swa_batch_norm"]
    assert out["mean_error"] < 1e-5 and out["var_error"] < 1e-5, out
    assert out["replicas_equal"]
