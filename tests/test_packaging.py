"""Packaging: the public API, lazy TensorFlow import, README/CI agreement,
and smoke runs of the examples and benchmarks so they never rot."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import keras_trainplus as ktp

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, backend, timeout=600):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_public_api():
    assert ktp.__version__
    assert set(ktp.callbacks.__all__) == {
        "CyclicLR",
        "DropoutScheduler",
        "GradientClipScheduler",
        "HyperparameterScheduler",
        "LRFinder",
        "NewbobLRControl",
        "OneCycleLR",
        "PerEpochLR",
        "WarmupDecayLR",
    }
    assert set(ktp.layers.__all__) == {
        "CutMix",
        "Cutout",
        "MixUp",
        "ScheduledDropout",
        "SpecAugment",
        "mix_targets",
    }
    for name in ktp.layers.__all__:
        doc = getattr(ktp.layers, name).__doc__
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


def _png_ok(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("L"))
    # A real plot: a reasonable size and more than one colour.
    return image.size[0] >= 300 and image.size[1] >= 200 and pixels.std() > 5


@pytest.mark.tf_only
@pytest.mark.parametrize(
    "script,args,expect,pngs",
    [
        (
            "quickstart.py",
            ["--png", "{tmp}/quickstart.png"],
            "final val_acc",
            ["quickstart.png"],
        ),
        (
            "lr_finder.py",
            ["--png", "{tmp}/lr_finder.png"],
            "model left exactly as before: True",
            ["lr_finder.png"],
        ),
        (
            "one_cycle_vs_constant.py",
            ["--out", "{tmp}"],
            "epochs to",
            ["one_cycle_schedule.png", "one_cycle_applied.png"],
        ),
        (
            "spec_augment.py",
            ["--png", "{tmp}/spec_augment.png"],
            "SpecAugment on",
            ["spec_augment.png"],
        ),
    ],
)
def test_examples_fast_mode(script, args, expect, pngs, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    out = _run([f"examples/{script}", "--fast", *args], "tensorflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert expect in out.stdout, out.stdout[-2000:]
    for name in pngs:
        assert _png_ok(tmp_path / name), name


@pytest.mark.tf_only
def test_benchmarks_smoke():
    """One benchmark runs for real (tiny); every other script must import
    and parse its arguments (full runs: BENCHMARKS.md, by hand)."""
    out = _run(
        ["benchmarks/schedule_cost.py", "--repeats", "1", "--steps", "20"],
        "tensorflow",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OneCycle lr+momentum" in out.stdout
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name == "schedule_cost.py":
            continue
        out = _run([f"benchmarks/{script.name}", "--help"], "tensorflow")
        assert out.returncode == 0, (script.name, out.stderr[-3000:])
        assert "usage:" in out.stdout, script.name


@pytest.mark.tf_only
def test_multi_worker_and_tuner_examples_fast_mode():
    out = _run(["examples/multi_worker.py", "--fast"], "tensorflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "workers agree (identical weights): True" in out.stdout
    out = _run(["examples/tuner_search.py", "--fast"], "tensorflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "best:" in out.stdout and "searching max_lr" in out.stdout


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
        ktp.schedules,
        ktp.distribute,
        ktp.tuner,
    ):
        for name in module.__all__:
            assert f".{name}`" in text, name
    assert "(no docstring)" not in text
