"""Every example runs in a fast mode, and every benchmark script starts
(subprocesses, TensorFlow backend)."""

import numpy as np
import pytest
from helpers import ROOT
from helpers import run_script as _run


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
            "gradient_controls.py",
            ["--png", "{tmp}/gradient_controls.png"],
            "worst val_acc",
            ["gradient_controls.png"],
        ),
        (
            "fine_tuning.py",
            ["--png", "{tmp}/fine_tuning.png"],
            "final accuracy",
            ["fine_tuning.png"],
        ),
        (
            "weight_averaging.py",
            ["--png", "{tmp}/weight_averaging.png"],
            "final accuracy",
            ["weight_averaging.png"],
        ),
        (
            "training_monitor.py",
            ["--out", "{tmp}"],
            "vanishing gradient in layer 'hidden_0'",
            [
                "training_monitor_bad.png",
                "training_monitor_fixed.png",
                "training_monitor_side_by_side.png",
            ],
        ),
        (
            "length_curriculum.py",
            ["--png", "{tmp}/length_curriculum.png"],
            "laplace:.400 + curriculum",
            ["length_curriculum.png"],
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
    and parse its arguments (full runs: BENCHMARKS.md, by hand). The
    `--help` runs share one interpreter (one TensorFlow import)."""
    out = _run(
        ["benchmarks/schedule_cost.py", "--repeats", "1", "--steps", "20"],
        "tensorflow",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OneCycle lr+momentum" in out.stdout
    scripts = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "benchmarks").glob("*.py"))
        if p.name != "schedule_cost.py"
    ]
    probe = (
        "import runpy, sys\n"
        "for script in sys.argv[1:]:\n"
        "    sys.argv = [script, '--help']\n"
        "    try:\n"
        "        runpy.run_path(script, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (script, e.code)\n"
        "    print('ok', script)\n"
    )
    out = _run(["-c", probe, *scripts], "tensorflow")
    assert out.returncode == 0, out.stderr[-3000:]
    for script in scripts:
        assert f"ok {script}" in out.stdout, (script, out.stdout[-2000:])


@pytest.mark.tf_only
def test_multi_worker_and_tuner_examples_fast_mode():
    out = _run(["examples/multi_worker.py", "--fast"], "tensorflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "workers agree (identical weights): True" in out.stdout
    out = _run(["examples/tuner_search.py", "--fast"], "tensorflow")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "best:" in out.stdout and "searching max_lr" in out.stdout
