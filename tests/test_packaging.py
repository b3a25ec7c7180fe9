"""Packaging: the public API, lazy TensorFlow import, README/CI agreement,
the API reference (examples and benchmarks: tests/integration/)."""

import re

import pytest
from helpers import ROOT
from helpers import run_script as _run

import keras_trainplus as ktp


def test_public_api():
    assert ktp.__version__
    assert set(ktp.callbacks.__all__) == {
        "CyclicLR",
        "DiscriminativeLR",
        "DropoutScheduler",
        "GradientAccumulationScheduler",
        "GradientClipScheduler",
        "GradientNoise",
        "GradualUnfreezing",
        "HyperparameterScheduler",
        "LRFinder",
        "NewbobLRControl",
        "OneCycleLR",
        "PerEpochLR",
        "StochasticWeightAveraging",
        "TrainingMonitor",
        "WarmupDecayLR",
        "WeightEMA",
        "WeightNoise",
    }
    assert set(ktp.data.__all__) == {"LengthBatcher"}
    assert set(ktp.layers.__all__) == {
        "CutMix",
        "Cutout",
        "MixUp",
        "ScheduledDropout",
        "SpecAugment",
        "StochasticDepth",
        "stochastic_depth_rates",
        "mix_targets",
    }
    for name in ktp.layers.__all__ + ktp.data.__all__:
        doc = getattr(ktp.layers, name, None) or getattr(ktp.data, name)
        doc = doc.__doc__
        assert "Args:" in doc and "Example" in doc and "Raises:" in doc, name
    for name in ktp.schedules.__all__:
        cls = getattr(ktp.schedules, name)
        assert cls.__doc__ and "Example" in cls.__doc__, name
    for name in ktp.callbacks.__all__:
        doc = getattr(ktp.callbacks, name).__doc__
        assert "Args:" in doc and "Example" in doc and "Raises:" in doc, name


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_tensorflow_is_not_imported_on_other_backends(backend):
    code = (
        "import sys, keras_trainplus as k; "
        "from keras_trainplus import schedules as S, callbacks as C; "
        "C.OneCycleLR(0.1); S.OneCycle(0.1, 10)(3); "
        "print('tensorflow' in sys.modules)"
    )
    out = _run(["-c", code], backend)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(
        r"^python3\.11 -m venv \.venv && .*$", readme, flags=re.M
    )
    assert len(commands) == 2
    demo, tests = commands
    assert "examples/" in demo and "tests/run_all.py" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "[test]" in tests and "grep" in ci and "README.md" in ci


@pytest.mark.tf_only
def test_api_reference_is_current_and_complete():
    """docs/api.md is generated from the docstrings; regenerate it with
    `python docs/generate_api.py` after changing a public symbol."""
    out = _run(["docs/generate_api.py", "--check"], "tensorflow")
    assert out.returncode == 0, (
        "docs/api.md is stale: run python "
        "docs/generate_api.py\n" + out.stderr[-2000:]
    )
    text = (ROOT / "docs" / "api.md").read_text()
    for module in (
        ktp.callbacks,
        ktp.layers,
        ktp.data,
        ktp.schedules,
        ktp.distribute,
        ktp.tuner,
    ):
        for name in module.__all__:
            assert f".{name}`" in text, name
    assert "(no docstring)" not in text
