"""`TrainingMonitor` under distribution records what one device records:
`MirroredStrategy` (2 replicas, the per-replica activation parts combined
exactly) and JAX's `keras.distribution.DataParallel` (2 devices, at
`steps_per_execution` 1 and 4). Each probe runs in a subprocess, once per
CI run (in the run of its backend)."""

import keras
import numpy as np
import pytest

from tests.helpers import probe_result

BACKEND = keras.backend.backend()
PROBE = "tests/integration/_monitor_probe.py"


def _results(mode, backend):
    return probe_result([PROBE, mode], backend)


def _same(single, distributed):
    assert distributed["steps"] == single["steps"] == [0, 2, 4, 6]
    assert distributed["names"] == single["names"] == ["conv", "fc", "head"]
    assert set(single["history"]) == {
        "grad_norm", "weight_norm", "update_ratio", "clipped",
        "activation_mean", "activation_std", "dead_fraction",
    }  # fmt: skip
    for stat, values in single["history"].items():
        np.testing.assert_allclose(
            distributed["history"][stat], values, rtol=2e-5, atol=1e-6,
            err_msg=stat,
        )  # fmt: skip
    assert 0 < np.mean(single["history"]["clipped"]) <= 1


@pytest.mark.tf_only
def test_mirrored_strategy_records_what_one_device_records():
    out = _results("mirrored", "tensorflow")
    assert out["replicas"] == 2
    _same(out["single"], out["distributed"])


@pytest.mark.skipif(BACKEND != "jax", reason="runs once, in the JAX run")
def test_data_parallel_records_what_one_device_records():
    out = _results("data_parallel", "jax")
    assert out["replicas"] == 2
    _same(out["single"], out["distributed"])
    _same(out["single"], out["single_spe"])
    _same(out["single"], out["distributed_spe"])
