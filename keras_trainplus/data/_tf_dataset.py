"""`LengthBatcher.as_tf_dataset`: the same batches as a `tf.data.Dataset`."""

import numpy as np


def tf_dataset(batcher):
    """A `tf.data.Dataset` whose every iteration yields the batches of the
    epoch `batcher` is at (its callback sets it), prefetched."""
    try:
        import tensorflow as tf
    except ImportError as error:  # pragma: no cover - TF is a test dependency
        raise ImportError(
            "`LengthBatcher.as_tf_dataset()` needs TensorFlow; on other "
            "backends pass the batcher itself to `fit`."
        ) from error

    def spec(shape, dtype):
        return tf.TensorSpec(shape=shape, dtype=tf.as_dtype(np.dtype(dtype)))

    x = batcher.x
    inputs = spec((None, None) + tuple(x.feature_shape), x.dtype)
    if batcher.length_input == "lengths":
        inputs = (inputs, spec((None,), "int32"))
    elif batcher.length_input == "mask":
        inputs = (inputs, spec((None, None), "bool"))
    y = batcher.y
    if y.kind is None:
        signature = (inputs,)
    elif y.kind == "per_sequence":
        signature = (inputs, spec((None,) + y.values.shape[1:], y.values.dtype))
    else:
        seqs = y.sequences
        targets = spec((None, None) + tuple(seqs.feature_shape), seqs.dtype)
        signature = (inputs, targets)

    def generate():
        for index in range(len(batcher)):
            yield batcher[index]

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=signature
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
