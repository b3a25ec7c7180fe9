"""`max_length` of `LengthBatcher`: the forms it takes, checked."""

import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.per_epoch import PerEpoch


def epoch_keys(values):
    """A dict read back from JSON has string keys: epochs again."""
    if isinstance(values, dict) and "class_name" in values:
        return _export.deserialize(values)
    return {int(k): x for k, x in values.items()}


def max_length_schedule(max_length):
    if max_length is None:
        return None
    expected = (
        "None, an int, a list, a dict {epoch: max length}, a callable "
        "epoch -> max length or a keras_trainplus schedule"
    )
    if isinstance(max_length, bool) or isinstance(max_length, str):
        v.fail_type("max_length", max_length, expected)
    if isinstance(max_length, (int, float, np.integer, np.floating)):
        max_length = [v.real("max_length", max_length, minimum=1)]
    if isinstance(max_length, PerEpoch):
        return max_length
    if isinstance(max_length, dict):
        for k, x in max_length.items():
            if x is not None:
                v.real(f"max_length[{k!r}]", x, minimum=1, allow_inf=True)
    elif isinstance(max_length, (list, tuple)):
        for i, x in enumerate(max_length):
            v.real(f"max_length[{i}]", x, minimum=1, allow_inf=True)
    with v.aliases({"values": "max_length"}):
        return PerEpoch(max_length)
