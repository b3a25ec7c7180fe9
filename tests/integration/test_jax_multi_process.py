"""A real 2-process `fit` on JAX (CPU, Gloo collectives): each process
joins with `keras.distribution.initialize` on a localhost coordinator and
trains under `DataParallel` with newbob, a per-step warmup shape, dropout
scheduling, clip switching and a Cutout layer. Both processes end with
bit-identical weights and decisions, equal to one process on the whole
global batch, and only process 0 writes its state file.

Runs once per CI run: in the JAX run of tests/run_all.py.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_trainplus as ktp

HERE = pathlib.Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="JAX multi-process: runs once, in the JAX run",
    ),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("jax_processes")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CONFIG", "XLA_FLAGS")
    }
    env.update(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    coordinator = f"localhost:{ktp.distribute.free_ports(1)[0]}"
    script = str(HERE / "_jax_process_worker.py")
    # Two processes of one cluster, and a one-process reference.
    commands = [
        [sys.executable, script, str(out), str(i), "2", coordinator]
        for i in range(2)
    ]
    commands.append([sys.executable, script, str(out / "single"), "0", "1"])
    (out / "single").mkdir()
    procs = [
        subprocess.Popen(
            c,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for c in commands
    ]
    parsed = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=300)
            lines = [
                ln for ln in stdout.splitlines() if ln.startswith("RESULT ")
            ]
            assert proc.returncode == 0 and lines, stdout[-4000:]
            parsed.append(json.loads(lines[-1][len("RESULT ") :]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return out, parsed


def test_two_processes_agree(processes):
    _, (chief, other, _) = processes
    assert chief["index"] == 0 and other["index"] == 1
    assert chief["processes"] == other["processes"] == 2
    assert chief["devices"] == other["devices"] == 2
    assert chief["chief"] and not other["chief"]
    # Identical weights, bit for bit, and identical scheduled values.
    assert chief["digest"] == other["digest"]
    assert chief["history"] == other["history"]
    hist = chief["history"]
    assert hist["dropout_rate"] == [0.0, 0.3, 0.3]
    assert hist["gradient_clip"][:2] == [0.5, 0.5]
    assert hist["gradient_clip"][2] == float("inf")
    # newbob decided from the global loss: decays every epoch.
    assert hist["learning_rate"][2] == pytest.approx(
        hist["learning_rate"][1] / 2
    )


def test_two_processes_match_one_process(processes):
    _, (chief, _, single) = processes
    assert single["processes"] == 1
    np.testing.assert_allclose(
        chief["weights"], single["weights"], rtol=1e-5, atol=1e-7
    )
    assert sorted(chief["history"]) == sorted(single["history"])
    for key, values in single["history"].items():
        np.testing.assert_allclose(
            chief["history"][key], values, rtol=1e-6, err_msg=key
        )


def test_only_process_0_writes_the_state_file(processes):
    out, (chief, _, _) = processes
    assert (out / "newbob_0.json").exists()
    assert not (out / "newbob_1.json").exists()
    state = ktp.callbacks.NewbobLRControl.read_state_file(
        str(out / "newbob_0.json")
    )
    assert sorted(state) == [0, 1, 2]
    for epoch in range(3):
        assert state[epoch]["learning_rate"] == pytest.approx(
            chief["history"]["learning_rate"][epoch], rel=1e-7
        )
