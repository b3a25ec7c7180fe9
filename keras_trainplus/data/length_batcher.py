"""`LengthBatcher`: length-bucketed batches with a curriculum on length."""

import copy
import math
import random
import warnings

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.data import _ordering
from keras_trainplus.data._curriculum import epoch_keys
from keras_trainplus.data._curriculum import max_length_schedule
from keras_trainplus.data._sequences import Sequences
from keras_trainplus.data._sequences import Targets

_LENGTH_INPUTS = (None, "lengths", "mask")


class LengthBatcher(keras.utils.PyDataset, keras.callbacks.Callback):
    """Batches of similar-length sequences, with a curriculum on length.

    A `keras.utils.PyDataset` (every backend) and a callback: pass it as
    ``fit(batcher, callbacks=[batcher], shuffle=False)``. Epoch ``e``
    (known on resume too) uses each sequence of length ``<= max_length(e)``
    once, permuted by a generator seeded with ``(seed, e)``, ordered, cut
    into batches padded to their longest (rounded up to `pad_to_multiple_of`):
    [docs/length_batching.md](../docs/length_batching.md).

    Args:
        x: list of arrays ``(time_i, ...)``, or a padded array
            ``(sequences, time, ...)`` with `lengths` (ints).
        y: None; a list of arrays (padded like `x`); an array shaped
            like a padded `x`; or an array of one target per sequence.
        batch_size: int or None: most sequences per batch. 32.
        max_tokens: int or None: most padded frames per batch.
        max_length: None, an int, a dict ``{epoch: int}`` (no limit before
            the first key), a callable ``epoch -> int`` or a schedule.
        ordering: "random", "sorted", "sorted_reverse", "laplace:N" (N
            bins) or "laplace:.N" (bins of about N). "laplace:.1000".
        pad_to_multiple_of, padding_value, shuffle, seed: None, 0.0, True
            and None (a random seed).
        length_input: None; "lengths" (inputs ``(x, lengths)``, int32
            ``(batch,)``, as `SpecAugment` takes); "mask" (``(x, mask)``).
        required_batch_size_multiple: every batch size a multiple of it
            (JAX `DataParallel`: the devices). 1. **kwargs: `PyDataset`'s.

    Batches: ``(x, y)`` (``(x,)`` without y), x ``(batch, time, ...)``.
    Example:

    >>> import numpy as np
    >>> x = [np.ones((n, 2)) for n in (5, 3, 9, 4)]
    >>> b = LengthBatcher(x, batch_size=2, ordering="sorted", shuffle=False)
    >>> [b[i][0].shape for i in range(len(b))]
    [(2, 4, 2), (2, 9, 2)]

    Raises:
        ValueError, TypeError: for a bad argument (named), or an epoch whose
            `max_length` keeps no sequence.
    """

    def __init__(
        self,
        x,
        y=None,
        lengths=None,
        batch_size=32,
        max_tokens=None,
        max_length=None,
        ordering="laplace:.1000",
        pad_to_multiple_of=None,
        padding_value=0.0,
        shuffle=True,
        seed=None,
        length_input=None,
        required_batch_size_multiple=1,
        **kwargs,
    ):
        keras.utils.PyDataset.__init__(self, **kwargs)
        keras.callbacks.Callback.__init__(self)
        self.x = Sequences("x", x, lengths)
        self.y = Targets(y, self.x)
        self.batch_size = v.integer(
            "batch_size", batch_size, minimum=1, allow_none=True
        )
        self.max_tokens = v.integer(
            "max_tokens", max_tokens, minimum=1, allow_none=True
        )
        if self.batch_size is None and self.max_tokens is None:
            v.fail("batch_size", None, "an int >= 1 when `max_tokens` is None")
        self.required_batch_size_multiple = v.integer(
            "required_batch_size_multiple",
            required_batch_size_multiple,
            minimum=1,
        )
        if self.batch_size is not None and (
            self.batch_size % self.required_batch_size_multiple
        ):
            v.fail(
                "batch_size",
                batch_size,
                "a multiple of `required_batch_size_multiple` "
                f"({self.required_batch_size_multiple})",
            )
        self.max_length = max_length_schedule(max_length)
        self._max_length_arg = max_length
        _ordering.parse_ordering(ordering)
        self.ordering = ordering
        self.pad_to_multiple_of = v.integer(
            "pad_to_multiple_of", pad_to_multiple_of, minimum=1, allow_none=True
        )
        self.padding_value = v.real("padding_value", padding_value)
        self.shuffle = v.boolean("shuffle", shuffle)
        self.seed = v.integer("seed", seed, minimum=0, allow_none=True)
        self._seed = random.randrange(1 << 31) if seed is None else self.seed
        self.length_input = v.choice(
            "length_input", length_input, _LENGTH_INPUTS
        )
        self._clock = _Clock()
        self._warned = set()

    # -- the plan of an epoch --------------------------------------------

    @property
    def epoch(self):
        """The epoch the batches are for (0-based, set by `fit`)."""
        return self._clock.epoch

    def limit(self, epoch=None):
        """The longest length epoch `epoch` uses (inf: no limit)."""
        epoch = self._clock.epoch if epoch is None else epoch
        if self.max_length is None:
            return math.inf
        value = self.max_length.value_at(epoch)
        if value is None:
            return math.inf
        if value < 1:
            v.fail(f"max_length({epoch})", value, "a length >= 1 or None")
        return value

    def epoch_batches(self, epoch=None):
        """The batches of epoch `epoch` (default: the current one): a list
        of int arrays of sequence indices (into `x`), in order."""
        epoch = self._clock.epoch if epoch is None else int(epoch)
        cached = self._clock.plan
        if cached is not None and cached[0] == epoch:
            return cached[1]
        limit = self.limit(epoch)
        lengths = self.x.lengths
        used = np.flatnonzero(lengths <= limit)
        if used.size == 0:
            v.fail(
                f"max_length({epoch})",
                limit,
                f"a length that keeps some sequence (the shortest has "
                f"{int(lengths.min())} frames)",
            )
        rng = (
            np.random.default_rng([self._seed, epoch]) if self.shuffle else None
        )
        ordered = _ordering.order(used, lengths, self.ordering, rng)
        plan = _ordering.batches(
            ordered,
            lengths,
            self.batch_size,
            self.max_tokens,
            self.pad_to_multiple_of,
            self.required_batch_size_multiple,
        )
        if not plan:
            v.fail(
                "required_batch_size_multiple",
                self.required_batch_size_multiple,
                f"at most the {ordered.size} sequences of epoch {epoch}",
            )
        self._clock.plan = (epoch, plan)
        return plan

    def stats(self, epoch=None):
        """``{"sequences", "batches", "frames", "padded_frames",
        "padding_share", "shapes"}`` of epoch `epoch`'s batches (padding
        share: padded frames that are padding; shapes: distinct
        (batch size, padded length) pairs)."""
        plan = self.epoch_batches(epoch)
        out = _ordering.padding_stats(
            plan, self.x.lengths, self.pad_to_multiple_of
        )
        out["sequences"] = int(sum(len(b) for b in plan))
        out["batches"] = len(plan)
        return out

    # -- PyDataset --------------------------------------------------------

    @property
    def num_batches(self):
        count = len(self.epoch_batches())
        if count == 1 and internals.fit_loop.sampling_tensor_spec(self):
            return 2  # two samples for Keras's signature (`__getitem__`)
        return count

    def __len__(self):
        return self.num_batches

    def __getitem__(self, index):
        plan = self.epoch_batches()
        extra = 0
        if index in (0, 1) and internals.fit_loop.sampling_tensor_spec(self):
            # Keras infers the `tf.data` signature from two batches and
            # fixes every dimension they share: make their lengths differ
            # (two from one batch if the epoch has one), so the time axis
            # stays dynamic. These batches are never trained on.
            extra = index * (self.pad_to_multiple_of or 1)
            index = min(index, len(plan) - 1)
        if not -len(plan) <= index < len(plan):
            raise IndexError(
                f"Batch {index} of epoch {self.epoch}, which has "
                f"{len(plan)} batches."
            )
        return self.batch(plan[index], extra)

    def batch(self, indices, extra=0):
        """The batch of the sequences `indices` (see the class doc), padded
        `extra` frames further."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.x.lengths[indices]
        padded = extra + _ordering.round_up(
            lengths.max(), self.pad_to_multiple_of
        )
        x = self.x.batch(indices, padded, self.padding_value)
        if self.length_input == "lengths":
            x = (x, lengths.astype("int32"))
        elif self.length_input == "mask":
            x = (x, np.arange(padded)[None, :] < lengths[:, None])
        if self.y.kind is None:
            return (x,)

        def length_of(longest):
            return extra + _ordering.round_up(longest, self.pad_to_multiple_of)

        return x, self.y.batch(indices, length_of, self.padding_value)

    def on_epoch_begin(self, epoch=None, logs=None):
        if epoch is None:  # the PyDataset hook: Keras's data adapter
            self._check_driven()
            return
        self._clock.epoch = int(epoch)
        plan = self.epoch_batches()
        callback_list, iterator = internals.fit_loop.calling_fit(self.model)
        if iterator is not None and self._feeds(iterator):
            internals.fit_loop.set_epoch_batches(
                callback_list, iterator, len(plan)
            )

    def on_epoch_end(self, epoch=None, logs=None):
        if epoch is None or logs is None:
            return
        if self.max_length is not None:
            logs["max_length"] = float(self.limit(epoch))

    # -- Callback -----------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._clock.epoch = 0
        self._clock.plan = None
        self._clock.driven = True
        self._clock.passes = 0
        _, iterator = internals.fit_loop.calling_fit(self.model)
        if iterator is None or not self._feeds(iterator):
            return
        if internals.fit_loop.shuffles_batches(iterator):
            self._warn_once(
                "shuffle",
                "`fit(shuffle=True)` (its default) reorders LengthBatcher's "
                "batches with Python's unseeded `random`: runs do not "
                "reproduce and a sorted ordering is lost. Pass "
                "`fit(..., shuffle=False)`; the batcher shuffles itself.",
            )

    def on_train_end(self, logs=None):
        self._clock.driven = False

    def _feeds(self, iterator):
        for source in internals.fit_loop.epoch_sources(iterator):
            source = getattr(source, "_trainplus_source", source)
            if getattr(source, "_clock", None) is self._clock:
                return True
        return False

    def _check_driven(self):
        varies = self.shuffle or not (
            self.max_length is None
            or isinstance(self._max_length_arg, (int, float))
        )
        if self._clock.driven or not varies:
            return
        # `fit` reads a batch to build the model before its callbacks start:
        # only a second pass without the callback is a mistake.
        self._clock.passes += 1
        if self._clock.passes >= 2:
            self._warn_once(
                "driven",
                "LengthBatcher is iterated outside a `fit` that has it in "
                "`callbacks`: it stays at epoch "
                f"{self.epoch} (no reshuffling, no curriculum). Pass "
                "`fit(batcher, callbacks=[batcher])`; for validation data "
                "use `shuffle=False` and no `max_length` schedule.",
            )

    def _warn_once(self, key, message):
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # -- tf.data, config, copies -------------------------------------------

    def as_tf_dataset(self):
        """A `tf.data.Dataset` of the current epoch's batches (TensorFlow
        backend); each new iteration reads the epoch the callback set.
        Use as ``fit(batcher.as_tf_dataset(), callbacks=[batcher])``."""
        from keras_trainplus.data._tf_dataset import tf_dataset

        dataset = tf_dataset(self)
        dataset._trainplus_source = self
        return dataset

    def get_config(self):
        """The options (not the data): rebuild with
        ``LengthBatcher.from_config({**config, "x": x, ...})``."""
        return {
            "batch_size": self.batch_size,
            "max_tokens": self.max_tokens,
            "max_length": _export.serialize_callable(
                "max_length", self._max_length_arg
            )
            if callable(self._max_length_arg)
            else self._max_length_arg,
            "ordering": self.ordering,
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "padding_value": self.padding_value,
            "shuffle": self.shuffle,
            "seed": self._seed,  # the seed used (drawn for seed=None)
            "length_input": self.length_input,
            "required_batch_size_multiple": self.required_batch_size_multiple,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("max_length"), dict):
            config["max_length"] = epoch_keys(config["max_length"])
        return cls(**config)

    def __deepcopy__(self, memo):
        # keras-tuner deep-copies the callbacks of every trial while `fit`
        # iterates the original: a copy shares the (read-only) data and the
        # epoch, so either side may be the callback.
        clone = copy.copy(self)
        memo[id(self)] = clone
        clone._warned = set(self._warned)
        return clone


class _Clock:
    """The epoch a batcher and its copies serve, and its cached plan."""

    def __init__(self):
        self.epoch = 0
        self.plan = None  # (epoch, batches)
        self.driven = False  # a `fit` has it in `callbacks`
        self.passes = 0  # epochs read while not driven
