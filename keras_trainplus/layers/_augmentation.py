"""Shared machinery of the augmentation layers (not public).

* Training only: identity unless ``training`` is True (a direct call with
  ``training=None`` is inference).
* Per-example random draws only, through `keras_trainplus._random`
  (XLA-safe; different on every `tf.distribute` replica).
* Strengths are knobs: float variables held as hidden layer state (like a
  seed generator's state: part of the JAX train state, not of the weights or
  saved files), read inside the compiled step. `HyperparameterScheduler`
  drives them as ``"<layer name>.<knob>"``; `set_knob` sets one directly.
"""

import sys

import keras
from keras import ops
from keras import tree

from keras_trainplus import _validation as v
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.knobs.step_counter import StepCounter


class _KnobStore:
    """Variables, programs and step counter of one layer's knobs (a plain
    object, so Keras's attribute tracking leaves it alone)."""

    def __init__(self):
        self.variables = {}
        self.programs = {}
        self.counter = None


class AugmentationLayer(keras.layers.Layer):
    """Base class: see the module docstring."""

    KNOBS = ()
    #: Knobs that must lie in [0, 1] (the others only be >= 0).
    UNIT_KNOBS = ("probability",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        v.register_unit_knobs(cls.UNIT_KNOBS)

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = v.integer("seed", seed, allow_none=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_jit = True
        self._trainplus_knobs = _KnobStore()

    def _init_knobs(self):
        """Creates the knob variables from the current attribute values
        (call at the end of the subclass's `__init__`)."""
        store = self._trainplus_knobs
        for name in self.KNOBS:
            knob = Knob(float(getattr(self, name)), name=f"{name}_knob")
            store.variables[name] = knob.attach(self).variable

    def __call__(self, *args, **kwargs):
        _check_not_in_foreign_tf_graph(self, args)
        return super().__call__(*args, **kwargs)

    # -- knobs ----------------------------------------------------------------

    @property
    def knobs(self):
        """Dict of knob name -> the variable the compiled step reads."""
        return dict(self._trainplus_knobs.variables)

    def set_knob(self, name, value):
        """Sets knob `name` (takes effect at the next step, no retrace)."""
        if not isinstance(name, str) or (
            name not in self._trainplus_knobs.variables
        ):
            v.fail(
                "name",
                name,
                f"a knob of `{type(self).__name__}` (it has "
                f"no knob {name!r}), one of {list(self.KNOBS)}",
            )
        self._check_knob(name, value)
        self._trainplus_knobs.variables[name].assign(float(value))

    def _unit_knobs(self):
        return self.UNIT_KNOBS

    def _check_knob(self, name, value):
        v.real(
            name,
            value,
            minimum=0,
            maximum=1 if name in self._unit_knobs() else None,
        )

    def knob_value(self, name):
        return float(
            ops.convert_to_numpy(self._trainplus_knobs.variables[name])
        )

    def _use_counter(self, model=None):
        store = self._trainplus_knobs
        if store.counter is None:
            store.counter = StepCounter("schedule_step", model).attach(self)
        return store.counter

    def _set_program(self, name, program):
        """`program(step, variable)` computes knob `name` in the step (None
        removes it)."""
        if program is None:
            self._trainplus_knobs.programs.pop(name, None)
        else:
            self._trainplus_knobs.programs[name] = program

    def _knob_values(self):
        """The knobs' values for this training call, as float32 tensors;
        `UNIT_KNOBS` clipped to [0, 1] (a schedule may overshoot)."""
        store = self._trainplus_knobs
        step = None
        if store.programs and store.counter is not None:
            step = store.counter.next()
        out = {}
        for name, variable in store.variables.items():
            program = store.programs.get(name)
            value = (
                program(step, variable)
                if program is not None
                else variable.value
            )
            value = ops.cast(value, "float32")
            if name in self.UNIT_KNOBS:
                value = ops.clip(value, 0.0, 1.0)
            out[name] = value
        return out

    # -- helpers -------------------------------------------------------------

    def _as_float(self, x):
        if "float" in str(keras.backend.standardize_dtype(x.dtype)):
            return x
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


v.register_unit_knobs(AugmentationLayer.UNIT_KNOBS)


def _check_not_in_foreign_tf_graph(layer, args):
    """A clear error for a `tf.data` pipeline under the JAX/torch backend
    (the layers compute with `keras.ops` of the active backend)."""
    if (
        keras.backend.backend() == "tensorflow"
        or "tensorflow" not in sys.modules
        or not args
    ):
        return
    import tensorflow as tf

    leaves = tree.flatten(args[0])
    if (
        leaves
        and isinstance(leaves[0], tf.Tensor)
        and not tf.executing_eagerly()
    ):
        raise ValueError(
            f"`{type(layer).__name__}` was called inside a TensorFlow graph "
            "(e.g. `tf.data.Dataset.map`) while the Keras backend is "
            f"{keras.backend.backend()!r}. keras_trainplus augmentation "
            "layers compute with the active backend: use them inside the "
            "model (they are identity at inference), or set "
            "KERAS_BACKEND=tensorflow to use them in `tf.data`."
        )


def check_training(training):
    """True only for an explicit (Python or tensor) True."""
    return training is not None and training is not False


def image_axes(data_format, rank):
    """(height axis, width axis, channel axis) of a rank-4 image batch."""
    if rank != 4:
        raise ValueError(
            "Expected a batch of images of rank 4 (batch, height, width, "
            f"channels). Received an input of rank {rank}."
        )
    if data_format == "channels_first":
        return 2, 3, 1
    return 1, 2, 3


def data_format_of(data_format):
    if data_format is None:
        return keras.config.image_data_format()
    return v.choice(
        "data_format", data_format, ("channels_last", "channels_first")
    )


def box_mask(y1, y2, x1, x2, height, width):
    """Boolean (B, H, W): inside ``[y1, y2) x [x1, x2)``; the corner
    tensors are (B,) or (B, k) (then any of the k boxes)."""
    rows = ops.arange(height, dtype="int32")
    cols = ops.arange(width, dtype="int32")
    in_y = ops.logical_and(rows >= y1[..., None], rows < y2[..., None])
    in_x = ops.logical_and(cols >= x1[..., None], cols < x2[..., None])
    box = ops.logical_and(in_y[..., :, None], in_x[..., None, :])
    if len(y1.shape) == 2:
        box = ops.any(box, axis=1)
    return box


def unpack(inputs):
    """(x, y, sample_weight, repack) for a tensor, a tuple (x, y[, sw]) or
    a dict with images/inputs, labels/targets[, sample_weight(s)]."""
    if isinstance(inputs, dict):
        x_key = next((k for k in ("images", "inputs") if k in inputs), None)
        y_key = next((k for k in ("labels", "targets") if k in inputs), None)
        w_key = next(
            (k for k in ("sample_weight", "sample_weights") if k in inputs),
            None,
        )
        if x_key is None:
            raise ValueError(
                "A dict input needs an 'images' (or 'inputs') entry. "
                f"Received keys: {sorted(inputs)}"
            )

        def repack(x, y, w):
            out = dict(inputs)
            out[x_key] = x
            if y_key is not None:
                out[y_key] = y
            if w_key is not None:
                out[w_key] = w
            return out

        return (inputs[x_key], inputs.get(y_key), inputs.get(w_key), repack)
    if isinstance(inputs, (tuple, list)):
        if not 1 <= len(inputs) <= 3:
            raise ValueError(
                "A tuple input must be (x,), (x, y) or (x, y, sample_weight)."
                f" Received a tuple of length {len(inputs)}."
            )
        items = list(inputs) + [None] * (3 - len(inputs))
        n = len(inputs)

        def repack(x, y, w):
            return (x, y, w)[:n]

        return items[0], items[1], items[2], repack
    return inputs, None, None, None
