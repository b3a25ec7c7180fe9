"""`DiscriminativeLR`: a learning-rate factor per layer (discriminative
fine-tuning, layer-wise LR decay)."""

import math

import keras

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.knobs.lr_multiplier import PREFIX
from keras_trainplus.knobs.lr_multiplier import config_name
from keras_trainplus.knobs.lr_multiplier import find_layer
from keras_trainplus.knobs.lr_multiplier import label
from keras_trainplus.knobs.lr_multiplier import trainable_layers


@_export.register
class DiscriminativeLR(HyperparameterScheduler):
    """A learning-rate factor per layer, without recompiling.

    Discriminative fine-tuning (Howard & Ruder 2018, ULMFiT: LR / 2.6 per
    layer down) and layer-wise LR decay (ELECTRA, Clark et al. 2020; BEiT,
    Bao et al. 2021). Every update of a layer's trainable variables is the
    optimizer's update at ``LR x factor`` (any optimizer, any LR
    schedule), decoupled weight decay included; 0 freezes the layer (a
    frozen BatchNormalization runs in inference mode, as with
    ``trainable=False``). Give exactly one of:

    * `multipliers`: ``{layer name or layer: factor}`` (others keep 1);
    * `decay`: the top layer with trainable weights gets 1, each one below
      the factor of the layer above times `decay` (depth order:
      [docs/fine_tuning.md](../docs/fine_tuning.md)).

    With `GradualUnfreezing` the factors multiply, in either order. A
    preset of the driver: targets ``"lr_multiplier:<layer>"``, logged per
    layer (the factor its last update used). Checkpoints stay plain.

    Args:
        multipliers: dict ``{layer name or layer: factor}``, factors finite
            and >= 0. Defaults to `None`.
        decay: float > 0, the layer-wise decay. Defaults to `None`.

    Example:

    ```python
    model.fit(x, y, epochs=5, callbacks=[
        keras_trainplus.callbacks.DiscriminativeLR(decay=1 / 2.6),
    ])
    ```

    Raises:
        ValueError: unless exactly one of `multipliers` and `decay` is
            given; for a factor < 0 or not finite, a `decay` <= 0; at
            `fit`, for a layer the model does not have (naming it).
    """

    def __init__(self, multipliers=None, decay=None):
        if (multipliers is None) == (decay is None):
            raise ValueError(
                "Pass exactly one of `multipliers` and `decay`. Received: "
                f"multipliers={multipliers!r}, decay={decay!r}"
            )
        if multipliers is not None:
            multipliers = _check_multipliers(multipliers)
        if decay is not None:
            decay = v.positive("decay", decay)
        self.multipliers = multipliers
        self.decay = decay
        super().__init__(_arguments.built_at_fit, origin="fit")

    def _resolve_schedules(self):
        model = self.model
        schedules, self.options = {}, {}
        for layer, own_only, factor, argument in self._layer_factors(model):
            target = PREFIX + label(model, layer)
            if target in schedules:
                v.fail(argument, factor, "a layer not already given")
            schedules[target] = factor
            self.options[target] = {
                "argument": argument,
                "layer": layer,
                "own_only": own_only,
            }
        return _arguments.check_schedules(schedules, type(self).__name__)

    def _layer_factors(self, model):
        """``[(layer, own_only, factor, argument)]`` for `model`."""
        if self.multipliers is not None:
            return [
                (find_layer(model, key, f"multipliers[{key!r}]"), False)
                + (factor, f"multipliers[{key!r}]")
                for key, factor in self.multipliers.items()
            ]
        layers = trainable_layers(model)
        return [
            (layer, isinstance(layer, keras.Model))
            + (self.decay ** (len(layers) - 1 - i), "decay")
            for i, layer in enumerate(layers)
        ]

    def get_config(self):
        multipliers = self.multipliers
        if multipliers is not None:
            multipliers = {config_name(k): f for k, f in multipliers.items()}
        return {"multipliers": multipliers, "decay": self.decay}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_multipliers(multipliers):
    if not isinstance(multipliers, dict) or not multipliers:
        v.fail_type(
            "multipliers",
            multipliers,
            "a non-empty dict {layer name or layer: factor}",
        )
    out = {}
    for key, factor in multipliers.items():
        if not (
            isinstance(key, keras.layers.Layer)
            or (isinstance(key, str) and key)
        ):
            v.fail_type(
                "multipliers",
                multipliers,
                "keys that are layer names or layers",
            )
        value = v.target_value(
            PREFIX + getattr(key, "name", key), factor, f"multipliers[{key!r}]"
        )
        if not math.isfinite(value):
            v.fail(f"multipliers[{key!r}]", factor, "a finite factor >= 0")
        out[key] = value
    return out
