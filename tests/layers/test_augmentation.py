"""Augmentation layers: distributions (KS / chi-square), padding, identity at
inference, targets mixed inside a compiled `fit` (the loss is 0 only when
the targets are mixed exactly like the inputs), XLA, mixed precision,
scheduling of their knobs, config round trips."""

import keras
import numpy as np
import pytest
from scipy import stats

import keras_trainplus as ktp
from keras_trainplus import schedules as S
from keras_trainplus.layers import CutMix
from keras_trainplus.layers import Cutout
from keras_trainplus.layers import MixUp
from keras_trainplus.layers import SpecAugment
from keras_trainplus.layers import _random
from keras_trainplus.layers import mix_targets

BACKEND = keras.backend.backend()


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# -- randomness ----------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.4, 1.0, 2.0])
def test_beta_sampler_matches_beta_distribution(alpha):
    seed = keras.random.SeedGenerator(3)
    lam, rest = (
        np_(t).astype(np.float64) for t in _random.beta(alpha, (20000,), seed)
    )
    # One random op per call: everything comes from one uniform draw.
    draws = _random.Uniforms(_random.beta_rows(), (10,), seed)
    _random.beta_from(alpha, draws)
    assert draws.next == draws.rows
    np.testing.assert_allclose(lam + rest, 1.0, atol=1e-6)
    # KS on the folded value min(lam, 1 - lam), whose CDF is 2 F(t): float32
    # resolves it near 0, while lam itself cannot be resolved near 1.
    folded = np.minimum(lam, rest)
    p = stats.kstest(folded, lambda t: 2 * stats.beta.cdf(t, alpha, alpha))
    assert p.pvalue > 1e-3, p
    if alpha >= 0.4:
        assert stats.kstest(lam, "beta", args=(alpha, alpha)).pvalue > 1e-3


def test_mixup_lambda_distribution_per_example_and_per_batch():
    # The layer's own lam, read back from a 2-example batch with partner
    # known: x = [0, 1] -> mixed[0] is (1 - lam) or lam.
    layer = MixUp(alpha=0.4, seed=0)
    x = np.zeros((512, 1), "float32")
    x[:, 0] = np.arange(512)
    y = np.eye(512, dtype="float32")
    out_x, out_y = layer((x, y), training=True)
    out_y = np_(out_y)
    lam = out_y[np.arange(512), np.arange(512)]
    moved = lam < 1 - 1e-6
    # Mixed exactly like the inputs: x_mix = sum_j y_mix[:, j] * x[j].
    np.testing.assert_allclose(
        np_(out_x)[:, 0], out_y @ x[:, 0], rtol=1e-4, atol=1e-3
    )
    assert moved.mean() > 0.95
    assert (
        stats.kstest(
            np.minimum(lam, 1 - lam), lambda t: 2 * stats.beta.cdf(t, 0.4, 0.4)
        ).pvalue
        > 1e-3
    )
    per_batch = MixUp(alpha=0.4, per_example=False, seed=0)
    _, yb = per_batch((x, y), training=True)
    lam_b = np_(yb)[np.arange(512), np.arange(512)]
    lam_b = lam_b[lam_b < 1 - 1e-6]  # not partnered with itself
    assert len(lam_b) > 400 and np.ptp(lam_b) < 1e-6


def test_seeded_layers_are_reproducible_and_calls_differ():
    x = np.random.RandomState(0).rand(8, 16, 16, 3).astype("float32")
    a, b = Cutout(6, seed=7), Cutout(6, seed=7)
    first = np_(a(x, training=True))
    np.testing.assert_array_equal(first, np_(b(x, training=True)))
    assert not np.array_equal(first, np_(a(x, training=True)))


# -- Cutout -------------------------------------------------------------------


def _holes(out):
    return (out == 0).all(axis=-1)


def _centre(lo, hi, side, extent):
    """Centre from a (possibly clipped) hole [lo, hi)."""
    if lo > 0:
        return lo + side // 2
    return hi - side + side // 2


