"""A badly initialised deep network next to the fixed one, seen by
`TrainingMonitor` on real data.

Both learn scikit-learn's digits (1200 training images, 597 held out) with
the same SGD and data order:

* **bad**: 10 hidden layers of 64 sigmoid units with a small Gaussian
  initialisation (stddev 0.05): going back through a layer multiplies the
  gradient by the sigmoid's slope (at most 1/4) and by small weights, so
  the first layers get nearly nothing: vanishing gradients (Glorot and
  Bengio 2010);
* **fixed**: the same depth with ReLU and He initialisation (He et al.
  2015), which keeps the gradient's scale from layer to layer.

The monitor records every 5th update. The script prints each model's
held-out accuracy and `diagnose()` report, and saves the heat maps of both
(`monitor.plot`) and a side-by-side PNG of their gradient norms and
update/weight ratios on one colour scale.

Run: python examples/training_monitor.py [--fast] [--out DIR]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

DEPTH = 10


def data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[:1200], order[1200:]
    return (x[train], y[train]), (x[val], y[val])


def build(fixed):
    keras.utils.set_random_seed(0)
    if fixed:
        kwargs = {"activation": "relu", "kernel_initializer": "he_normal"}
    else:
        init = keras.initializers.RandomNormal(stddev=0.05)
        kwargs = {"activation": "sigmoid", "kernel_initializer": init}
    layers = [keras.Input((64,))]
    layers += [
        keras.layers.Dense(64, name=f"hidden_{i}", **kwargs)
        for i in range(DEPTH)
    ]
    layers.append(keras.layers.Dense(10, name="logits"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run(fixed, epochs):
    train, val = data()
    model = build(fixed)
    monitor = ktp.callbacks.TrainingMonitor(every_n_steps=5, warn=False)
    model.fit(
        *train, batch_size=32, epochs=epochs, verbose=0, shuffle=False,
        validation_data=val, callbacks=[monitor],
    )  # fmt: skip
    _, accuracy = model.evaluate(*val, verbose=0)
    return monitor, accuracy


def side_by_side(monitors, path):
    from matplotlib import colors
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    for row, stat in enumerate(("grad_norm", "update_ratio")):
        data = [monitors[k].history[stat] for k in ("bad", "fixed")]
        values = np.concatenate([d.ravel() for d in data])
        values = values[np.isfinite(values) & (values > 0)]
        norm = colors.LogNorm(values.min(), values.max())
        for col, (name, d) in enumerate(zip(("bad", "fixed"), data)):
            ax = axes[row, col]
            image = ax.imshow(d.T, aspect="auto", norm=norm, cmap="viridis")
            ax.set_title(f"{name}: {stat}")
            names = monitors[name].layer_names
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set_xlabel("record (every 5th update)")
        fig.colorbar(image, ax=axes[row, :].tolist())
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    epochs = 2 if args.fast else 12
    os.makedirs(args.out, exist_ok=True)
    monitors = {}
    for name, fixed in (("bad", False), ("fixed", True)):
        monitor, accuracy = run(fixed, epochs)
        monitors[name] = monitor
        print(f"== {name}: held-out accuracy {accuracy:.3f}")
        print(monitor.diagnose())
        grad = monitor.history["grad_norm"]
        print(
            "median gradient norm, first / last hidden layer: "
            f"{np.median(grad[:, 0]):.2e} / {np.median(grad[:, DEPTH - 1]):.2e}"
        )
        monitor.plot(os.path.join(args.out, f"training_monitor_{name}.png"))
    side_by_side(
        monitors, os.path.join(args.out, "training_monitor_side_by_side.png")
    )
    print(f"heat maps written to {args.out}")


if __name__ == "__main__":
    main()
