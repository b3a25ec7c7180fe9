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
