"""keras.distribution on JAX: under `DataParallel` on 2 host CPU devices
every callback and the LR finder give the same weights and logs as one
device, and the augmentation layers draw per example over the global
batch (the halves on the two devices draw differently).

The probe runs in a subprocess (the device count must be set before JAX
starts) whatever the parent's backend, but only in the JAX run of
tests/run_all.py, so once per CI run.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution on JAX: runs once, in the JAX run",
)

W_RTOL = 1e-5
LOG_RTOL = 1e-6
LR_CASES = ["onecycle", "cyclic", "warmup", "per_epoch", "generic", "newbob"]


@pytest.fixture(scope="module")
def results():
    script = pathlib.Path(__file__).with_name("_data_parallel_probe.py")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["devices"] == 2
    return out


def _flat(weights):
    if weights and isinstance(weights[0], list):
        return np.concatenate([np.asarray(w, np.float64) for w in weights])
    return np.asarray(weights, np.float64)


def _same_weights(single, parallel):
    np.testing.assert_allclose(
        _flat(parallel["w"]), _flat(single["w"]), rtol=W_RTOL, atol=1e-7
    )
    assert np.any(_flat(single["w"]) != 0.0)


def _same_logs(single, parallel):
    assert sorted(parallel) == sorted(single)
    for key in single:
        np.testing.assert_allclose(
            parallel[key], single[key], rtol=LOG_RTOL, err_msg=key
        )


@pytest.mark.parametrize("spe", [1, 4])
@pytest.mark.parametrize("case", LR_CASES)
def test_lr_callbacks_match_one_device(results, case, spe):
    """OneCycleLR (SGD momentum), CyclicLR (Adam beta_1), WarmupDecayLR,
    PerEpochLR with a step shape, the generic driver (LR, beta_1, weight
    decay) and newbob with a step shape: 24 updates, each touching its
    own weights, at steps_per_execution 1 and 4."""
    run = results[case if spe == 1 else f"{case}@{spe}"]
    single, parallel = run["single"], run["parallel"]
    assert single["devices"] == 1 and parallel["devices"] == 2
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    if case == "newbob":
        assert parallel["logs"]["learning_rate"] == [0.1, 0.1, 0.05]


def test_knob_matches_one_device(results):
    single, parallel = results["knob"]["single"], results["knob"]["parallel"]
    assert parallel["devices"] == 2
    _same_weights(single, parallel)
    lrs = np.repeat([0.1, 0.2, 0.3], 8)
    np.testing.assert_allclose(
        parallel["w"], -0.5 * np.repeat(lrs, 2), rtol=1e-6
    )


def test_dropout_schedule_on_stock_dropout(results):
    single = results["dropout"]["single"]
    parallel = results["dropout"]["parallel"]
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    logs = parallel["logs"]
    assert logs["dropout_rate"] == [0.5, 0.0, 0.25]
    np.testing.assert_allclose(
        logs["drop_zero_frac"], [0.5, 0.0, 0.25], atol=0.01
    )


def test_clipping_acts_on_the_aggregated_gradient(results):
    """Update norm per step equals one device's (and the threshold)."""
    single = results["clip"]["single"]
    parallel = results["clip"]["parallel"]
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    np.testing.assert_allclose(
        parallel["logs"]["update_norm"],
        [10.0, 1000 * np.sqrt(8), 5.0],
        rtol=1e-3,
    )


def test_lr_finder_matches_one_device(results):
    single = results["finder"]["single"]
    parallel = results["finder"]["parallel"]
    assert single["restored"] and parallel["restored"]
    assert len(parallel["losses"]) == 16
    np.testing.assert_allclose(
        parallel["losses"], single["losses"], rtol=LOG_RTOL
    )
    np.testing.assert_allclose(parallel["lrs"], single["lrs"], rtol=1e-12)
    _same_weights(single, parallel)


@pytest.mark.parametrize("name", ["cutout", "mixup", "cutmix", "specaugment"])
def test_augmentation_draws_per_example_over_the_global_batch(results, name):
    """Both halves of every global batch hold the same 8 examples and lie
    on different devices; they are augmented differently, and exactly as
    on one device."""
    single = results["augment"]["single"]
    parallel = results["augment"]["parallel"]
    assert single["batch_devices"] == [1]
    assert parallel["batch_devices"] == [2]
    assert min(parallel[name]["halves_differ"]) > 0.01
    assert min(parallel[name]["vs_orig"]) > 1e-3  # changed the inputs
    _same_logs(single[name], parallel[name])


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_fit_with_mixed_targets(results, name):
    """Model output = its mixed input, target = input: the loss is 0 only
    if `mix_targets` mixes the targets exactly like the inputs."""
    for run in ("single", "parallel"):
        logs = results["augment"][run][name]
        assert max(logs["loss"]) < 1e-10, run
        assert min(logs["vs_orig"]) > 1e-3, run


@pytest.mark.parametrize("case", ["gradient_controls", "gradient_controls@3"])
def test_gradient_controls_match_one_device(results, case):
    """Accumulation schedule (10 micro-batches an epoch at factors 2 and 3:
    5 + 4 updates) and seeded noise: the same weights as one device."""
    single, parallel = results[case]["single"], results[case]["parallel"]
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    assert parallel["logs"]["iterations"] == [9.0]
    assert parallel["logs"]["gradient_accumulation"] == [2.0, 3.0]


@pytest.mark.parametrize("case", ["fine_tuning", "fine_tuning@3"])
def test_fine_tuning_matches_one_device(results, case):
    """Gradual unfreezing with layer-wise factors (AdamW, a BatchNormalization
    layer frozen, then trained): the same weights as one device."""
    single, parallel = results[case]["single"], results[case]["parallel"]
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    assert parallel["logs"]["lr_multiplier:bn"] == [0.0, 0.0, 0.25]


@pytest.mark.parametrize("case", ["averaging", "averaging@2"])
def test_weight_averaging_matches_one_device(results, case):
    """WeightEMA (validation on the average) and SWA (annealed LR, the
    BatchNormalization statistics recomputed over the global batches): the
    same weights and logs as one device."""
    single, parallel = results[case]["single"], results[case]["parallel"]
    _same_weights(single, parallel)
    _same_logs(single["logs"], parallel["logs"])
    assert parallel["logs"]["swa_n_models"] == [0.0, 1.0, 2.0]
