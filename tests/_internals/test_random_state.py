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


def test_stateless_seed_gives_the_same_numbers_every_time():
    import keras

    from keras_trainplus._internals import random_state

    keys = [keras.ops.convert_to_tensor(3, "int32")] * 2
    a = keras.random.normal((5,), seed=random_state.stateless_seed(keys))
    b = keras.random.normal((5,), seed=random_state.stateless_seed(keys))
    other = [keys[0], keras.ops.convert_to_tensor(4, "int32")]
    c = keras.random.normal((5,), seed=random_state.stateless_seed(other))
    a, b, c = (keras.ops.convert_to_numpy(t) for t in (a, b, c))
    assert (a == b).all() and not (a == c).all()
