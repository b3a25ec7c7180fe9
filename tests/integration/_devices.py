"""Two devices for a distributed probe, set up before the backend starts
(import this first): ``"mirrored"`` gives TensorFlow 2 logical CPUs (for
`MirroredStrategy`), anything else JAX 2 host CPU devices (for
`keras.distribution.DataParallel`). Returns the backend module."""

import os


def two_devices(mode):
    if mode == "mirrored":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        return tf
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_force_host_platform_device_count=2"
    )
    os.environ["KERAS_BACKEND"] = "jax"
    import jax

    return jax
