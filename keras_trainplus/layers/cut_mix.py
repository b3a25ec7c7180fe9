"""`CutMix`: a box of each image pasted from a partner, targets mixed by the
pasted area."""

from keras import ops

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.layers import _mixing
from keras_trainplus.layers import _random
from keras_trainplus.layers._augmentation import AugmentationLayer
from keras_trainplus.layers._augmentation import box_mask
from keras_trainplus.layers._augmentation import check_training
from keras_trainplus.layers._augmentation import data_format_of
from keras_trainplus.layers._augmentation import image_axes
from keras_trainplus.layers._augmentation import unpack


@_export.register
class CutMix(AugmentationLayer):
    """CutMix (Yun et al., 2019) whose targets are mixed like its inputs.

    As in the paper's code: ``lam ~ Beta(alpha, alpha)``; a box of
    ``floor(H * sqrt(1 - lam))`` by ``floor(W * sqrt(1 - lam))`` pixels with
    its centre uniform over the image is clipped at the border and filled
    from a random partner in the batch; the target weight is then
    recomputed from the clipped integer box, so it equals the pasted
    pixel share exactly. Boxes are drawn per example (default) or once per
    batch (`per_example=False`, the paper's code).

    Targets are mixed as with `MixUp` (label weights ``1 - share`` and
    ``share``; targets laid out like the images get the same box). Identity
    unless training. Shared mechanism and the two ways of mixing targets:
    [docs/augmentation.md](../docs/augmentation.md).

    Args:
        alpha: float >= 0, the Beta concentration. Defaults to 1 (the
            paper's: ``lam`` uniform). 0 disables mixing.
        probability: float in [0, 1], chance that an example is mixed
            (the paper's ``cutmix_prob``: 0.5 on CIFAR, 1 on ImageNet).
            Defaults to 1.
        per_example: bool. Defaults to True.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        seed: int or None.
        **kwargs: base layer arguments.

    Example:

    ```python
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras_trainplus.layers.CutMix(), ...])
    keras_trainplus.layers.mix_targets(model)
    ```

    Raises:
        ValueError: for invalid arguments, inputs that are not a batch of
            images, or a training call whose targets cannot be mixed.
    """

    KNOBS = ("alpha", "probability")

    def __init__(
        self,
        alpha=1.0,
        probability=1.0,
        per_example=True,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.alpha = v.real("alpha", alpha, minimum=0)
        self.probability = v.real(
            "probability", probability, minimum=0, maximum=1
        )
        self.per_example = v.boolean("per_example", per_example)
        self.data_format = data_format_of(data_format)
        self._init_knobs()

    def call(self, inputs, training=None):
        if not check_training(training):
            return inputs
        x, y, sample_weight, repack = unpack(inputs)
        x = self._as_float(x)
        h_axis, w_axis, c_axis = image_axes(self.data_format, len(x.shape))
        shape = ops.shape(x)
        batch, height, width = shape[0], shape[h_axis], shape[w_axis]
        knobs = self._knob_values()
        seed = self.seed_generator
        draws = _random.Uniforms(_random.beta_rows() + 4, (batch,), seed)
        _, rest = _random.beta_from(knobs["alpha"], draws)
        ratio = ops.sqrt(rest)
        hf = ops.cast(height, "float32")
        wf = ops.cast(width, "float32")
        cut_h = ops.cast(ops.floor(hf * ratio), "int32")
        cut_w = ops.cast(ops.floor(wf * ratio), "int32")
        cy = _random.int_from(draws.take(), height)
        cx = _random.int_from(draws.take(), width)
        applied = _random.bernoulli_from(draws.take(), knobs["probability"])
        perm = _random.permutation_from(draws.take())
        if not self.per_example:  # one box for the batch (the paper's code)
            cut_h, cut_w, cy, cx, applied = (
                ops.broadcast_to(t[:1], (batch,))
                for t in (cut_h, cut_w, cy, cx, applied)
            )
        cut_h = ops.where(applied, cut_h, 0)
        cut_w = ops.where(applied, cut_w, 0)
        y1 = ops.clip(cy - cut_h // 2, 0, height)
        y2 = ops.clip(cy + cut_h // 2, 0, height)
        x1 = ops.clip(cx - cut_w // 2, 0, width)
        x2 = ops.clip(cx + cut_w // 2, 0, width)
        area = ops.cast((y2 - y1) * (x2 - x1), "float32")
        rest = area / (hf * wf)
        lam = (hf * wf - area) / (hf * wf)
        box = box_mask(y1, y2, x1, x2, height, width)
        mixed = ops.where(
            ops.expand_dims(box, c_axis), ops.take(x, perm, axis=0), x
        )
        return _mixing.finish(
            self,
            mixed,
            y,
            sample_weight,
            repack,
            perm,
            lam,
            rest,
            box=box,
            axes=(h_axis, w_axis),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha,
            probability=self.probability,
            per_example=self.per_example,
            data_format=self.data_format,
        )
        return config
