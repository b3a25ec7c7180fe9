"""`MixUp`: inputs and targets blended with Beta-distributed weights."""

from keras import ops

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.layers import _mixing
from keras_trainplus.layers import _random
from keras_trainplus.layers._augmentation import AugmentationLayer
from keras_trainplus.layers._augmentation import check_training
from keras_trainplus.layers._augmentation import unpack


@_export.register
class MixUp(AugmentationLayer):
    """MixUp (Zhang et al., 2018) whose targets are mixed like its inputs.

    In training, example ``i`` becomes ``lam * x[i] + (1 - lam) * x[j]``
    with a random partner ``j`` from the same batch (a permutation) and
    ``lam ~ Beta(alpha, alpha)``, drawn per example (default) or once per
    batch (`per_example=False`, the paper's code). Targets and sample
    weights are mixed with the same ``lam`` and partner: inside a model
    after `keras_trainplus.layers.mix_targets(model)` (float targets mixed,
    sparse labels by mixing the loss), or in a data pipeline on ``(x, y)``.
    Identity unless training; `alpha` and `probability` are knobs. Shared
    mechanism and the two ways of mixing targets:
    [docs/augmentation.md](../docs/augmentation.md).

    Args:
        alpha: float >= 0, the Beta concentration. 0.2 (the default) is the
            paper's ImageNet value; 1.0 its CIFAR value. 0 disables mixing.
        per_example: bool. One ``lam`` per example (default) or per batch.
        probability: float in [0, 1]. Chance that an example is mixed at
            all (else ``lam = 1``). Defaults to 1.
        seed: int or None.
        **kwargs: base layer arguments.

    Example:

    ```python
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras_trainplus.layers.MixUp(alpha=0.2),
                              keras.layers.Conv2D(16, 3), ...])
    keras_trainplus.layers.mix_targets(model)   # targets mixed in fit
    model.compile("adam", "categorical_crossentropy")
    model.fit(x, y_one_hot)
    ```

    Raises:
        ValueError: for invalid arguments; in training when the targets
            cannot be mixed (no `mix_targets`; int targets in a pipeline).
    """

    KNOBS = ("alpha", "probability")

    def __init__(
        self, alpha=0.2, per_example=True, probability=1.0, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        self.alpha = v.real("alpha", alpha, minimum=0)
        self.per_example = v.boolean("per_example", per_example)
        self.probability = v.real(
            "probability", probability, minimum=0, maximum=1
        )
        self._init_knobs()

    def call(self, inputs, training=None):
        if not check_training(training):
            return inputs
        x, y, sample_weight, repack = unpack(inputs)
        x = self._as_float(x)
        knobs = self._knob_values()
        batch = ops.shape(x)[0]
        draws = _random.Uniforms(
            _random.beta_rows() + 2, (batch,), self.seed_generator
        )
        lam, rest = _random.beta_from(knobs["alpha"], draws)
        if not self.per_example:
            lam = ops.broadcast_to(lam[:1], (batch,))
            rest = ops.broadcast_to(rest[:1], (batch,))
        keep = ops.logical_not(
            _random.bernoulli_from(draws.take(), knobs["probability"])
        )
        lam = ops.where(keep, 1.0, lam)
        rest = ops.where(keep, 0.0, rest)
        perm = _random.permutation_from(draws.take())
        shape = (-1,) + (1,) * (len(x.shape) - 1)
        mixed = ops.reshape(ops.cast(lam, x.dtype), shape) * x + ops.reshape(
            ops.cast(rest, x.dtype), shape
        ) * ops.take(x, perm, axis=0)
        return _mixing.finish(
            self, mixed, y, sample_weight, repack, perm, lam, rest
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha,
            per_example=self.per_example,
            probability=self.probability,
        )
        return config
