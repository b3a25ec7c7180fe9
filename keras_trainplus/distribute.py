"""Multi-worker training helpers (TensorFlow backend).

* `fix_multi_worker_fit()`: makes stock `model.fit` work under
  `tf.distribute.MultiWorkerMirroredStrategy` on Keras 3.15 / TF 2.21,
  where it fails with two upstream bugs (see the function).
* `launch_local_workers(...)`: starts N worker processes on this machine
  with `TF_CONFIG` set per process (free localhost ports), for tests, the
  docs and trying multi-worker code on a laptop.
* `is_chief()`: the one process that writes files.

Multi-worker rules the package follows (and user callbacks should too):
every worker runs every callback and applies identical decisions (the logs
Keras hands to callbacks are already all-reduced, so decisions agree); a
variable is assigned on all workers (assigning only on the chief silently
desynchronises the workers); only the chief writes files (state files,
plots, logs), so workers never race on a path.
"""

import json
import os
import socket
import subprocess
import sys

from keras_trainplus import _cluster
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v

__all__ = [
    "fix_multi_worker_fit",
    "free_ports",
    "is_chief",
    "launch_local_workers",
]


def fix_multi_worker_fit():
    """Makes `model.fit` work under `MultiWorkerMirroredStrategy`.

    Stock Keras 3.15 `fit()` fails there on TF 2.21 (measured): the symbolic
    build averages a multi-worker batch with `strategy.reduce`
    ("Attempt to convert a value (PerReplica...) to a Tensor"), and scalar
    logs are reduced along axis 0 ("Invalid reduction dimension 0 for input
    with 0 dimensions", tensorflow/tensorflow#72388). This installs two
    minimal module-level fixes in Keras's TensorFlow trainer that only act
    under multi-worker collective strategies. Call it once per process,
    before `fit`. It is a no-op on the JAX and torch backends. Remove the
    call once upstream fixes land.

    Returns:
        True when the fixes are active (TF backend).

    Example:

    ```python
    keras_trainplus.distribute.fix_multi_worker_fit()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = build_and_compile()
    model.fit(dataset, epochs=3, callbacks=[...])
    ```

    Raises:
        RuntimeError: if this Keras version lacks the internals the fixes
            rely on (they are version-checked).
    """
    return internals.multi_worker.patch_multi_worker_fit()


def is_chief():
    """True for the one process that writes files (worker 0 or the chief
    task under TF_CONFIG; JAX process 0; torch rank 0; always True when
    training in one process)."""
    return _cluster.is_chief()


def free_ports(count):
    """`count` distinct free TCP ports on localhost.

    Raises:
        ValueError: if `count` is not an integer >= 0.
    """
    count = v.integer("count", count, minimum=0)
    socks, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def launch_local_workers(
    command, num_workers=2, env=None, timeout=600, cwd=None
):
    """Runs `command` as `num_workers` local workers of one TF cluster.

    Each process gets ``TF_CONFIG = {"cluster": {"worker": [...]}, "task":
    {"type": "worker", "index": i}}`` with free localhost ports (worker 0
    is the chief) and ``KERAS_BACKEND=tensorflow``. Blocks until all exit.

    Args:
        command: list of strings, e.g. ``[sys.executable, "train.py"]``,
            or a path to a Python script.
        num_workers: int >= 1. Defaults to 2.
        env: optional dict of extra environment variables.
        timeout: seconds before the workers are killed (None: no
            limit). Defaults to 600.
        cwd: working directory.

    Returns:
        A list (one per worker, by index) of
        `subprocess.CompletedProcess` with `returncode` and `stdout`
        (stderr merged in).

    Example:

    ```python
    results = keras_trainplus.distribute.launch_local_workers(
        ["python", "examples/multi_worker.py", "--fast"], num_workers=2)
    assert all(r.returncode == 0 for r in results)
    ```

    Raises:
        ValueError: for a bad `command`, `num_workers`, `env`, `timeout`
            or `cwd`.
    """
    command, num_workers, env, timeout, cwd = _check_launch(
        command, num_workers, env, timeout, cwd
    )
    workers = [f"localhost:{p}" for p in free_ports(num_workers)]
    procs = [
        _start_worker(command, workers, index, env, cwd)
        for index in range(num_workers)
    ]
    return _collect(procs, timeout)


def _start_worker(command, workers, index, env, cwd):
    """Starts worker `index` of the cluster `workers` (host:port list)."""
    penv = dict(os.environ)
    penv.update(env or {})
    penv["KERAS_BACKEND"] = "tensorflow"
    penv["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
    )
    return subprocess.Popen(
        [os.fspath(c) for c in command],
        env=penv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _check_launch(command, num_workers, env, timeout, cwd):
    expected = "a script path or a non-empty list of strings"
    if isinstance(command, (str, os.PathLike)):
        command = [sys.executable, v.path("command", command)]
    elif (
        isinstance(command, (list, tuple))
        and command
        and all(isinstance(c, (str, os.PathLike)) for c in command)
    ):
        command = list(command)
    else:
        v.fail_type("command", command, expected)
    num_workers = v.integer("num_workers", num_workers, minimum=1)
    if env is not None and not (
        isinstance(env, dict)
        and all(
            isinstance(k, str) and isinstance(x, str) for k, x in env.items()
        )
    ):
        v.fail_type("env", env, "a dict of str -> str or None")
    timeout = v.real(
        "timeout", timeout, minimum=0, min_inclusive=False, allow_none=True
    )
    cwd = v.path("cwd", cwd, allow_none=True)
    if cwd is not None and not os.path.isdir(cwd):
        v.fail("cwd", cwd, "an existing directory or None")
    return command, num_workers, env, timeout, cwd


def _collect(procs, timeout):
    """Waits for every worker (all are killed when one times out)."""
    results = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            out, _ = proc.communicate()
            out = (out or "") + f"\n<killed after {timeout} s>"
        results.append(
            subprocess.CompletedProcess(proc.args, proc.returncode, out)
        )
    return results
