"""`SpecAugment`: frequency and time masks, padding-aware."""

from keras import ops

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.layers import _random
from keras_trainplus.layers._augmentation import AugmentationLayer
from keras_trainplus.layers._augmentation import check_training

#: (freq_mask_param F, num_freq_masks m_F, time_mask_param T,
#:  time_mask_ratio p, num_time_masks m_T) of Park et al. (2019), Table 1.
POLICIES = {
    "LB": (27, 1, 100, 1.0, 1),
    "LD": (27, 2, 100, 1.0, 2),
    "SM": (15, 2, 70, 0.2, 2),
    "SS": (27, 2, 70, 0.2, 2),
}


@_export.register
class SpecAugment(AugmentationLayer):
    """SpecAugment masking (Park et al., 2019) on batches of spectrograms.

    Input ``(batch, time, freq[, channels])``. Each example ``i`` of true
    length ``length_i`` (from `lengths`, a Keras mask, or the padded
    length; padding is never masked) gets `num_freq_masks` frequency masks
    of width ``f ~ U{0..min(F, bins)}`` and `num_time_masks` time masks of
    width ``t ~ U{0..min(T, floor(p * length_i))}``, at uniform starts.
    Identity unless training; the widths, counts, ratio and probability are
    knobs. Shared mechanism, adaptive masks (Park et al., 2020), fill:
    [docs/augmentation.md](../docs/augmentation.md).

    Args:
        freq_mask_param, time_mask_param: ints >= 0, F and T. 27 and 100.
        num_freq_masks, num_time_masks: ints >= 0, m_F and m_T. 2 and 2.
        time_mask_ratio: float in [0, 1], p. Defaults to 1.
        policy: None or "LB", "LD", "SM", "SS" (overrides the five above).
        adaptive_time_mask_count, adaptive_time_mask_width: None or floats
            in (0, 1], p_M and p_S.
        probability: float in [0, 1], chance an example is masked. 1.
        fill, fill_value: "constant" (default, `fill_value`, default 0) or
            "mean" (the example's mean).
        seed: int or None.
        **kwargs: base layer arguments.

    Call arguments: `inputs`; `lengths` (optional int tensor (batch,));
    `training`; `mask` (optional (batch, time), passed on unchanged).

    Example:

    >>> import keras
    >>> layer = SpecAugment(policy="LD", seed=0)
    >>> x = keras.ops.ones((4, 200, 80))
    >>> y = layer(x, lengths=keras.ops.array([200, 150, 100, 50]),
    ...           training=True)
    >>> float(keras.ops.min(y[3, 50:]))  # padding is never masked
    1.0

    Raises:
        ValueError: for invalid arguments.
    """

    KNOBS = (
        "freq_mask_param",
        "time_mask_param",
        "num_freq_masks",
        "num_time_masks",
        "time_mask_ratio",
        "probability",
    )
    UNIT_KNOBS = ("time_mask_ratio", "probability")

    def __init__(
        self,
        freq_mask_param=27,
        time_mask_param=100,
        num_freq_masks=2,
        num_time_masks=2,
        time_mask_ratio=1.0,
        policy=None,
        adaptive_time_mask_count=None,
        adaptive_time_mask_width=None,
        probability=1.0,
        fill="constant",
        fill_value=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.supports_masking = True
        self.policy = (
            None
            if policy is None
            else v.choice("policy", policy, tuple(POLICIES))
        )
        if self.policy is not None:
            (
                freq_mask_param,
                num_freq_masks,
                time_mask_param,
                time_mask_ratio,
                num_time_masks,
            ) = POLICIES[self.policy]
        counts = dict(
            freq_mask_param=freq_mask_param,
            time_mask_param=time_mask_param,
            num_freq_masks=num_freq_masks,
            num_time_masks=num_time_masks,
        )
        for name, value in counts.items():
            setattr(self, name, v.integer(name, value, minimum=0))
        self.time_mask_ratio = v.real(
            "time_mask_ratio", time_mask_ratio, minimum=0, maximum=1
        )
        self.adaptive_time_mask_count = _fraction(
            "adaptive_time_mask_count", adaptive_time_mask_count
        )
        self.adaptive_time_mask_width = _fraction(
            "adaptive_time_mask_width", adaptive_time_mask_width
        )
        self.probability = v.real(
            "probability", probability, minimum=0, maximum=1
        )
        self.fill = v.choice("fill", fill, ("constant", "mean"))
        self.fill_value = v.real("fill_value", fill_value)
        self._init_knobs()

    def call(self, inputs, lengths=None, training=None, mask=None):
        if not check_training(training):
            return inputs
        if len(inputs.shape) not in (3, 4):
            raise ValueError(
                "SpecAugment expects (batch, time, freq) or (batch, time, "
                f"freq, channels). Received an input of rank "
                f"{len(inputs.shape)}."
            )
        transformation = self.get_random_transformation(inputs, lengths, mask)
        return self.transform(inputs, transformation)

    def get_random_transformation(self, inputs, lengths=None, mask=None):
        """Draws the masks of one batch (the draw half of `call`).

        Returns:
            dict: ``"masked"``, bool `(batch, time, freq)`, True where the
            input is replaced; ``"valid"``, bool `(batch, time)`, the real
            frames; ``"length"``, float32 `(batch,)`, their number.
        """
        shape = ops.shape(inputs)
        batch, steps, bins = shape[0], shape[1], shape[2]
        valid, length = _valid_frames(batch, steps, lengths, mask)
        knobs = self._knob_values()
        draws = _random.Uniforms(
            2 * (self.num_freq_masks + self.num_time_masks) + 1,
            (batch,),
            self.seed_generator,
        )
        applied = _random.bernoulli_from(draws.take(), knobs["probability"])
        applied = applied[:, None]
        masked_f = self._freq_masks(knobs, batch, bins, applied, draws)
        masked_t = self._time_masks(knobs, batch, steps, length, applied, draws)
        masked = ops.logical_or(masked_t[:, :, None], masked_f[:, None, :])
        masked = ops.logical_and(masked, valid[:, :, None])
        return {"masked": masked, "valid": valid, "length": length}

    def _freq_masks(self, knobs, batch, bins, applied, draws):
        if not self.num_freq_masks:
            return ops.zeros((batch, bins), "bool")
        m = self.num_freq_masks
        count = ops.clip(ops.round(knobs["num_freq_masks"]), 0, m)
        width_max = ops.minimum(
            ops.floor(knobs["freq_mask_param"]), ops.cast(bins, "float32")
        )
        return _masks(
            (batch, m),
            count,
            width_max,
            ops.broadcast_to(ops.cast(bins, "float32"), (batch, 1)),
            bins,
            applied,
            draws,
        )

    def _time_masks(self, knobs, batch, steps, length, applied, draws):
        if not self.num_time_masks:
            return ops.zeros((batch, steps), "bool")
        m = self.num_time_masks
        count = ops.clip(ops.round(knobs["num_time_masks"]), 0, m)
        count = ops.broadcast_to(count, (batch,))
        if self.adaptive_time_mask_count is not None:
            count = ops.minimum(
                count, ops.floor(self.adaptive_time_mask_count * length)
            )
        param = ops.floor(knobs["time_mask_param"])
        if self.adaptive_time_mask_width is not None:
            param = ops.floor(self.adaptive_time_mask_width * length)
        width_max = ops.minimum(
            param, ops.floor(knobs["time_mask_ratio"] * length)
        )
        return _masks(
            (batch, m),
            count[:, None],
            width_max[:, None],
            length[:, None],
            steps,
            applied,
            draws,
        )

    def transform(self, inputs, transformation):
        """Applies drawn masks (the apply half of `call`): masked entries
        become `fill_value`, or each example's mean over its real frames
        for ``fill="mean"``."""
        x = inputs
        masked = transformation["masked"]
        if len(x.shape) == 4:
            masked = masked[..., None]
        if self.fill != "mean":
            return ops.where(masked, ops.cast(self.fill_value, x.dtype), x)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        keep = ops.cast(transformation["valid"], "float32")
        keep = ops.reshape(keep, (batch, steps) + (1,) * (len(x.shape) - 2))
        total = ops.sum(
            ops.where(keep > 0, ops.cast(x, "float32"), 0.0),
            axis=tuple(range(1, len(x.shape))),
        )
        per_frame = 1
        for d in ops.shape(x)[2:]:
            per_frame = per_frame * d
        count = ops.maximum(
            transformation["length"] * ops.cast(per_frame, "float32"), 1.0
        )
        fill = ops.reshape(total / count, (batch,) + (1,) * (len(x.shape) - 1))
        return ops.where(masked, ops.cast(fill, x.dtype), x)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(
            freq_mask_param=self.freq_mask_param,
            time_mask_param=self.time_mask_param,
            num_freq_masks=self.num_freq_masks,
            num_time_masks=self.num_time_masks,
            time_mask_ratio=self.time_mask_ratio,
            policy=self.policy,
            adaptive_time_mask_count=self.adaptive_time_mask_count,
            adaptive_time_mask_width=self.adaptive_time_mask_width,
            probability=self.probability,
            fill=self.fill,
            fill_value=self.fill_value,
        )
        return config


def _masks(shape, count, width_max, extent, size, applied, draws):
    """Boolean (batch, size): the union of ``shape[1]`` masks per example,
    of which the first `count` are used; widths uniform on
    ``{0, ..., width_max}``, starts uniform on ``{0, ..., extent - width}``.
    `count`, `width_max` and `extent` broadcast against `shape`."""
    width = ops.floor(ops.transpose(draws.take(shape[1])) * (width_max + 1.0))
    width = ops.minimum(width, width_max)
    start = ops.floor(
        ops.transpose(draws.take(shape[1])) * (extent - width + 1.0)
    )
    start = ops.minimum(start, ops.maximum(extent - width, 0.0))
    index = ops.arange(shape[1], dtype="float32")[None, :]
    active = ops.logical_and(index < count, applied)
    width = ops.where(active, width, 0.0)
    start = ops.cast(start, "int32")
    end = start + ops.cast(width, "int32")
    positions = ops.arange(size, dtype="int32")[None, None, :]
    inside = ops.logical_and(
        positions >= start[..., None], positions < end[..., None]
    )
    return ops.any(inside, axis=1)


def _valid_frames(batch, steps, lengths, mask):
    """``(valid, length)``: bool `(batch, time)` real frames (from
    `lengths` and/or a Keras mask) and their float32 count per example."""
    frames = ops.arange(steps, dtype="int32")
    if lengths is not None:
        length = ops.minimum(
            ops.cast(ops.reshape(lengths, (-1,)), "int32"), steps
        )
        valid = frames[None, :] < length[:, None]
    elif mask is not None:
        valid = ops.cast(mask, "bool")
        length = ops.sum(ops.cast(valid, "int32"), axis=1)
    else:
        length = ops.broadcast_to(ops.cast(steps, "int32"), (batch,))
        valid = ops.broadcast_to(frames[None, :] >= 0, (batch, steps))
    if mask is not None and lengths is not None:
        valid = ops.logical_and(valid, ops.cast(mask, "bool"))
    return valid, ops.cast(length, "float32")


def _fraction(name, value):
    """None, or a fraction in (0, 1] of each example's length."""
    return v.real(
        name, value, minimum=0, maximum=1, min_inclusive=False, allow_none=True
    )
