"""`Cutout`: a square of each training image set to a constant."""

import numpy as np
from keras import ops

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.layers import _random
from keras_trainplus.layers._augmentation import AugmentationLayer
from keras_trainplus.layers._augmentation import box_mask
from keras_trainplus.layers._augmentation import check_training
from keras_trainplus.layers._augmentation import data_format_of
from keras_trainplus.layers._augmentation import image_axes


@_export.register
class Cutout(AugmentationLayer):
    """Cutout (DeVries & Taylor, 2017): zero a random square of each image.

    As in the paper: the square's centre is uniform over the whole image
    (``randint(H)``, ``randint(W)``) and the square is clipped at the
    border, so squares near an edge are smaller. Rows ``cy - size // 2``
    to ``cy - size // 2 + size - 1`` (and likewise columns) are filled,
    i.e. exactly `size` pixels when inside the image. Each example gets its
    own squares. The paper's sizes: 16 on CIFAR-10, 8 on CIFAR-100, 20 on
    SVHN, on normalised images (fill 0 = the mean).

    Identity unless training; `size` and `probability` are knobs
    ([docs/augmentation.md](../docs/augmentation.md)).

    Args:
        size: int >= 0, the side in pixels, or float in (0, 1], a fraction
            of the shorter image side (rounded).
        probability: float in [0, 1], chance that an image gets its holes.
            Defaults to 1 (the paper).
        num_holes: int >= 1, squares per image (they may overlap).
            Defaults to 1.
        fill_value: float, the value written into the squares. Defaults
            to 0.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        seed: int or None.
        **kwargs: base layer arguments.

    Example:

    >>> import keras
    >>> layer = Cutout(16, seed=0)
    >>> x = keras.ops.ones((2, 32, 32, 3))
    >>> out = keras.ops.convert_to_numpy(layer(x, training=True))
    >>> bool(((out == 0).all(axis=-1).sum(axis=(1, 2)) <= 256).all())
    True

    Raises:
        ValueError: for invalid arguments or inputs that are not a batch of
            images.
    """

    KNOBS = ("size", "probability")

    def __init__(
        self,
        size,
        probability=1.0,
        num_holes=1,
        fill_value=0.0,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        size = v.scalar(size)
        if isinstance(size, (float, np.floating)) and 0 < size <= 1:
            self._fractional = True
            self.size = float(size)
        elif v.is_integer(size, 0):
            self._fractional = False
            self.size = int(size)
        else:
            v.fail(
                "size",
                size,
                "an int >= 0 (pixels) or a float in (0, 1] "
                "(a fraction of the shorter side)",
            )
        self.probability = v.real(
            "probability", probability, minimum=0, maximum=1
        )
        self.num_holes = v.integer("num_holes", num_holes, minimum=1)
        self.fill_value = v.real("fill_value", fill_value)
        self.data_format = data_format_of(data_format)
        self._init_knobs()

    def _unit_knobs(self):
        # A fractional size is a share of the image side.
        return self.UNIT_KNOBS + (("size",) if self._fractional else ())

    def call(self, inputs, training=None):
        if not check_training(training):
            return inputs
        x = inputs
        h_axis, w_axis, c_axis = image_axes(self.data_format, len(x.shape))
        shape = ops.shape(x)
        batch, height, width = shape[0], shape[h_axis], shape[w_axis]
        knobs = self._knob_values()
        seed = self.seed_generator
        size = ops.maximum(knobs["size"], 0.0)
        if self._fractional:
            size = size * ops.cast(ops.minimum(height, width), "float32")
        side = ops.cast(ops.round(size), "int32")
        k = self.num_holes
        draws = _random.Uniforms(2 * k + 1, (batch,), seed)
        cy = ops.transpose(_random.int_from(draws.take(k), height))
        cx = ops.transpose(_random.int_from(draws.take(k), width))
        applied = _random.bernoulli_from(draws.take(), knobs["probability"])[
            :, None
        ]
        side = ops.where(applied, side, 0)
        y1 = cy - side // 2
        x1 = cx - side // 2
        holes = box_mask(y1, y1 + side, x1, x1 + side, height, width)
        holes = ops.expand_dims(holes, c_axis)
        return ops.where(holes, ops.cast(self.fill_value, x.dtype), x)

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size,
            probability=self.probability,
            num_holes=self.num_holes,
            fill_value=self.fill_value,
            data_format=self.data_format,
        )
        return config
