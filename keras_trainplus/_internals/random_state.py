"""Random-generator internals: snapshot and restore every generator
training can consume (the LR finder restores them exactly)."""

import keras

from keras_trainplus._internals.version import hook


@hook("3.15")
def snapshot_rng():
    """The states of every random generator training can consume: Python's
    `random`, NumPy's global generator (Keras shuffles arrays with it on JAX
    and torch), torch's, Keras's global seed generator (unseeded random
    ops), and TensorFlow's per-op seed counter (new tf.data shuffles draw
    their seeds from it)."""
    import random

    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state()}
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        state["torch"] = torch.random.get_rng_state()
    if backend == "tensorflow":
        from tensorflow.python.eager import context

        rng = getattr(context.context(), "_rng", None)
        state["tf_op_seeds"] = None if rng is None else rng.getstate()
    generator = _keras_global_seed_generator()
    if generator is not None:
        state["keras_global"] = np.array(
            keras.ops.convert_to_numpy(generator.state)
        )
    return state


@hook("3.15")
def restore_rng(state):
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.random.set_rng_state(state["torch"])
    if state.get("tf_op_seeds") is not None:
        from tensorflow.python.eager import context

        rng = getattr(context.context(), "_rng", None)
        if rng is not None:
            rng.setstate(state["tf_op_seeds"])
    generator = _keras_global_seed_generator()
    if generator is not None and "keras_global" in state:
        generator.state.assign(state["keras_global"])


def _keras_global_seed_generator():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - layout changed
        return None
    return global_state.get_global_attribute("global_seed_generator")


class _StatelessSeed(keras.random.SeedGenerator):
    """A seed whose `next()` always gives the same two keys. Keras's random
    ops call `next()` on a `SeedGenerator` to get their seed; skipping
    `SeedGenerator.__init__` (which creates a state variable) leaves no
    generator state to carry through the JAX train state or to keep in
    sync across replicas."""

    def __init__(self, value):
        self.value = value

    def next(self, ordered=True):
        return self.value


@hook("3.15")
def stateless_seed(keys):
    """A `seed=` for `keras.random` ops from two int32 keys (tensors): the
    same numbers every time, on every replica."""
    dtype = "uint32" if keras.backend.backend() == "jax" else "int32"
    return _StatelessSeed(keras.ops.cast(keras.ops.stack(keys), dtype))