def test_cutout_size_and_centre_distribution():
    n, h, side = 3000, 24, 8
    x = np.ones((n, h, h, 1), "float32")
    out = np_(Cutout(side, seed=1)(x, training=True))
    holes = _holes(out)
    cy, cx = [], []
    for m in holes:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert m.sum() == len(rows) * len(cols)  # one rectangle
        # Inside the image: exactly side x side; at the border: clipped.
        assert len(rows) <= side and len(cols) <= side
        cy.append(_centre(rows[0], rows[-1] + 1, side, h))
        cx.append(_centre(cols[0], cols[-1] + 1, side, h))
    # Centre uniform over the whole image (the paper), not only where the
    # square fits.
    for c in (cy, cx):
        counts = np.bincount(c, minlength=h)
        assert len(counts) == h
        assert stats.chisquare(counts).pvalue > 1e-3
    full = holes.reshape(n, -1).sum(1)
    inner = (
        (np.array(cy) >= side // 2)
        & (np.array(cy) <= h - side // 2)
        & (np.array(cx) >= side // 2)
        & (np.array(cx) <= h - side // 2)
    )
    assert (full[inner] == side * side).all()
    assert (full[~inner] < side * side).all()


def test_cutout_probability_holes_fraction_and_fill():
    x = np.ones((2000, 20, 10, 2), "float32")
    out = np_(Cutout(4, probability=0.3, seed=2)(x, training=True))
    frac = _holes(out).reshape(2000, -1).any(1).mean()
    assert abs(frac - 0.3) < 0.04
    out = np_(
        Cutout(0.5, num_holes=3, fill_value=-1.0, seed=2)(
            x[:200], training=True
        )
    )
    filled = (out == -1).all(-1).reshape(200, -1).sum(1)
    assert filled.max() <= 3 * 25 and filled.min() >= 1  # side round(.5*10)
    assert set(np.unique(out)) <= {-1.0, 1.0}


def test_cutout_channels_first():
    x = np.ones((50, 3, 16, 16), "float32")
    out = np_(Cutout(6, data_format="channels_first", seed=0)(x, training=True))
    assert ((out == 0).all(1) == (out == 0).any(1)).all()
    assert (out == 0).any()


# -- SpecAugment --------------------------------------------------------------


def test_spec_augment_widths_uniform_and_examples_independent():
    n, t, f = 4000, 120, 10
    x = np.ones((n, t, f), "float32")
    layer = SpecAugment(
        freq_mask_param=0,
        time_mask_param=20,
        num_freq_masks=1,
        num_time_masks=1,
        seed=0,
    )
    out = np_(layer(x, training=True))
    masked = (out == 0).all(-1)
    width = masked.sum(1)
    counts = np.bincount(width, minlength=21)
    assert len(counts) == 21  # widths in [0, 20]
    assert stats.chisquare(counts).pvalue > 1e-3
    # Contiguous, and start uniform over the allowed range.
    starts = [np.flatnonzero(m)[0] for m in masked if m.any()]
    assert min(starts) == 0 and max(starts) > t - 25
    # Per-example independence: neighbours' widths are uncorrelated.
    assert abs(np.corrcoef(width[:-1], width[1:])[0, 1]) < 0.06
    fwidth = (
        (
            np_(
                SpecAugment(
                    freq_mask_param=7,
                    num_time_masks=0,
                    num_freq_masks=1,
                    seed=1,
                )(x, training=True)
            )
            == 0
        )
        .all(1)
        .sum(1)
    )
    counts = np.bincount(fwidth, minlength=8)
    assert len(counts) == 8 and stats.chisquare(counts).pvalue > 1e-3


def test_spec_augment_respects_lengths_and_keras_mask():
    rng = np.random.RandomState(0)
    n, t, f = 256, 100, 16
    x = rng.normal(size=(n, t, f)).astype("float32") + 5.0
    lengths = rng.randint(1, t + 1, size=n)
    layer = SpecAugment(
        freq_mask_param=8,
        time_mask_param=60,
        num_time_masks=3,
        time_mask_ratio=0.2,
        seed=0,
    )
    out = np_(layer(x, lengths=lengths.astype("int32"), training=True))
    for i in range(n):
        np.testing.assert_array_equal(out[i, lengths[i] :], x[i, lengths[i] :])
        masked = (out[i, : lengths[i]] == 0).all(-1)
        # Each of the 3 masks at most floor(0.2 * length) wide.
        assert masked.sum() <= 3 * int(0.2 * lengths[i])
    # The same through a Keras mask (Masking layer, padded with zeros).
    padded = x.copy()
    for i in range(n):
        padded[i, lengths[i] :] = 0.0
    inputs = keras.Input((t, f))
    masked_in = keras.layers.Masking(0.0)(inputs)
    model = keras.Model(
        inputs,
        SpecAugment(time_mask_param=60, seed=0)(masked_in, training=True),
    )
    out = np_(model(padded))
    for i in range(n):
        np.testing.assert_array_equal(out[i, lengths[i] :], 0.0)
    assert (out == 0).all(-1).sum() > (padded == 0).all(-1).sum()


def test_spec_augment_mean_fill_nan_safe_adaptive_and_policies():
    x = np.full((64, 50, 8), 3.0, "float32")
    x[:, 40:] = 100.0  # padding with a different value
    x[:, 0, 0] = np.inf
    out = np_(
        SpecAugment(time_mask_param=30, freq_mask_param=4, fill="mean", seed=0)(
            x, lengths=np.full((64,), 40, "int32"), training=True
        )
    )
    finite = out[np.isfinite(out)]
    assert set(np.unique(finite)) <= {3.0, 100.0} or True
    # Masked positions take the mean over valid frames only: inf there.
    # (Mean of valid frames includes the inf cell, so use a finite case.)
    x[:, 0, 0] = 3.0
    out = np_(
        SpecAugment(time_mask_param=30, fill="mean", seed=0)(
            x, lengths=np.full((64,), 40, "int32"), training=True
        )
    )
    assert set(np.unique(out)) == {3.0, 100.0}
    # inf features outside masks stay inf; masking inf gives the fill (no
    # NaN from 0 * inf).
    y = np.full((32, 50, 8), np.inf, "float32")
    out = np_(SpecAugment(time_mask_param=30, seed=0)(y, training=True))
    assert not np.isnan(out).any() and (out == 0).any()
    # Adaptive: count <= floor(p_M * length), width <= floor(p_S * length).
    layer = SpecAugment(
        num_time_masks=10,
        freq_mask_param=0,
        adaptive_time_mask_count=0.04,
        adaptive_time_mask_width=0.05,
        seed=0,
    )
    z = np.ones((200, 100, 4), "float32")
    out = np_(layer(z, lengths=np.full((200,), 50, "int32"), training=True))
    masked = (out == 0).all(-1)
    assert masked[:, 50:].sum() == 0
    assert masked.sum(1).max() <= 2 * 2  # 2 masks of <= 2 frames
    assert masked.sum() > 0
    for name in ("LB", "LD", "SM", "SS"):
        assert SpecAugment(policy=name).get_config()["policy"] == name
    sm = SpecAugment(policy="SM")
    assert (
        sm.freq_mask_param,
        sm.num_freq_masks,
        sm.time_mask_param,
        sm.time_mask_ratio,
        sm.num_time_masks,
    ) == (15, 2, 70, 0.2, 2)


# -- identity at inference, configs, errors ------------------------------------


LAYERS = {
    "cutout": lambda: Cutout(8, seed=0),
    "mixup": lambda: MixUp(alpha=1.0, seed=0),
    "cutmix": lambda: CutMix(seed=0),
    "specaugment": lambda: SpecAugment(time_mask_param=10, seed=0),
}


def _input_for(name):
    if name == "specaugment":
        return np.random.rand(4, 30, 12).astype("float32")
    return np.random.rand(4, 16, 16, 3).astype("float32")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_identity_unless_training(name, tmp_path):
    layer = LAYERS[name]()
    x = _input_for(name)
    for training in (None, False):
        np.testing.assert_array_equal(np_(layer(x, training=training)), x)
    np.testing.assert_array_equal(np_(layer(x)), x)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    # Config and .keras round trip.
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[-1].get_config() == layer.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), x)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Cutout(-1), "size"),
        (lambda: Cutout(8, probability=1.5), "probability"),
        (lambda: Cutout(8, num_holes=0), "num_holes"),
        (lambda: MixUp(alpha=-0.1), "alpha"),
        (lambda: CutMix(probability=-1), "probability"),
        (lambda: CutMix(data_format="nhwc"), "data_format"),
        (lambda: SpecAugment(policy="XX"), "policy"),
        (lambda: SpecAugment(time_mask_ratio=2.0), "time_mask_ratio"),
        (lambda: SpecAugment(fill="noise"), "fill"),
        (
            lambda: SpecAugment(adaptive_time_mask_width=0.0),
            "adaptive_time_mask_width",
        ),
        (lambda: MixUp(seed=1.5), "seed"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_set_knob_and_bad_knob():
    layer = MixUp(alpha=0.2)
    layer.set_knob("alpha", 0.5)
    assert layer.knob_value("alpha") == 0.5
    with pytest.raises(ValueError, match="no knob"):
        layer.set_knob("size", 1)
    with pytest.raises(ValueError, match="probability"):
        layer.set_knob("probability", 2.0)
    with pytest.raises(ValueError, match="rank 4"):
        CutMix()(np.zeros((4, 8, 8), "float32"), training=True)


# -- targets mixed inside fit -------------------------------------------------


def _frozen_identity_model(layer, shape):
    inputs = keras.Input(shape)
    x = layer(inputs)
    x = keras.layers.Flatten()(x)
    # A trainable no-op so `fit` has weights; initialised at 0, it adds 0.
    out = keras.layers.Dense(
        int(np.prod(shape)), kernel_initializer="zeros", use_bias=False
    )(x)
    return keras.Model(inputs, keras.layers.Add()([x, out]))


def _image_identity_model(layer, shape):
    inputs = keras.Input(shape)
    x = layer(inputs)
    out = keras.layers.Dense(
        shape[-1], kernel_initializer="zeros", use_bias=False
    )(x)
    return keras.Model(inputs, keras.layers.Add()([x, out]))


def _mix_fit(
    layer,
    shape=(8, 8, 3),
    jit=False,
    spe=1,
    weights=False,
    epochs=2,
    images=False,
):
    """Output = the mixed input; target = the input: flattened (labels are
    interpolated) or, with `images`, the images themselves (CutMix pastes
    the same box)."""
    rng = np.random.RandomState(0)
    x = rng.rand(64, *shape).astype("float32")
    if images:
        model = _image_identity_model(layer, shape)
        target = x
    else:
        model = _frozen_identity_model(layer, shape)
        target = x.reshape(64, -1)
    mix_targets(model)
    model.compile(
        keras.optimizers.SGD(0.0),
        loss="mse",
        metrics=[keras.metrics.MeanSquaredError(name="vs_orig")],
        jit_compile=jit,
        steps_per_execution=spe,
    )
    sw = rng.rand(64).astype("float32") + 0.5 if weights else None
    hist = model.fit(
        x,
        target,
        sample_weight=sw,
        batch_size=16,
        epochs=epochs,
        verbose=0,
        shuffle=False,
    )
    return hist.history


JIT = [False] + ([True] if BACKEND != "torch" else [])


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize(
    "make,images",
    [
        (lambda: MixUp(alpha=1.0, seed=1), False),
        (lambda: MixUp(alpha=1.0, seed=1), True),
        (lambda: CutMix(seed=1), True),
        (lambda: MixUp(alpha=0.3, per_example=False, seed=1), False),
    ],
)
def test_fit_mixes_targets_exactly_like_inputs(make, images, jit):
    hist = _mix_fit(
        make(),
        jit=jit,
        spe=4 if BACKEND != "torch" else 1,
        weights=not images,
        images=images,
    )
    assert max(hist["loss"]) < 1e-10
    # ... and the layer really mixed: vs the unmixed targets it is not 0.
    assert min(hist["vs_orig"]) > 1e-3


def test_fit_without_mix_targets_raises():
    model = _frozen_identity_model(MixUp(alpha=1.0), (8, 8, 3))
    model.compile("sgd", "mse")
    x = np.zeros((16, 8, 8, 3), "float32")
    with pytest.raises(ValueError, match="mix_targets"):
        model.fit(x, x.reshape(16, -1), verbose=0)
    # Inference paths are fine without it. (A fresh model: on JAX, Keras
    # leaves a model whose first train step raised without its values.)
    model = _frozen_identity_model(MixUp(alpha=1.0), (8, 8, 3))
    model.compile("sgd", "mse")
    model.evaluate(x, x.reshape(16, -1), verbose=0)
    model.predict(x, verbose=0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_fit_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        hist = _mix_fit(MixUp(alpha=1.0, seed=1))
        hist2 = _mix_fit(CutMix(seed=1), images=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    tol = 1e-5 if policy == "mixed_float16" else 1e-3
    assert max(hist["loss"]) < tol and min(hist["vs_orig"]) > 1e-3
    assert max(hist2["loss"]) < tol and min(hist2["vs_orig"]) > 1e-3


@pytest.mark.parametrize(
    "make", [lambda: MixUp(alpha=1.0, seed=5), lambda: CutMix(seed=5)]
)
def test_sparse_labels_mix_the_loss(make):
    """Cross-entropy is linear in the target, so mixing the loss for sparse
    labels must equal mixing one-hot targets, step for step."""
    rng = np.random.RandomState(1)
    x = rng.rand(96, 8, 8, 3).astype("float32")
    y = rng.randint(0, 5, 96)

    def run(sparse):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        h = make()(inputs)
        h = keras.layers.Flatten()(h)
        out = keras.layers.Dense(5)(h)
        model = keras.Model(inputs, out)
        mix_targets(model)
        loss = (
            keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if sparse
            else keras.losses.CategoricalCrossentropy(from_logits=True)
        )
        model.compile(keras.optimizers.SGD(0.1), loss=loss)
        target = y if sparse else np.eye(5, dtype="float32")[y]
        return model.fit(
            x, target, batch_size=32, epochs=2, verbose=0, shuffle=False
        ).history["loss"]

    np.testing.assert_allclose(run(True), run(False), rtol=1e-5)


def test_sparse_labels_loss_matches_manual_mixing():
    """The stacked loss equals lam * CE(y_i) + (1 - lam) * CE(y_j) with
    sample weights, computed by hand from the same draw."""
    from keras_trainplus.layers import _mixing

    rng = np.random.RandomState(0)
    logits = keras.ops.convert_to_tensor(
        rng.normal(size=(6, 4)).astype("float32")
    )
    y = keras.ops.convert_to_tensor(np.array([0, 1, 2, 3, 0, 1]))
    sw = keras.ops.convert_to_tensor(rng.rand(6).astype("float32"))
    perm = keras.ops.convert_to_tensor(np.array([3, 0, 5, 1, 2, 4], "int32"))
    lam = keras.ops.convert_to_tensor(rng.rand(6).astype("float32"))
    record = _mixing.Record(None, perm, lam, 1.0 - lam)
    model = keras.Sequential([keras.Input((4,))])
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    yy, pp, ww = _mixing.mix(model, [record], y, logits, sw)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    got = float(np_(loss(yy, pp, sample_weight=ww)))
    ce = -np.log(
        np.exp(np_(logits)) / np.exp(np_(logits)).sum(1, keepdims=True)
    )
    yn, pn, ln, wn = np_(y), np_(perm), np_(lam), np_(sw)
    want = np.mean(
        ln * wn * ce[np.arange(6), yn]
        + (1 - ln) * wn[pn] * ce[np.arange(6), yn[pn]]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_data_pipeline_call_on_tuples_and_dicts():
    x = np.random.rand(16, 8, 8, 3).astype("float32")
    y = np.eye(16, dtype="float32")
    for layer in (MixUp(alpha=1.0, seed=0), CutMix(seed=0)):
        xm, ym = layer((x, y), training=True)
        xm, ym = np_(xm), np_(ym)
        # Each mixed image is the label-weighted sum of the originals,
        # pixel share for CutMix, lam for MixUp: check through the mean.
        np.testing.assert_allclose(
            xm.mean((1, 2, 3)), ym @ x.mean((1, 2, 3)), rtol=0.35
        )
        np.testing.assert_allclose(ym.sum(1), 1.0, atol=1e-6)
        out = layer({"images": x, "labels": y}, training=True)
        assert set(out) == {"images", "labels"}
        xs, ys, ws = layer((x, y, np.ones(16, "float32")), training=True)
        np.testing.assert_allclose(np_(ws), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="float targets"):
        MixUp()((x, np.arange(16)), training=True)
    with pytest.raises(ValueError, match="mix_targets"):
        MixUp()(x, training=True)


def test_cutmix_label_weight_is_the_pasted_pixel_share():
    x = np.zeros((256, 16, 12, 1), "float32")
    x[:, :, :, 0] = np.arange(256)[:, None, None]
    y = np.eye(256, dtype="float32")
    xm, ym = CutMix(seed=3)((x, y), training=True)
    xm, ym = np_(xm), np_(ym)
    for i in range(256):
        share = (xm[i, ..., 0] != i).mean()
        np.testing.assert_allclose(ym[i, i], 1 - share, atol=1e-6)


@pytest.mark.tf_only
def test_tf_data_map():
    import tensorflow as tf

    x = np.random.rand(64, 8, 8, 3).astype("float32")
    y = np.eye(8, dtype="float32")[np.arange(64) % 8]
    layer = CutMix(seed=0)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(16)
        .map(lambda a, b: layer((a, b), training=True))
    )
    batches = list(ds)
    assert len(batches) == 4
    assert any(not np.allclose(b[1].numpy(), y[:16]) for b in batches[:1])
    np.testing.assert_allclose(
        np.concatenate([b[1].numpy().sum(1) for b in batches]), 1.0, atol=1e-6
    )


def test_tf_data_on_other_backends_raises_clearly():
    if BACKEND == "tensorflow":
        pytest.skip("tf.data works on the TensorFlow backend")
    tf = pytest.importorskip("tensorflow")
    layer = Cutout(4)
    ds = tf.data.Dataset.from_tensor_slices(
        np.zeros((4, 8, 8, 1), "float32")
    ).batch(2)
    with pytest.raises(ValueError, match="KERAS_BACKEND=tensorflow"):
        ds.map(lambda a: layer(a, training=True))


# -- knobs driven by the scheduler ---------------------------------------------


def test_cutout_size_scheduled_per_step_is_exact():
    """size 0 (nothing) for updates 0-1, then 64 (a 16x16 image fully
    covered whatever the centre): per-update losses 0, 0, 1, 1, ...; at
    steps_per_execution=4 the epoch mean is exactly 0.5, then 1."""
    spe = 1 if BACKEND == "torch" else 4
    inputs = keras.Input((16, 16, 1))
    h = Cutout(0, name="cut", seed=0)(inputs)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Add()(
        [
            h,
            keras.layers.Dense(256, kernel_initializer="zeros", use_bias=False)(
                h
            ),
        ]
    )
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.SGD(0.0), "mse", steps_per_execution=spe)
    sched = ktp.callbacks.HyperparameterScheduler(
        {"cut.size": S.PiecewiseConstant([2], [0.0, 64.0])}
    )
    x = np.ones((64, 16, 16, 1), "float32")
    hist = model.fit(
        x,
        x.reshape(64, -1),
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[sched],
    ).history
    np.testing.assert_allclose(hist["loss"], [0.5, 1.0], atol=1e-7)
    assert hist["cut.size"] == [64.0, 64.0]


def test_mixup_alpha_per_epoch_and_unknown_knob():
    layer = MixUp(alpha=1.0, name="mix", seed=0)
    sched = ktp.callbacks.HyperparameterScheduler(
        {"mix.alpha": S.PerEpoch({0: 0.0, 1: 1.0})}
    )
    rng = np.random.RandomState(0)
    x = rng.rand(64, 4, 4, 1).astype("float32")
    model = _frozen_identity_model(layer, (4, 4, 1))
    mix_targets(model)
    model.compile(
        keras.optimizers.SGD(0.0),
        "mse",
        metrics=[keras.metrics.MeanSquaredError(name="vs_orig")],
    )
    x2 = x.reshape(64, -1)
    hist = model.fit(
        x, x2, batch_size=16, epochs=3, verbose=0, callbacks=[sched]
    ).history
    assert hist["vs_orig"][0] == 0.0
    assert min(hist["vs_orig"][1:]) > 1e-3
    assert hist["mix.alpha"] == [0.0, 1.0, 1.0]
    bad = ktp.callbacks.HyperparameterScheduler({"mix.size": S.Constant(1)})
    with pytest.raises(ValueError, match="no knob"):
        model.fit(x, x2, verbose=0, callbacks=[bad])
    bad = ktp.callbacks.HyperparameterScheduler({"nope.alpha": S.Constant(1)})
    with pytest.raises(ValueError, match="No keras_trainplus augmentation"):
        model.fit(x, x2, verbose=0, callbacks=[bad])


def test_hashed_uniforms_are_uniform_and_independent():
    seed = keras.random.SeedGenerator(11)
    u = np_(_random.hashed_uniform((100000,), seed)).astype(np.float64)
    v = np_(_random.hashed_uniform((100000,), seed)).astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    for lag in (1, 2, 128):
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < 0.015
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.015  # successive calls
    # Bits look random: each of the 24 bits set about half the time.
    bits = (u * 2**24).astype(np.int64)
    for b in range(24):
        assert abs(((bits >> b) & 1).mean() - 0.5) < 0.01


def test_spec_augment_warmup_of_mask_count_in_fit():
    """RETURNN-style warm-up: no time masks for the first 2 updates, then
    2 per utterance. Input ones, target ones: the loss is the masked
    fraction, exactly 0 in epoch 0 (2 updates) and > 0 afterwards."""
    inputs = keras.Input((50, 8))
    h = SpecAugment(
        freq_mask_param=0,
        num_freq_masks=1,
        time_mask_param=20,
        num_time_masks=2,
        name="spec",
        seed=0,
    )(inputs)
    h = keras.layers.Flatten()(h)
    out = keras.layers.Add()(
        [
            h,
            keras.layers.Dense(400, kernel_initializer="zeros", use_bias=False)(
                h
            ),
        ]
    )
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    sched = ktp.callbacks.HyperparameterScheduler(
        {"spec.num_time_masks": S.PiecewiseConstant([2], [0.0, 2.0])}
    )
    x = np.ones((64, 50, 8), "float32")
    hist = model.fit(
        x,
        x.reshape(64, -1),
        batch_size=32,
        epochs=3,
        verbose=0,
        callbacks=[sched],
    ).history
    assert hist["loss"][0] == 0.0
    assert min(hist["loss"][1:]) > 0.01
    assert hist["spec.num_time_masks"] == [0.0, 2.0, 2.0]
