"""`LengthBatcher`: the sequences of each epoch (curriculum), every one
once, laplace bins sorted, padding and token caps, the epoch lengths a
compiled `fit` runs (curriculum epochs differ), resume, reproducibility,
the `tf.data` recipe, config/copies and argument errors."""

import copy
import math
import re
import warnings

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from keras_trainplus import schedules as S
from keras_trainplus.data import LengthBatcher
from keras_trainplus.data import _ordering

BACKEND = keras.backend.backend()
SPE = 1 if BACKEND == "torch" else 3  # torch runs one step per execution


def corpus(n=300, seed=0, features=4):
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(4.0, 0.5, n).astype(int), 3, 300)
    x = [rng.normal(size=(t, features)).astype("float32") for t in lengths]
    return x, lengths


def used(batcher, epoch):
    plan = batcher.epoch_batches(epoch)
    return np.concatenate(plan)


@pytest.mark.parametrize(
    "max_length, limits",
    [
        (None, [math.inf] * 4),
        (80, [80] * 4),
        ({1: 50, 3: 120}, [math.inf, 50, 50, 120]),
        (lambda e: 40 + 30 * e, [40, 70, 100, 130]),
        (S.PerEpoch([60, 90]), [60, 90, 90, 90]),
    ],
)
def test_each_epoch_uses_exactly_the_sequences_under_max_length(
    max_length, limits
):
    x, lengths = corpus()
    batcher = LengthBatcher(x, max_length=max_length, seed=3)
    for epoch, limit in enumerate(limits):
        served = used(batcher, epoch)
        # every sequence under the limit, each once, none above
        assert (
            sorted(served.tolist()) == np.flatnonzero(lengths <= limit).tolist()
        )
        assert batcher.limit(epoch) == limit


def test_laplace_bins_are_sorted_alternately():
    lengths = np.random.default_rng(1).integers(1, 500, 1000)
    rng = np.random.default_rng(7)
    ordered = _ordering.order(np.arange(1000), lengths, "laplace:.100", rng)
    permutation = np.random.default_rng(7).permutation(1000)
    assert sorted(ordered.tolist()) == list(range(1000))
    for b in range(10):  # 1000 // 100 bins, cut from the permutation
        part = ordered[b * 100 : (b + 1) * 100]
        assert set(part.tolist()) == set(permutation[b * 100 : (b + 1) * 100])
        step = np.diff(lengths[part])
        assert (step >= 0).all() if b % 2 == 0 else (step <= 0).all()
    three = _ordering.order(np.arange(1000), lengths, "laplace:3", rng)
    edges = [0, 333, 666, 1000]
    for b in range(3):
        step = np.diff(lengths[three[edges[b] : edges[b + 1]]])
        assert (step >= 0).all() if b % 2 == 0 else (step <= 0).all()


def test_sorted_random_and_unshuffled_orders():
    x, lengths = corpus(60)
    sorted_ = LengthBatcher(x, ordering="sorted", batch_size=7, seed=0)
    served = used(sorted_, 0)
    assert (np.diff(lengths[served]) >= 0).all()
    reverse = LengthBatcher(x, ordering="sorted_reverse", shuffle=False)
    assert (np.diff(lengths[used(reverse, 0)]) <= 0).all()
    plain = LengthBatcher(x, ordering="random", shuffle=False, batch_size=7)
    assert used(plain, 0).tolist() == list(range(60))
    assert used(plain, 1).tolist() == list(range(60))
    shuffled = LengthBatcher(x, ordering="random", seed=0)
    assert used(shuffled, 0).tolist() != used(shuffled, 1).tolist()


