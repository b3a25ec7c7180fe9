"""`find_lr`: run a learning-rate range test on a model."""

import math

import keras

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks.lr_finder.lr_finder import LRFinder

_NOT_FOR_THE_TEST = (
    "validation_data",
    "validation_split",
    "epochs",
    "initial_epoch",
    "validation_steps",
    "validation_freq",
    "validation_batch_size",
)


def find_lr(
    model,
    x=None,
    y=None,
    batch_size=None,
    start_lr=1e-7,
    end_lr=10.0,
    num_steps=100,
    mode="exp",
    smoothing=0.98,
    divergence_threshold=4.0,
    verbose="auto",
    **kwargs,
):
    """Runs Leslie Smith's learning-rate range test and restores the model.

    Trains `model` for (at most) `num_steps` updates while the learning rate
    rises from `start_lr` to `end_lr`, records every update's own loss, then
    puts the model back exactly as it was (see `LRFinder` and
    [docs/lr_finder.md](../docs/lr_finder.md)).

    Args:
        model: a compiled Keras model.
        x, y, batch_size: training data, as for `model.fit`.
        start_lr, end_lr, num_steps, mode, smoothing, divergence_threshold:
            as for `LRFinder`.
        verbose: passed to `fit` (progress bar).
        **kwargs: other `fit` arguments (`sample_weight`, `steps_per_epoch`,
            `shuffle`, `callbacks`, ...). Validation arguments and `epochs`
            are not accepted: the test only trains.

    Returns:
        An `LRFinderResult`.

    Example:

    ```python
    result = keras_trainplus.find_lr(model, x_train, y_train, batch_size=64)
    print(result.suggestions())
    result.plot("lr_finder.png")
    model.optimizer.learning_rate = result.suggestion()
    ```

    Raises:
        ValueError: for invalid arguments or an uncompiled model.
    """
    _check_arguments(model, batch_size, verbose, kwargs)
    finder = LRFinder(
        start_lr, end_lr, num_steps, mode, smoothing, divergence_threshold
    )
    callbacks = [finder] + _callbacks(kwargs.pop("callbacks", None))
    epochs = _epochs_for(
        _micro_batches(model, num_steps),
        x,
        kwargs["batch_size"],
        kwargs["steps_per_epoch"],
    )
    model.fit(x, y, epochs=epochs, callbacks=callbacks, **kwargs)
    return finder.result


def _micro_batches(model, num_steps):
    """`num_steps` updates take that many micro-batches times the
    optimizer's gradient accumulation."""
    optimizer = internals.optimizer.optimizers_of(model.optimizer)[0]
    return num_steps * internals.optimizer.accumulation_steps(optimizer)


def _epochs_for(num_steps, x, batch_size, steps_per_epoch):
    """Enough epochs for `num_steps` updates (the finder stops at exactly
    `num_steps`; over-counting is harmless)."""
    batches = steps_per_epoch
    if batches is None:
        try:
            length = len(x)
        except TypeError:
            length = None
        if length is not None and hasattr(x, "shape"):
            batches = math.ceil(length / (batch_size or 32))
        elif (
            length is not None
            and hasattr(x, "__getitem__")
            and not isinstance(x, (list, tuple, dict))
        ):
            batches = length  # a PyDataset / Sequence: length in batches
        elif hasattr(x, "cardinality"):
            card = int(x.cardinality())
            batches = card if card > 0 else None
    if not batches:
        return num_steps
    return max(1, math.ceil(num_steps / batches))


def _check_arguments(model, batch_size, verbose, kwargs):
    """Checks the arguments and puts the `fit` ones into `kwargs`."""
    bad = [k for k in _NOT_FOR_THE_TEST if k in kwargs]
    if bad:
        raise ValueError(
            f"find_lr does not take {bad}: the range test only trains, for "
            "`num_steps` updates."
        )
    if not isinstance(model, keras.Model):
        v.fail_type("model", model, "a compiled `keras.Model`")
    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            "find_lr needs a compiled model "
            "(`model.compile(optimizer=..., loss=...)`). "
            f"Received: model={model!r} (not compiled)"
        )
    kwargs["batch_size"] = v.integer(
        "batch_size", batch_size, minimum=1, allow_none=True
    )
    kwargs["verbose"] = v.choice("verbose", verbose, ("auto", 0, 1, 2))
    kwargs["steps_per_epoch"] = v.integer(
        "steps_per_epoch",
        kwargs.get("steps_per_epoch"),
        minimum=1,
        allow_none=True,
    )


def _callbacks(callbacks):
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        v.fail_type("callbacks", callbacks, "a list of callbacks or None")
    return list(callbacks or [])
