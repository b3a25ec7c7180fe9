"""A real 2-worker `fit` under MultiWorkerMirroredStrategy on localhost
(free ports, TF_CONFIG per process, launched by
`keras_trainplus.distribute.launch_local_workers`), with newbob, a per-step
warmup shape, dropout scheduling, clip switching, unseeded gradient noise,
an accumulation schedule and a Cutout layer: both workers end with
identical weights and identical decisions, and only the
chief writes its state file."""

import json
import pathlib
import sys

import pytest

import keras_trainplus as ktp

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("mwms")
    results = ktp.distribute.launch_local_workers(
        [sys.executable, str(HERE / "_mwms_worker.py"), str(out)],
        num_workers=2,
        env={"CUDA_VISIBLE_DEVICES": ""},
        timeout=480,
    )
    parsed = []
    for r in results:
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        assert r.returncode == 0 and lines, r.stdout[-4000:]
        parsed.append(json.loads(lines[-1][len("RESULT ") :]))
    return out, parsed


@pytest.mark.tf_only
@pytest.mark.slow
def test_two_workers_agree(workers):
    out, (chief, other) = workers
    assert chief["index"] == 0 and other["index"] == 1
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["chief"] and not other["chief"]
    # Identical weights, bit for bit, and identical scheduled values.
    assert chief["digest"] == other["digest"]
    assert chief["history"] == other["history"]
    hist = chief["history"]
    assert hist["dropout_rate"] == [0.0, 0.3, 0.3]
    assert hist["gradient_clip"][:2] == [0.5, 0.5]
    assert hist["gradient_clip"][2] == float("inf")
    assert hist["gradient_accumulation"] == [1.0, 2.0, 2.0]
    assert hist["lr_multiplier:dense"] == [0.0, 0.5, 0.5]
    assert hist["gradient_noise"][0] > hist["gradient_noise"][2] > 0
    # newbob decided from the all-reduced loss: decays after epoch 1.
    assert hist["learning_rate"][2] == pytest.approx(
        hist["learning_rate"][1] / 2
    )


@pytest.mark.tf_only
@pytest.mark.slow
def test_only_the_chief_writes_the_state_file(workers):
    out, (chief, _) = workers
    assert (out / "newbob_0.json").exists()
    assert not (out / "newbob_1.json").exists()
    state = ktp.callbacks.NewbobLRControl.read_state_file(
        str(out / "newbob_0.json")
    )
    hist = chief["history"]
    assert sorted(state) == [0, 1, 2]
    for epoch in range(3):
        assert state[epoch]["learning_rate"] == pytest.approx(
            hist["learning_rate"][epoch], rel=1e-7
        )
        assert state[epoch]["scores"]["loss"] == pytest.approx(
            hist["loss"][epoch], rel=1e-7
        )


def test_launcher_argument_errors():
    with pytest.raises(ValueError, match="num_workers"):
        ktp.distribute.launch_local_workers(["python"], num_workers=0)
    with pytest.raises(ValueError, match="command"):
        ktp.distribute.launch_local_workers([])
    assert len(set(ktp.distribute.free_ports(3))) == 3
