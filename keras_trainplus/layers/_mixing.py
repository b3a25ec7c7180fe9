"""Targets mixed like the inputs, inside `fit`.

A mixing layer (MixUp, CutMix) inside a model only sees the inputs. While a
train step of a model prepared with `mix_targets(model)` runs, the layer
records what it did (partner permutation and per-example weight) in a
thread-local frame (MirroredStrategy traces each replica in its own thread);
the model's `compute_loss` then mixes the targets and sample weights the same
way before computing the loss.

* Floating-point targets (one-hot, soft labels, regression targets) are
  mixed: ``y = lam * y + (1 - lam) * y[perm]``; sample weights likewise.
* Integer targets (sparse labels) cannot be interpolated, so the loss is
  mixed instead: the batch is stacked with its partners' targets and
  weights ``lam * w`` and ``(1 - lam) * w[perm]``, which, for every Keras
  reduction, gives ``lam * L(y) + (1 - lam) * L(y[perm])`` per example.

Training metrics are computed against the original targets.
"""

import threading

import keras
from keras import ops
from keras import tree

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v

_LOCAL = threading.local()


class Record:
    """One mixing layer's draw: example ``i`` became
    ``lam[i] * x[i] + rest[i] * x[perm[i]]`` (with ``rest = 1 - lam``), or,
    for CutMix, ``x[perm[i]]`` inside ``box[i]`` (boolean (B, H, W)) and
    ``x[i]`` elsewhere, with ``rest`` the pasted share."""

    def __init__(self, layer, perm, lam, rest, box=None, axes=None):
        self.layer = layer
        self.perm = perm
        self.lam = lam
        self.rest = rest
        self.box = box
        self.axes = axes  # (height axis, width axis) of the images

    def pastes_into(self, t):
        """True for a target laid out like the images (e.g. the images
        themselves, or segmentation masks): CutMix pastes the same box."""
        if self.box is None or len(t.shape) < 3:
            return False
        h_axis, w_axis = self.axes
        if h_axis >= len(t.shape) or w_axis >= len(t.shape):
            return False
        return (
            t.shape[h_axis] == self.box.shape[1]
            and t.shape[w_axis] == self.box.shape[2]
            and t.shape[h_axis] is not None
        )


class _Frame:
    def __init__(self, model):
        self.model = model
        self.records = []
        self.consumed = False


def _stack():
    if not hasattr(_LOCAL, "frames"):
        _LOCAL.frames = []
    return _LOCAL.frames


def current_frame():
    frames = _stack()
    return frames[-1] if frames else None


def no_targets_error(layer):
    return ValueError(
        f"`{type(layer).__name__}` layer {layer.name!r} was called in "
        "training mode on inputs alone, so the targets would not be mixed "
        "like the inputs (Keras's own MixUp/CutMix silently train on "
        "mismatched labels there). Inside a model, prepare the model once "
        "with `keras_trainplus.layers.mix_targets(model)` (then `fit` mixes "
        "the targets and sample weights); in a data pipeline, call the "
        "layer on `(x, y)`, `(x, y, sample_weight)` or "
        "`{'images': x, 'labels': y}`."
    )