def test_batches_padded_to_the_longest_rounded_with_a_token_cap():
    x, lengths = corpus(400)
    batcher = LengthBatcher(
        x, batch_size=64, max_tokens=2000, pad_to_multiple_of=16, seed=0
    )
    plan = batcher.epoch_batches(0)
    for index, batch in enumerate(plan):
        (xb,) = batcher[index]
        padded = int(math.ceil(lengths[batch].max() / 16) * 16)
        assert xb.shape == (len(batch), padded, 4)
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * padded <= 2000
        for row, i in enumerate(batch):
            np.testing.assert_array_equal(xb[row, : lengths[i]], x[i])
            assert (xb[row, lengths[i] :] == 0).all()
    assert {s[1] % 16 for s in _shapes(batcher, plan)} == {0}
    stats = batcher.stats(0)
    assert stats["sequences"] == 400
    padded_frames = sum(
        len(b) * int(math.ceil(lengths[b].max() / 16) * 16) for b in plan
    )
    assert stats["padded_frames"] == padded_frames
    assert stats["padding_share"] == pytest.approx(
        1 - lengths.sum() / padded_frames
    )


def _shapes(batcher, plan):
    return {batcher[i][0].shape[:2] for i in range(len(plan))}


def test_laplace_pads_at_most_a_fifth_of_random_batching():
    x, lengths = corpus(2000)
    laplace = LengthBatcher(x, seed=0, ordering="laplace:.1000")
    random_ = LengthBatcher(x, seed=0, ordering="random")
    pad_laplace = laplace.stats(0)["padded_frames"] - lengths.sum()
    pad_random = random_.stats(0)["padded_frames"] - lengths.sum()
    assert pad_laplace <= pad_random / 5


def test_padded_input_lengths_mask_and_target_forms():
    rng = np.random.default_rng(0)
    lengths = np.array([5, 9, 3, 7])
    padded = rng.normal(size=(4, 12, 2)).astype("float32")  # junk padding
    frame_y = rng.integers(0, 5, (4, 12))
    batcher = LengthBatcher(
        padded,
        frame_y,
        lengths=lengths,
        batch_size=4,
        shuffle=False,
        ordering="random",
        padding_value=-1.0,
        length_input="lengths",
    )
    (xb, lb), yb = batcher[0]
    assert xb.shape == (4, 9, 2) and yb.shape == (4, 9)
    np.testing.assert_array_equal(lb, lengths)
    assert lb.dtype == np.int32
    assert (xb[0, 5:] == -1).all() and (yb[2, 3:] == -1).all()
    np.testing.assert_array_equal(yb[1], frame_y[1, :9])
    masked = LengthBatcher(
        padded,
        lengths=lengths,
        length_input="mask",
        batch_size=4,
        shuffle=False,
        ordering="random",
    )
    ((xb, mask),) = masked[0]
    np.testing.assert_array_equal(mask, np.arange(9)[None] < lengths[:, None])
    seq_y = [np.arange(n) for n in (2, 6, 1, 4)]
    per_seq = LengthBatcher(
        padded,
        seq_y,
        lengths=lengths,
        batch_size=4,
        shuffle=False,
        ordering="random",
    )
    assert per_seq[0][1].shape == (4, 6)
    labels = LengthBatcher(
        padded,
        np.arange(4),
        lengths=lengths,
        batch_size=2,
        shuffle=False,
        ordering="random",
    )
    np.testing.assert_array_equal(labels[1][1], [2, 3])


