"""Shared pytest configuration.

`tests/` mirrors the package (`tests/callbacks/...` tests
`keras_trainplus/callbacks/...`); multi-process, subprocess and example
runs live in `tests/integration/`.

The suite runs on whatever `KERAS_BACKEND` selects. Tests marked
`tf_only` (tf.distribute, TF-specific behaviour) are skipped on the other
backends; everything else is backend-agnostic and runs on all three.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The tree mirrors the package; shared helpers live here, at the top.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tf_only: needs the TensorFlow backend (tf.distribute)"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers",
        "one_backend: slow and backend-agnostic (subprocess protocol, "
        "keras-tuner's search loop): runs in the TensorFlow run only",
    )


def pytest_collection_modifyitems(config, items):
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow only (backend: {BACKEND})")
    once = pytest.mark.skip(reason="backend-agnostic: runs with TensorFlow")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)
        elif "one_backend" in item.keywords:
            item.add_marker(once)


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {BACKEND}"


@pytest.fixture(autouse=True)
def _fresh_session():
    # Without `gc.collect()` (free_memory=True costs ~0.4 s per test); a
    # module-scoped fixture below collects once per test module instead.
    keras.backend.clear_session(free_memory=False)
    yield


@pytest.fixture(autouse=True, scope="module")
def _collect_per_module():
    yield
    keras.backend.clear_session()