def mix_targets(model):
    """See `keras_trainplus.layers.mix_targets`."""
    if getattr(model, "_trainplus_mix_targets", False):
        return model
    if not isinstance(model, keras.Model):
        v.fail_type("model", model, "a `keras.Model`")
    train_step = model.train_step

    def mixing_train_step(*args, **kwargs):
        frame = _Frame(model)
        _stack().append(frame)
        try:
            out = train_step(*args, **kwargs)
        finally:
            _stack().pop()
        if frame.records and not frame.consumed:
            raise ValueError(
                "A mixing layer mixed the inputs, but the train step never "
                "called `model.compute_loss`, so the targets could not be "
                "mixed. A custom `train_step` must compute its loss with "
                "`self.compute_loss(...)`."
            )
        return out

    def mixing_compute_loss(previous):
        def compute_loss(
            x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            frame = current_frame()
            if (
                frame is not None
                and frame.records
                and training
                and y is not None
            ):
                records, frame.records = frame.records, []
                frame.consumed = True
                y, y_pred, sample_weight = mix(
                    model, records, y, y_pred, sample_weight
                )
            return previous(x, y, y_pred, sample_weight, training=training)

        return compute_loss

    internals.trainer.set_train_step(model, mixing_train_step)
    internals.trainer.wrap_compute_loss(model, mixing_compute_loss)
    internals.layers.set_untracked_attribute(
        model, "_trainplus_mix_targets", True
    )
    if getattr(model, "train_function", None) is not None:
        internals.trainer.rebuild_train_function(model)
    return model


def _expand(weight, like):
    weight = ops.cast(weight, like.dtype)
    return ops.reshape(weight, (-1,) + (1,) * (len(like.shape) - 1))


def _interpolate(value, record):
    if value is None:
        return None
    if record.pastes_into(value):
        box = record.box
        h_axis, w_axis = record.axes
        # Put the (B, H, W) box on the target's batch/height/width axes.
        for axis in range(len(value.shape)):
            if axis not in (0, h_axis, w_axis):
                box = ops.expand_dims(box, axis)
        return ops.where(box, ops.take(value, record.perm, axis=0), value)
    return _expand(record.lam, value) * value + _expand(
        record.rest, value
    ) * ops.take(value, record.perm, axis=0)


def _is_float(t):
    return "float" in str(keras.backend.standardize_dtype(t.dtype))


def mix(model, records, y, y_pred, sample_weight):
    """Targets, predictions and sample weights for `compute_loss`."""
    y_leaves = tree.flatten(y)
    if all(
        _is_float(t) or all(r.pastes_into(t) for r in records) for t in y_leaves
    ):
        for record in records:
            y = tree.map_structure(lambda t: _interpolate(t, record), y)
            if sample_weight is not None:
                sample_weight = tree.map_structure(
                    lambda t: _interpolate(t, record), sample_weight
                )
        return y, y_pred, sample_weight
    return _stack_for_loss_mixing(model, records, y, y_pred, sample_weight)


def _loss_scale(model, count):
    """Factor on the stacked weights so the stacked batch's reduction equals
    the mean over the original batch."""
    reductions = set()

    def walk(loss):
        if loss is None:
            return
        if isinstance(loss, dict):
            for value in loss.values():
                walk(value)
        elif isinstance(loss, (list, tuple)):
            for value in loss:
                walk(value)
        elif isinstance(loss, keras.losses.Loss):
            reductions.add(loss.reduction)
        else:  # a name or a function: Keras wraps it with the default
            reductions.add("sum_over_batch_size")

    walk(getattr(model, "loss", None))
    if reductions <= {"sum"}:
        return 1.0
    if reductions <= {"sum_over_batch_size", "mean", "mean_with_sample_weight"}:
        return float(count)
    raise ValueError(
        "Integer (sparse) targets are mixed by mixing the loss, which needs "
        "losses with reduction 'sum_over_batch_size' (the default), 'mean', "
        "'mean_with_sample_weight' or 'sum' (all the same). Received "
        f"reductions: {sorted(map(str, reductions))}. Use one-hot float "
        "targets to mix the targets instead."
    )


def _stack_for_loss_mixing(model, records, y, y_pred, sample_weight):
    first = tree.flatten(y_pred)[0]
    batch = ops.shape(first)[0]
    index = ops.arange(batch, dtype="int32")
    components = [(index, ops.ones((batch,), "float32"))]
    for record in records:
        lam = ops.cast(record.lam, "float32")
        rest = ops.cast(record.rest, "float32")
        nxt = []
        for idx, w in components:
            nxt.append((idx, w * lam))
        for idx, w in components:
            nxt.append(
                (
                    ops.take(idx, record.perm, axis=0),
                    ops.take(w, record.perm, axis=0) * rest,
                )
            )
        components = nxt
    scale = _loss_scale(model, len(components))

    def stack_targets(t):
        return ops.concatenate(
            [ops.take(t, idx, axis=0) for idx, _ in components], axis=0
        )

    def stack_predictions(t):
        return ops.concatenate([t] * len(components), axis=0)

    def stack_weights(t):
        parts = []
        for idx, w in components:
            base = ops.take(t, idx, axis=0) if t is not None else None
            w = ops.cast(w * scale, "float32")
            if base is None:
                parts.append(w)
            else:
                base = ops.cast(base, "float32")
                parts.append(
                    base * ops.reshape(w, (-1,) + (1,) * (len(base.shape) - 1))
                )
        return ops.concatenate(parts, axis=0)

    y = tree.map_structure(stack_targets, y)
    y_pred = tree.map_structure(stack_predictions, y_pred)
    if sample_weight is None:
        sample_weight = stack_weights(None)
    else:
        sample_weight = tree.map_structure(stack_weights, sample_weight)
    return y, y_pred, sample_weight


def finish(
    layer, mixed, y, sample_weight, repack, perm, lam, rest, box=None, axes=None
):
    """Output of a mixing layer's training call.

    With targets at hand (a data pipeline or a direct call on `(x, y)`),
    mixes them and returns the same structure. With inputs alone, records
    the draw for `compute_loss` inside a `mix_targets` train step, and
    raises anywhere else.
    """
    record = Record(layer, perm, lam, rest, box, axes)
    if repack is None:
        frame = current_frame()
        if frame is None:
            raise no_targets_error(layer)
        frame.records.append(record)
        return mixed
    if y is None:
        raise no_targets_error(layer)
    y = tree.map_structure(
        lambda t: _interpolate(
            t if _is_float(t) or record.pastes_into(t) else _one_hot_error(t),
            record,
        ),
        y,
    )
    if sample_weight is not None:
        sample_weight = tree.map_structure(
            lambda t: _interpolate(ops.cast(t, "float32"), record),
            sample_weight,
        )
    return repack(mixed, y, sample_weight)


def _one_hot_error(t):
    raise ValueError(
        "In a data pipeline, mixing layers need float targets (one-hot or "
        f"soft labels); received dtype {t.dtype}. Convert with "
        "`keras.ops.one_hot(y, num_classes)` first, or put the layer inside "
        "the model and use `mix_targets(model)`, which mixes the loss for "
        "integer labels."
    )
