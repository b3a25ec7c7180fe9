"""`WeightNoise`: Gaussian weight noise in training forward passes."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks._arguments import epoch_schedule
from keras_trainplus.callbacks._arguments import layer_list
from keras_trainplus.callbacks._arguments import layer_names
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)


@_export.register
class WeightNoise(HyperparameterScheduler):
    """Gaussian weight noise (Graves, 2011, "Practical Variational
    Inference for Neural Networks"; RETURNN's `param_variational_noise`).

    In every training step the forward pass reads each kernel of the
    chosen layers (kernels, recurrent and depthwise kernels) plus fresh
    ``N(0, stddev**2)`` noise per element: one draw per step and layer
    (an RNN uses one draw for the whole sequence), the same on every
    replica. The gradient is taken at the noisy weights and applied to the
    stored ones; the noise is never written to the weights, and inference
    (`predict`, `evaluate`, validation) reads them clean. A preset of the
    driver (targets ``"weight_noise"``, ``"weight_noise:<layer>"``; the
    value is the standard deviation, in weight units):
    [docs/regularization.md](../docs/regularization.md#weight-noise).

    Args:
        stddev: float >= 0, a dict ``{epoch: stddev}`` (e.g. no noise
            until the network has converged: ``{0: 0.0, 10: 0.075}``), a
            list, a callable ``epoch -> stddev`` or a keras_trainplus
            schedule of the step. Defaults to `0.075` (Graves et al., 2013,
            speech recognition with deep RNNs).
        layers: None (the outermost layers holding kernels) or a list of
            layer names (paths) or layers.
        seed: int or None (a random seed per `fit`).
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=30, callbacks=[
        keras_trainplus.callbacks.WeightNoise({0: 0.0, 10: 0.075}, seed=0),
    ])
    ```

    Raises:
        ValueError: for a negative stddev (a callable's: when first
            evaluated), bad `layers` or `seed`; at `fit`, for unknown
            layers or layers without kernels.
    """

    def __init__(self, stddev=0.075, layers=None, seed=None, verbose=0):
        self.stddev = epoch_schedule("stddev", stddev, target="weight_noise")
        self.layers = layer_list("layers", layers)
        self.seed = v.integer("seed", seed, allow_none=True)
        super().__init__(
            {"weight_noise": self.stddev},
            origin="fit",
            verbose=verbose,
            options={
                "weight_noise": {
                    "layers": self.layers,
                    "seed": self.seed,
                    "argument": "stddev",
                }
            },
        )

    def get_config(self):
        return {
            "stddev": _export.serialize(self.stddev),
            "layers": layer_names(self.layers),
            "seed": self.seed,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["stddev"] = _export.deserialize(config["stddev"])
        return cls(**config)
