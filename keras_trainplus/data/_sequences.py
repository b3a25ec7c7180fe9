"""The sequences `LengthBatcher` serves: checking the forms `x` and `y`
take, and padding a batch of them."""

import numpy as np

from keras_trainplus import _validation as v


class Sequences:
    """Variable-length arrays (time first), from a list of arrays or from a
    padded array with `lengths`; `batch(indices, length)` pads them."""

    def __init__(self, name, data, lengths=None, lengths_name="lengths"):
        self.name = name
        if isinstance(data, (list, tuple)):
            if not data:
                v.fail(name, data, "a non-empty list of arrays")
            self.items = [_array(f"{name}[{i}]", a) for i, a in enumerate(data)]
            self.padded = None
            first = self.items[0]
            for i, a in enumerate(self.items):
                if a.shape[1:] != first.shape[1:]:
                    v.fail(
                        f"{name}[{i}]",
                        f"an array of shape {a.shape}",
                        f"an array of shape (length, *{first.shape[1:]}) "
                        f"like {name}[0]",
                    )
            full = np.array([len(a) for a in self.items], dtype=np.int64)
            self.feature_shape = first.shape[1:]
            self.dtype = np.result_type(*self.items)
        elif hasattr(data, "shape") and hasattr(data, "__array__"):
            self.padded = np.asarray(data)
            if self.padded.ndim < 2 or len(self.padded) == 0:
                v.fail(
                    name,
                    f"an array of shape {self.padded.shape}",
                    "a padded array (sequences, time, ...) with `lengths`, "
                    "or a list of (time, ...) arrays",
                )
            self.items = None
            full = np.full(len(self.padded), self.padded.shape[1], np.int64)
            self.feature_shape = self.padded.shape[2:]
            self.dtype = self.padded.dtype
            if lengths is None:
                v.fail(
                    lengths_name,
                    None,
                    f"the true lengths of the padded `{name}` (a list "
                    f"of ints), or pass `{name}` as a list of arrays",
                )
        else:
            v.fail_type(
                name,
                data,
                "a list of (time, ...) arrays or a padded NumPy array "
                "(sequences, time, ...) with `lengths`",
            )
        self.lengths = (
            full if lengths is None else _lengths(lengths_name, lengths, full)
        )

    def __len__(self):
        return len(self.lengths)

    def batch(self, indices, length, padding_value):
        """The sequences `indices`, padded (or cut) to `length` frames with
        `padding_value`: shape ``(len(indices), length, *feature_shape)``."""
        out = np.full(
            (len(indices), length) + tuple(self.feature_shape),
            padding_value,
            dtype=self.dtype,
        )
        for row, index in enumerate(indices):
            n = min(int(self.lengths[index]), length)
            if self.items is not None:
                out[row, :n] = self.items[index][:n]
            else:
                out[row, :n] = self.padded[index, :n]
        return out


def _array(name, value):
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        v.fail_type(name, value, "an array (time, ...)")
    if array.ndim < 1 or len(array) == 0 or array.dtype == object:
        v.fail(
            name,
            f"an array of shape {array.shape}",
            "an array (time, ...) of at least one frame",
        )
    return array


def _lengths(name, lengths, full):
    array = np.asarray(lengths)
    if array.dtype == object or array.ndim != 1 or len(array) != len(full):
        v.fail(
            name,
            lengths,
            f"a list of {len(full)} ints, one per sequence",
        )
    for i, (value, limit) in enumerate(zip(array.tolist(), full.tolist())):
        if not v.is_integer(value, 1) or value > limit:
            v.fail(
                f"{name}[{i}]",
                value,
                f"an int in [1, {limit}] (the frames the sequence has)",
            )
    return array.astype(np.int64)


class Targets:
    """`y`: None, variable-length sequences (a list, padded like `x`), a
    padded per-frame array (shape ``(sequences, time, ...)`` matching a
    padded `x`), or one value per sequence (any other array)."""

    def __init__(self, y, x):
        self.kind = None
        if y is None:
            return
        if isinstance(y, (list, tuple)) and all(
            np.ndim(item) == 0 for item in y
        ):
            y = np.asarray(y)  # one number per sequence
        if isinstance(y, (list, tuple)):
            self.kind = "sequences"
            self.sequences = Sequences("y", y)
        elif hasattr(y, "shape") and hasattr(y, "__array__"):
            y = np.asarray(y)
            per_frame = (
                x.padded is not None
                and y.ndim >= 2
                and y.shape[:2] == x.padded.shape[:2]
            )
            if per_frame:
                self.kind = "sequences"
                self.sequences = Sequences("y", y, lengths=x.lengths)
            else:
                self.kind = "per_sequence"
                self.values = y
        else:
            v.fail_type(
                "y",
                y,
                "None, a list of arrays, a padded array like `x` or an "
                "array of one value per sequence",
            )
        count = len(self.sequences) if self.kind == "sequences" else len(y)
        if count != len(x):
            v.fail(
                "y",
                f"{count} targets",
                f"one per sequence of `x` ({len(x)})",
            )

    def batch(self, indices, length_of, padding_value):
        """The targets of `indices`; sequences padded to
        ``length_of(longest)`` frames."""
        if self.kind == "per_sequence":
            return self.values[indices]
        longest = int(self.sequences.lengths[indices].max())
        return self.sequences.batch(indices, length_of(longest), padding_value)
