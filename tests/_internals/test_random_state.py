"""`_internals.random_state`: a snapshot restores every generator."""

import random

import keras
import numpy as np

from keras_trainplus._internals import random_state


def draws():
    return (
        random.random(),
        np.random.rand(),
        float(keras.ops.convert_to_numpy(keras.random.uniform(()))),
    )


def test_restore_gives_the_same_draws():
    keras.utils.set_random_seed(3)
    draws()  # Keras creates its global seed generator at the first draw
    state = random_state.snapshot_rng()
    first = draws()
    random_state.restore_rng(state)
    assert draws() == first
