"""Registration of public classes for Keras serialization.

Every serializable public class is registered under the fixed package name
``"keras_trainplus"``, so configs and `.keras` files name it
``keras_trainplus>ClassName``.
"""

import keras

PACKAGE = "keras_trainplus"


def register(cls):
    """Class decorator: registers `cls` with `keras.saving`."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def serialize(obj):
    return keras.saving.serialize_keras_object(obj)


def deserialize(config):
    if isinstance(config, dict):
        return keras.saving.deserialize_keras_object(config)
    return config


def serialize_callable(name, fn):
    """Serializes a user callable argument, refusing lambdas and unregistered
    functions with a message that says how to make them serializable.
    Schedules and other Keras-serializable objects are serialized as is."""
    if fn is None:
        return None
    if isinstance(fn, keras.optimizers.schedules.LearningRateSchedule):
        return serialize(fn)  # keras_trainplus and Keras schedules
    registered = keras.saving.get_registered_name(fn)
    fname = getattr(fn, "__name__", None)
    if fname is None or registered == fname or fname == "<lambda>":
        raise ValueError(
            f"`{name}={fn!r}` cannot be serialized: lambdas and unregistered "
            "functions have no config. Decorate the function with "
            "`@keras.saving.register_keras_serializable()`, or use a "
            "keras_trainplus schedule."
        )
    return serialize(fn)
