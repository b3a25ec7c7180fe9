"""Test helpers: probe models that reveal, through their final weights, the
hyperparameters every compiled update actually used."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()
DATA = pathlib.Path(__file__).parent / "data"
ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def run_script(args, backend, timeout=600):
    """Runs `python *args` from the repository root on `backend`."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def probe_result(args, backend):
    """The JSON of the last ``RESULT `` line a probe script printed."""
    proc = run_script(args, backend)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def spe_values():
    """steps_per_execution values to test (torch supports only 1)."""
    return (1,) if BACKEND == "torch" else (1, 8)


def jit_values():
    return (False, True) if BACKEND == "tensorflow" else ("auto",)


def _linear_loss(y_true, y_pred):
    # d loss / d y_pred == 1 for every sample, whatever the weights.
    return ops.sum(y_pred, axis=-1)


def probe_model(n, optimizer, steps_per_execution=1, jit_compile="auto"):
    """`y = x @ w` with `n` weights; with one-hot inputs update i only
    touches weight i, with gradient exactly 1."""
    inputs = keras.Input((n,))
    outputs = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(
        inputs
    )
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer,
        loss=_linear_loss,
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def probe_data(n):
    return np.eye(n, dtype="float32"), np.zeros((n, 1), "float32")


def fit_probe(model, n, callbacks, epochs=1, **kwargs):
    x, y = probe_data(n)
    kwargs.setdefault("steps_per_epoch", n // epochs if epochs > 1 else None)
    return model.fit(
        x,
        y,
        batch_size=1,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
        **kwargs,
    )


def kernel(model):
    return np.asarray(ops.convert_to_numpy(model.layers[-1].kernel))[:, 0]


def sgd_applied_lrs(model):
    """Plain SGD on the probe: w_i = -lr_i."""
    return -kernel(model).astype(np.float64)


def simulate_sgd(lrs, momenta, nesterov=False):
    """Keras SGD (velocity form) on the probe, float64."""
    n = len(lrs)
    w, vel = np.zeros(n), np.zeros(n)
    for i in range(n):
        g = np.zeros(n)
        g[i] = 1.0
        vel = momenta[i] * vel - lrs[i] * g
        w = w + (momenta[i] * vel - lrs[i] * g if nesterov else vel)
    return w


def simulate_adam(lrs, beta1s, beta_2=0.999, epsilon=1e-7):
    """Keras Adam on the probe, float64 (beta_2 rounded as Keras stores
    it, in float32)."""
    n = len(lrs)
    b2 = float(np.float32(beta_2))
    w, m, v = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        g = np.zeros(n)
        g[i] = 1.0
        t = i + 1
        b1 = float(np.float32(beta1s[i]))
        alpha = lrs[i] * np.sqrt(1 - b2**t) / (1 - b1**t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        w = w - alpha * m / (np.sqrt(v) + epsilon)
    return w


def reference_cases():
    """CLR/1cycle reference cases: the copy in tests/data, plus any further
    `clr_*.json` files in ../shared/reference (deduplicated by id)."""
    files = sorted(DATA.glob("clr_*.json"))
    if (SHARED / "reference").is_dir():
        files += sorted((SHARED / "reference").glob("clr_*.json"))
    cases = {}
    for path in files:
        for case in json.loads(path.read_text())["cases"]:
            cases.setdefault(case["id"], case)
    return list(cases.values())


def relative_error(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.maximum(np.abs(expected), 1e-300)
    return float(np.max(np.abs(actual - expected) / scale))


def graph_rtol():
    """Tolerance for values computed in-graph: float64 backends are exact to
    float32 LR storage; JAX without x64 computes schedules in float32 (its
    XLA-CPU transcendentals are accurate to a few 1e-6)."""
    from keras_trainplus.schedules import _math

    return 1e-6 if _math.float_dtype() == "float64" else 5e-6


class CountTraces(keras.layers.Layer):
    """Identity whose Python `call` runs once per trace."""

    traces = 0

    def call(self, inputs):
        CountTraces.traces += 1
        return inputs
