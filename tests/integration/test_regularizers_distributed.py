"""Weight noise and `LengthBatcher` under distribution train exactly as on
one device (`MirroredStrategy` with 2 replicas; JAX `DataParallel` over 2
devices), and `StochasticDepth` draws per example on every replica (the
replicas' decisions are independent). Each probe runs in a subprocess,
once per CI run (in the run of its backend)."""

import keras
import numpy as np
import pytest

from tests.helpers import probe_result

BACKEND = keras.backend.backend()
PROBE = "tests/integration/_regularizer_probe.py"


def _results(mode, backend):
    return probe_result([PROBE, mode], backend)


def _same_training(out):
    assert out["replicas"] == 2
    for key in ("noise", "batcher"):
        for single, distributed in zip(
            out["single"][key], out["distributed"][key]
        ):
            np.testing.assert_allclose(
                distributed, single, rtol=1e-5, atol=1e-6, err_msg=key
            )


@pytest.mark.tf_only
def test_mirrored_strategy():
    out = _results("mirrored", "tensorflow")
    _same_training(out)
    first, second = (np.asarray(r) == 0 for r in out["drops"])
    n = first.size
    sigma = np.sqrt(0.25 / n)
    for dropped in (first, second):
        assert abs(dropped.mean() - 0.5) < 4 * sigma
    # independent replicas agree on about half the decisions, not all
    assert abs((first == second).mean() - 0.5) < 4 * sigma


@pytest.mark.skipif(BACKEND != "jax", reason="runs once, in the JAX run")
def test_data_parallel():
    _same_training(_results("data_parallel", "jax"))
