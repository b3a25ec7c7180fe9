"""Length curriculum and laplace batches on speech-like utterances.

The utterances of examples/spec_augment.py (4 classes of chirps and tones
in noise, 40-bin log-mel spectrograms), here with log-normal durations
(median 1 s, 0.3-4 s: 28-398 frames), as real speech corpora have. One
model (SpecAugment, a conv front end, residual blocks with stochastic
depth, masked average pooling) is trained twice:

* random batching: every epoch a random permutation cut into batches of
  32, each padded to its longest utterance;
* `LengthBatcher` with RETURNN's laplace ordering (bins of about 400
  sorted utterances) and a short-first curriculum: utterances up to 1.5 s
  for the first half of the epochs, all of them afterwards.

Prints, per run: seconds per epoch, the padding share of the frames
computed, and the validation accuracy; saves a PNG of the padding per
batch of one epoch.

Run: python examples/length_curriculum.py [--fast] [--png length_curriculum.png]
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from spec_augment import BINS  # noqa: E402
from spec_augment import log_mel  # noqa: E402
from spec_augment import mel_filterbank  # noqa: E402
from spec_augment import utterance  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

SHORT = 150  # frames: 1.5 s


def corpus(n, seed):
    """Log-mel features (a list of (frames, 40) arrays) and labels."""
    rng = np.random.default_rng(seed)
    fb = mel_filterbank()
    labels = rng.integers(0, 4, n)
    seconds = np.clip(rng.lognormal(0.0, 0.6, n), 0.3, 4.0)
    feats = [
        log_mel(utterance(int(c), rng, s), fb).astype("float32")
        for c, s in zip(labels, seconds)
    ]
    return feats, labels


def build(blocks=3):
    feats = keras.Input((None, BINS), name="features")
    lengths = keras.Input((), dtype="int32", name="lengths")
    h = ktp.layers.SpecAugment(
        freq_mask_param=8,
        time_mask_param=15,
        time_mask_ratio=0.2,
        seed=0,
    )(feats, lengths=lengths)
    h = keras.layers.Conv1D(48, 5, padding="same", activation="relu")(h)
    rates = ktp.layers.stochastic_depth_rates(blocks, 0.2)
    for i, rate in enumerate(rates):
        r = keras.layers.Conv1D(48, 5, padding="same", activation="relu")(h)
        r = keras.layers.Conv1D(48, 5, padding="same")(r)
        h = ktp.layers.StochasticDepth(rate, seed=i, name=f"sd_{i}")([h, r])
        h = keras.layers.Activation("relu")(h)
    # frame t of an utterance is real if t < its length
    position = keras.ops.cumsum(keras.ops.ones_like(feats[:, :, 0]), axis=1)
    mask = position <= keras.ops.cast(
        keras.ops.expand_dims(lengths, 1), "float32"
    )
    h = keras.layers.GlobalAveragePooling1D()(h, mask=mask)
    model = keras.Model([feats, lengths], keras.layers.Dense(4)(h))
    model.compile(
        keras.optimizers.Adam(2e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def batcher(x, y, **kwargs):
    return ktp.data.LengthBatcher(
        x, y, batch_size=32, pad_to_multiple_of=16, length_input="lengths",
        seed=0, **kwargs,
    )  # fmt: skip


def run(name, train, valid, epochs):
    keras.utils.set_random_seed(0)
    model = build()
    start = time.perf_counter()
    history = model.fit(
        train,
        validation_data=valid,
        epochs=epochs,
        callbacks=[train],
        shuffle=False,
        verbose=0,
    )
    seconds = (time.perf_counter() - start) / epochs
    stats = [train.stats(e) for e in range(epochs)]
    padded = sum(s["padded_frames"] for s in stats)
    frames = sum(s["frames"] for s in stats)
    print(
        f"{name}: {seconds:.2f} s/epoch, padding {1 - frames / padded:.1%} "
        f"of {padded} frames, val_acc "
        f"{history.history['val_accuracy'][-1]:.4f}"
    )
    return train


def plot(runs, path):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("(install matplotlib to save the plot)")
        return
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.subplots()
    for label, b, epoch in runs:
        lengths = b.x.lengths
        plan = b.epoch_batches(epoch)
        real = [int(lengths[i].sum()) for i in plan]
        step = b.pad_to_multiple_of or 1
        padded = [
            len(i) * int(np.ceil(lengths[i].max() / step) * step) for i in plan
        ]
        ax.plot(np.subtract(padded, real), label=label, marker=".")
    ax.set_xlabel("batch (in order)")
    ax.set_ylabel("padding frames in the batch")
    ax.set_title("Padding per batch, last epoch", fontsize="small")
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    print(f"saved {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--png", default="length_curriculum.png")
    args = parser.parse_args()
    n, epochs = (240, 2) if args.fast else (1200, 10)
    x, y = corpus(n, 0)
    x_va, y_va = corpus(n // 4, 1)
    lengths = np.array([len(f) for f in x])
    print(
        f"{n} utterances of {lengths.min()}-{lengths.max()} frames (median "
        f"{int(np.median(lengths))}), {BINS} log-mel bins; {epochs} epochs"
    )
    valid = batcher(x_va, y_va, ordering="sorted", shuffle=False)
    random_ = run(
        "random batching", batcher(x, y, ordering="random"), valid, epochs
    )
    curriculum = {0: SHORT, max(epochs // 2, 1): None}
    ours = run(
        f"laplace:.400 + curriculum {curriculum}",
        batcher(x, y, ordering="laplace:.400", max_length=curriculum),
        valid,
        epochs,
    )
    plot(
        [("random", random_, epochs - 1), ("laplace", ours, epochs - 1)],
        args.png,
    )


if __name__ == "__main__":
    main()