class Recording(LengthBatcher):
    """Records the sequences `fit` fetched, per epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fetched = {}

    def batch(self, indices, extra=0):
        self.fetched.setdefault(self.epoch, []).extend(
            np.asarray(indices).tolist()
        )
        return super().batch(indices, extra)


class Counter(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.counts, self.logged = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.n = 0

    def on_train_batch_end(self, batch, logs=None):
        self.n += 1

    def on_epoch_end(self, epoch, logs=None):
        self.counts.append(self.n)
        self.logged.append(logs.get("max_length"))


def sequence_model():
    inputs = keras.Input((None, 4))
    h = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse", steps_per_execution=SPE)
    return model


def test_fit_runs_each_curriculum_epoch_in_full():
    x, lengths = corpus(240)
    y = np.arange(240, dtype="float32")
    batcher = Recording(
        x,
        y,
        batch_size=16,
        max_length={0: 50, 2: None},
        ordering="laplace:.60",
        seed=5,
    )
    counter = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sequence_model().fit(
            batcher,
            callbacks=[batcher, counter],
            epochs=4,
            shuffle=False,
            verbose=0,
        )
    plans = [batcher.epoch_batches(e) for e in range(4)]
    # one batch hook per execution of SPE steps
    assert counter.counts == [math.ceil(len(p) / SPE) for p in plans]
    assert counter.counts[0] < counter.counts[2]
    assert counter.logged == [50.0, 50.0, math.inf, math.inf]
    for epoch in range(4):
        fetched = batcher.fetched[epoch][-sum(len(b) for b in plans[epoch]) :]
        assert fetched == np.concatenate(plans[epoch]).tolist()


def test_resume_knows_the_epoch_and_a_seeded_run_reproduces(tmp_path):
    x, _ = corpus(120)
    y = np.zeros(120, "float32")
    full = Recording(x, y, batch_size=8, max_length={0: 60, 2: 90}, seed=11)
    sequence_model().fit(
        full, callbacks=[full], epochs=4, shuffle=False, verbose=0
    )

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("preempted")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    first = Recording(x, y, batch_size=8, max_length={0: 60, 2: 90}, seed=11)
    model = sequence_model()
    with pytest.raises(RuntimeError):
        model.fit(
            first,
            callbacks=[first, backup, Crash()],
            epochs=4,
            shuffle=False,
            verbose=0,
        )
    resumed = Recording(x, y, batch_size=8, max_length={0: 60, 2: 90}, seed=11)
    sequence_model().fit(
        resumed, callbacks=[resumed, backup], epochs=4, shuffle=False, verbose=0
    )
    for epoch in (2, 3):
        assert (
            resumed.fetched[epoch][-len(full.fetched[epoch]) :]
            == full.fetched[epoch]
        )
    assert 0 not in resumed.fetched or 1 not in resumed.fetched
    start = Recording(x, y, batch_size=8, max_length={0: 60, 2: 90}, seed=11)
    sequence_model().fit(
        start,
        callbacks=[start],
        epochs=4,
        initial_epoch=3,
        shuffle=False,
        verbose=0,
    )
    assert start.fetched[3][-len(full.fetched[3]) :] == full.fetched[3]


def test_warnings_for_fit_shuffle_and_a_missing_callback():
    x, _ = corpus(64)
    y = np.zeros(64, "float32")
    batcher = LengthBatcher(x, y, batch_size=16, seed=0)
    with pytest.warns(RuntimeWarning, match="shuffle=False"):
        sequence_model().fit(batcher, callbacks=[batcher], epochs=1, verbose=0)
    alone = LengthBatcher(x, y, batch_size=16, seed=0)
    with pytest.warns(RuntimeWarning, match="callbacks=\\[batcher\\]"):
        sequence_model().fit(alone, epochs=2, shuffle=False, verbose=0)


def test_spec_augment_reads_the_lengths_in_a_compiled_fit():
    x, lengths = corpus(64, features=8)
    y = np.zeros(64, "float32")
    batcher = LengthBatcher(
        x,
        y,
        batch_size=16,
        seed=0,
        length_input="lengths",
        pad_to_multiple_of=32,
    )
    features = keras.Input((None, 8))
    lens = keras.Input((), dtype="int32")
    h = ktp.layers.SpecAugment(freq_mask_param=2, time_mask_param=5)(
        features, lengths=lens
    )
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model([features, lens], out)
    model.compile("sgd", "mse")
    history = model.fit(
        batcher, callbacks=[batcher], epochs=2, shuffle=False, verbose=0
    )
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.tf_only
def test_tf_dataset_recipe_reaches_the_same_batches():
    x, _ = corpus(100)
    y = np.arange(100, dtype="float32")
    batcher = LengthBatcher(
        x, y, batch_size=8, max_length={0: 50, 1: None}, seed=2
    )
    dataset = batcher.as_tf_dataset()
    for epoch in (0, 1):
        batcher.on_epoch_begin(epoch)
        got = [b[1].numpy().tolist() for b in dataset]
        assert got == [batcher[i][1].tolist() for i in range(len(batcher))]
    for data in (dataset, dataset.map(lambda a, b: (a * 2.0, b))):
        counter = Counter()
        sequence_model().fit(
            data,
            callbacks=[batcher, counter],
            epochs=3,
            verbose=0,
            shuffle=False,
        )
        assert counter.counts == [
            math.ceil(len(batcher.epoch_batches(e)) / SPE) for e in range(3)
        ]


def test_config_round_trip_and_copies_share_the_epoch():
    x, _ = corpus(50)
    batcher = LengthBatcher(
        x,
        batch_size=4,
        max_length={0: 40, 3: 80},
        ordering="laplace:5",
        pad_to_multiple_of=8,
        seed=1,
    )
    config = batcher.get_config()
    import json

    config = json.loads(json.dumps(config))
    rebuilt = LengthBatcher.from_config({**config, "x": x})
    for epoch in range(4):
        assert [b.tolist() for b in rebuilt.epoch_batches(epoch)] == [
            b.tolist() for b in batcher.epoch_batches(epoch)
        ]
    clone = copy.deepcopy(batcher)
    clone.on_epoch_begin(3)  # keras-tuner drives a copy of the callbacks
    assert batcher.epoch == 3 and clone.x is batcher.x


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"x": "abc"}, "x"),
        ({"x": []}, "x"),
        ({"x": [np.zeros((3, 2)), np.zeros((4, 3))]}, "x[1]"),
        ({"x": [np.zeros((0, 2))]}, "x[0]"),
        ({"x": np.zeros((3, 5, 2))}, "lengths"),
        ({"x": np.zeros((2, 5)), "lengths": [3, 6]}, "lengths[1]"),
        ({"x": np.zeros((2, 5)), "lengths": [3]}, "lengths"),
        ({"y": np.zeros(3)}, "y"),
        ({"y": "labels"}, "y"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": None}, "batch_size"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"max_length": 0}, "max_length"),
        ({"max_length": "long"}, "max_length"),
        ({"max_length": {0: 10, 2: -1}}, "max_length[2]"),
        ({"max_length": {-1: 10}}, "max_length"),
        ({"max_length": [10, 0.5]}, "max_length"),
        ({"ordering": "laplace"}, "ordering"),
        ({"ordering": "laplace:.0"}, "ordering"),
        ({"ordering": 3}, "ordering"),
        ({"pad_to_multiple_of": 0}, "pad_to_multiple_of"),
        ({"padding_value": "zero"}, "padding_value"),
        ({"shuffle": 1}, "shuffle"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
        ({"ordering": "laplace:\u00b2"}, "ordering"),
        ({"ordering": "laplace:.\u0663"}, "ordering"),
        ({"length_input": "len"}, "length_input"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    args = {"x": [np.zeros((3, 2)), np.zeros((5, 2))], **kwargs}
    with pytest.raises((ValueError, TypeError), match=re.escape(f"`{name}")):
        LengthBatcher(**args)


def test_bad_values_at_the_first_host_evaluation_are_named():
    x = [np.zeros((3, 2)), np.zeros((5, 2))]
    with pytest.raises(ValueError, match=r"max_length\(1\)"):
        LengthBatcher(
            x, max_length=lambda e: 10 if e == 0 else 0.5
        ).epoch_batches(1)
    with pytest.raises((ValueError, TypeError), match=r"max_length\(0\)"):
        LengthBatcher(x, max_length=lambda e: "x").epoch_batches(0)
    with pytest.raises(ValueError, match=r"max_length\(2\)"):
        LengthBatcher(x, max_length={2: 2}).epoch_batches(2)  # keeps nothing


@pytest.mark.parametrize("max_tokens", [None, 700])
def test_required_batch_size_multiple(max_tokens):
    x, lengths = corpus(203)
    batcher = LengthBatcher(
        x, batch_size=16, max_tokens=max_tokens, seed=0,
        required_batch_size_multiple=4,
    )  # fmt: skip
    plan = batcher.epoch_batches(0)
    assert all(len(b) % 4 == 0 and len(b) <= 16 for b in plan)
    served = np.concatenate(plan)
    assert len(set(served.tolist())) == served.size > 203 - 4
    if max_tokens:
        over = [b for b in plan if len(b) * lengths[b].max() > max_tokens]
        assert all(len(b) == 4 for b in over)  # only forced by the multiple
    with pytest.raises(ValueError, match="`batch_size`"):
        LengthBatcher(x, batch_size=10, required_batch_size_multiple=4)
    with pytest.raises(ValueError, match="required_batch_size_multiple"):
        LengthBatcher(x[:3], required_batch_size_multiple=4).epoch_batches(0)


def test_one_batch_epoch_then_longer_ones():
    # Keras (TF) infers the data signature from the first two batches; an
    # epoch of one batch must still leave the time axis dynamic.
    x, lengths = corpus(60)
    x[0] = x[0][:2]
    y = np.zeros(60, "float32")
    batcher = LengthBatcher(x, y, batch_size=32, max_length={0: 2, 1: None})
    assert len(batcher.epoch_batches(0)) == 1
    counter = Counter()
    sequence_model().fit(
        batcher, callbacks=[batcher, counter], epochs=2, shuffle=False,
        verbose=0,
    )  # fmt: skip
    assert counter.counts == [1, math.ceil(2 / SPE)]


def test_scalar_label_list_seed_in_config_and_messages():
    x = [np.ones((n, 2)) for n in (3, 5, 4)]
    batcher = LengthBatcher(
        x, [0, 1, 2], batch_size=3, shuffle=False, ordering="random"
    )
    np.testing.assert_array_equal(batcher[0][1], [0, 1, 2])
    drawn = LengthBatcher(x, seed=None)
    again = LengthBatcher.from_config({**drawn.get_config(), "x": x})
    for epoch in range(3):
        assert [b.tolist() for b in again.epoch_batches(epoch)] == [
            b.tolist() for b in drawn.epoch_batches(epoch)
        ]
    with pytest.raises(ValueError, match="pass `x` as a list"):
        LengthBatcher(np.zeros((2, 4, 1)))
    with pytest.raises(TypeError, match="an int"):
        LengthBatcher(x, max_length="10")


@pytest.mark.one_backend
def test_keras_tuner_search_runs_every_curriculum_epoch(tmp_path):
    # keras-tuner deep-copies the callbacks of every trial while `fit`
    # iterates the original batcher: the copy must drive it.
    import keras_tuner

    x, _ = corpus(120)
    y = np.zeros(120, "float32")
    batcher = LengthBatcher(x, y, batch_size=16, max_length={0: 50, 1: None})
    counts = []  # the tuner deep-copies callbacks: record outside them

    class Counting(Counter):
        def on_epoch_end(self, epoch, logs=None):
            counts.append(self.n)

        def __deepcopy__(self, memo):
            return Counting()

    def build(hp):
        hp.Int("units", 2, 4)
        return sequence_model()

    tuner = keras_tuner.RandomSearch(
        build, objective="loss", max_trials=2, directory=str(tmp_path)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        tuner.search(
            batcher, epochs=2, callbacks=[batcher, Counting()], shuffle=False,
            verbose=0,
        )  # fmt: skip
    expected = [math.ceil(len(batcher.epoch_batches(e)) / SPE) for e in (0, 1)]
    assert expected[0] < expected[1]
    assert counts == expected * 2  # two trials
