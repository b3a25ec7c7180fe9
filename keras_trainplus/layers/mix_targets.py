"""`mix_targets(model)`: the one extra line that lets MixUp/CutMix inside a
model mix the targets too."""

from keras_trainplus.layers import _mixing


def mix_targets(model):
    """Makes `fit` mix targets and sample weights like the model's mixing
    layers mix the inputs.

    Call once on a model that contains `MixUp` or `CutMix` layers, before
    or after `compile`. In every train step, after the forward pass, the
    targets are mixed with the same partners and weights the layers drew:
    float targets (one-hot, soft labels, regression targets) are
    interpolated exactly like the inputs, sample weights too; integer
    (sparse) labels are handled by mixing the loss,
    ``lam * L(y[i]) + (1 - lam) * L(y[j])`` per example, which needs no
    change to the compiled loss. Training metrics see the original
    targets; `evaluate` and `predict` are unchanged (the layers are
    identity there).

    Works on every backend, with any `steps_per_execution`, under XLA and
    `tf.distribute` (each replica mixes within its own batch). A custom
    `train_step` must compute its loss through `self.compute_loss`. The
    preparation is not saved: call it again after `keras.models.load_model`
    (the layers raise a clear error in training if you forget).

    Args:
        model: a `keras.Model`.

    Returns:
        The same model (so `model = mix_targets(model)` also reads well).

    Example:

    ```python
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras_trainplus.layers.MixUp(alpha=0.2),
                              keras.layers.Flatten(),
                              keras.layers.Dense(10, "softmax")])
    keras_trainplus.layers.mix_targets(model)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y_int)   # loss mixed for sparse labels
    ```

    Raises:
        ValueError: if `model` is not a Keras model; at the first train step
            if a custom train step never calls `compute_loss`, or if integer
            labels meet a loss whose reduction cannot be mixed.
    """
    return _mixing.mix_targets(model)
