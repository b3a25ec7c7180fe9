"""Recomputes BatchNormalization statistics for averaged weights (torch's
``torch.optim.swa_utils.update_bn``, in Keras's convention)."""

import keras

from keras_trainplus import _internals as internals


def batch_norm_layers(model):
    """The BatchNormalization layers that update their statistics when
    trained (a frozen one keeps its own, as in Keras)."""
    return [
        layer
        for layer in internals.layers.iter_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
    ]


def update_batch_norm(model, batches, steps=None, verbose=1):
    """One pass over `batches` (``x`` or ``(x, y[, sample_weight])``) in
    training mode; each trainable BatchNormalization layer's moving
    statistics become the plain average over the batches of the batch
    statistics (mean, biased variance), as torch's ``update_bn`` with
    ``momentum=None``. At most `steps` batches. Returns the batches used.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    bar = keras.utils.Progbar(steps, unit_name="batch") if verbose else None
    seen = 0
    try:
        for batch in batches:
            if steps is not None and seen >= steps:
                break
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            for layer in layers:  # average k + 1 = k/(k+1) old + 1/(k+1) new
                layer.momentum = seen / (seen + 1.0)
            model(x, training=True)
            seen += 1
            if bar is not None:
                bar.update(seen)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if bar is not None:
        bar.update(seen, finalize=True)
    return seen
