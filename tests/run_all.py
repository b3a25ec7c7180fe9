"""Runs the test suite on every backend: TensorFlow (everything), then JAX
and torch (everything not marked `tf_only`).

Usage: python tests/run_all.py [extra pytest args]

Each run uses pytest-xdist with `KTP_WORKERS` processes (default 2, the
CI machine's cores; 0 runs in one process).

Exits non-zero if any run fails, and also if a run collects no tests
(pytest's exit code 5 must not pass silently).
"""

import os
import subprocess
import sys
import time

RUNS = [
    ("tensorflow", []),
    ("jax", ["-m", "not tf_only"]),
    ("torch", ["-m", "not tf_only"]),
]


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    backends = os.environ.get("KTP_BACKENDS")
    runs = [r for r in RUNS if not backends or r[0] in backends.split(",")]
    workers = os.environ.get("KTP_WORKERS", "2")
    parallel = [] if workers == "0" else ["-n", workers]
    failed = []
    for backend, extra in runs:
        env = dict(os.environ, KERAS_BACKEND=backend)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *parallel,
            *extra,
            *argv,
        ]
        print(f"\n=== KERAS_BACKEND={backend}: {' '.join(cmd[2:])}", flush=True)
        start = time.time()
        code = subprocess.call(cmd, cwd=root, env=env)
        print(
            f"=== {backend}: exit code {code} in {time.time() - start:.0f} s",
            flush=True,
        )
        if code == 5:
            print(f"=== {backend}: no tests were collected", flush=True)
        if code != 0:
            failed.append(backend)
    if failed:
        print(f"\nFAILED on: {', '.join(failed)}")
        return 1
    print("\nAll backends passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
