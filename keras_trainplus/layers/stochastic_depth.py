"""`StochasticDepth`: residual branches dropped per example (Huang et al.)
and `stochastic_depth_rates`, the paper's linear decay over depth."""

from keras import ops

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.layers import _random
from keras_trainplus.layers._augmentation import AugmentationLayer
from keras_trainplus.layers._augmentation import check_training


@_export.register
class StochasticDepth(AugmentationLayer):
    """Stochastic depth (Huang et al., 2016, "Deep Networks with Stochastic
    Depth"): call it on ``[shortcut, residual]`` of a residual block.

    Returns ``shortcut + residual``; in training, the residual branch of
    each example is dropped with probability `rate` and the kept ones are
    scaled by ``1 / (1 - rate)``. At inference it is the plain sum. The
    paper trains unscaled and multiplies the branch by its survival
    probability ``1 - rate`` at test time; scaling in training instead
    (as dropout does, and timm's ``DropPath``) gives the same expectation
    and leaves inference untouched. Draws are per example (per replica
    under `tf.distribute`); XLA-compilable. `rate` is a knob
    (``"<layer name>.rate"`` for `HyperparameterScheduler`, or
    `set_knob`; [docs/augmentation.md](../docs/augmentation.md)).

    Args:
        rate: float in [0, 1), the drop probability. Defaults to `0.1`.
        seed: int or None.
        **kwargs: base layer arguments.

    Input: a list ``[shortcut, residual]`` of tensors of one shape
    ``(batch, ...)``. Output: that shape.

    Example:

    >>> import keras
    >>> layer = StochasticDepth(0.5, seed=0)
    >>> shortcut, residual = keras.ops.zeros((8, 3)), keras.ops.ones((8, 3))
    >>> out = layer([shortcut, residual], training=True)
    >>> out = keras.ops.convert_to_numpy(out)
    >>> sorted(set(out.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True

    Raises:
        ValueError: for `rate` outside [0, 1), or inputs that are not a
            pair of tensors of one shape.
    """

    KNOBS = ("rate",)
    UNIT_KNOBS = ("rate",)

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate("rate", rate)
        self._init_knobs()

    def _check_knob(self, name, value):
        _check_rate(name, value)

    def call(self, inputs, training=None):
        shortcut, residual = _pair(inputs)
        if not check_training(training):
            return shortcut + residual
        # (a schedule may reach 1: keep the scale finite)
        rate = ops.minimum(self._knob_values()["rate"], 1.0 - 1e-6)
        u = _random.uniform((ops.shape(residual)[0],), self.seed_generator)
        scale = ops.cast(ops.greater_equal(u, rate), "float32") / (1.0 - rate)
        scale = ops.reshape(scale, (-1,) + (1,) * (len(residual.shape) - 1))
        return shortcut + residual * ops.cast(scale, residual.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config["rate"] = self.rate
        return config


def _check_rate(name, value):
    return v.real(name, value, minimum=0, maximum=1, max_inclusive=False)


def _pair(inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            "StochasticDepth is called on [shortcut, residual]; received "
            f"{type(inputs).__name__} {inputs!r:.80}."
        )
    shortcut, residual = inputs
    if tuple(shortcut.shape) != tuple(residual.shape):
        raise ValueError(
            "StochasticDepth: shortcut and residual must have one shape; "
            f"received {tuple(shortcut.shape)} and {tuple(residual.shape)}."
        )
    return shortcut, residual


def stochastic_depth_rates(num_blocks, max_rate):
    """Huang et al.'s linear decay of the drop rate over depth: block
    ``l`` (1 .. `num_blocks`, input to output) gets
    ``l / num_blocks * max_rate``, so the last block drops with
    `max_rate` (the paper's 0.5).

    Args:
        num_blocks: int >= 1.
        max_rate: float in [0, 1).

    Returns:
        A list of `num_blocks` floats.

    Example:

    >>> stochastic_depth_rates(4, 0.5)
    [0.125, 0.25, 0.375, 0.5]

    Raises:
        ValueError: for `num_blocks` < 1 or `max_rate` outside [0, 1).
    """
    num_blocks = v.integer("num_blocks", num_blocks, minimum=1)
    max_rate = _check_rate("max_rate", max_rate)
    return [block / num_blocks * max_rate for block in range(1, num_blocks + 1)]
