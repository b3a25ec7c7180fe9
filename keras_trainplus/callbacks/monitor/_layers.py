"""Which layers a `TrainingMonitor` watches, their names and variables."""

import keras

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.lr_multiplier import find_layer
from keras_trainplus.knobs.lr_multiplier import label
from keras_trainplus.knobs.lr_multiplier import own_variables
from keras_trainplus.knobs.lr_multiplier import trainable_layers


def check_layers(layers):
    """Construction-time check of the `layers` argument (names or
    `Layer` objects; None: every layer with trainable weights)."""
    if layers is None:
        return None
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    items = v.sequence("layers", layers, "a list of layer names or layers")
    if not items:
        v.fail("layers", layers, "a non-empty list (or None: all layers)")
    for item in items:
        if isinstance(item, str) and not item:
            v.fail("layers", layers, "layer names (not empty) or layers")
        if not isinstance(item, (str, keras.layers.Layer)):
            v.fail_type(
                "layers", layers, "a list of layer names or `Layer` objects"
            )
    return list(items)


class WatchedLayers:
    """The watched layers of `model`, from input to output.

    Attributes:
        layers: the layers.
        names: their names (the path where a name is used twice).
        variables: per layer, its trainable variables (a nested model
            that owns weights itself stands for those only).
    """

    def __init__(self, model, layers=None):
        if layers is None:
            found = trainable_layers(model)
        else:
            found = []
            for item in layers:
                layer = find_layer(model, item, "layers")
                if not any(x is layer for x in found):
                    found.append(layer)
        if not found:
            raise ValueError(
                f"TrainingMonitor: model {model.name!r} has no layer with "
                "trainable weights to watch (pass `layers=[...]`)."
            )
        self.layers = found
        self.names = [label(model, x) for x in found]
        # By default a nested model stands for the weights it owns itself
        # (its layers are watched one by one); a layer given, for all.
        self.variables = [
            own_variables(
                x, own_only=layers is None and isinstance(x, keras.Model)
            )
            for x in found
        ]

    def groups(self, seen):
        """Per layer, ``[(index in seen, keras variable)]`` for the
        variables `seen` by a gradient program (`gradient_variables`)."""
        same = internals.optimizer_update.same_variable
        return [
            [
                (i, var)
                for var in variables
                for i, s in enumerate(seen)
                if same(var, s)
            ]
            for variables in self.variables
        ]
