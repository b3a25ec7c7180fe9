"""`_internals.multi_worker`: the fixes are installed once, on TF only
(the 2-worker run is tests/integration/test_multi_worker.py)."""

import keras

from keras_trainplus._internals import multi_worker


def test_patch_is_idempotent_and_tf_only():
    first = multi_worker.patch_multi_worker_fit()
    assert first == (keras.backend.backend() == "tensorflow")
    assert multi_worker.patch_multi_worker_fit() == first
