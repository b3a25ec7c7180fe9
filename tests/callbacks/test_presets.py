"""WarmupDecayLR / PerEpochLR / OneCycleLR recipes, checked through a
compiled fit against formulas written independently here."""

import math

import keras
import numpy as np
import pytest
from helpers import fit_probe
from helpers import graph_rtol
from helpers import probe_model
from helpers import relative_error
from helpers import sgd_applied_lrs
from helpers import spe_values

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S

N = 64


def run(callback, epochs=1, spe=1, n=N):
    model = probe_model(
        n, keras.optimizers.SGD(0.5, momentum=0.0), steps_per_execution=spe
    )
    history = fit_probe(model, n, [callback], epochs=epochs)
    return sgd_applied_lrs(model), history


@pytest.mark.parametrize("spe", spe_values())
def test_transformer_schedule_is_exact(spe):
    d_model, warmup = 512, 16
    lrs, _ = run(C.WarmupDecayLR.transformer(d_model, warmup), spe=spe)
    t = np.arange(1, N + 1, dtype=np.float64)
    noam = d_model**-0.5 * np.minimum(t**-0.5, t * warmup**-1.5)
    assert relative_error(lrs, noam) < 1e-6


def test_bert_warmup_fraction_and_linear_decay_from_fit_length():
    lrs, _ = run(
        C.WarmupDecayLR(1e-3, warmup_steps=0.25, decay="linear"), epochs=2
    )
    w, total = 16, N
    i = np.arange(N)
    bert = np.where(i < w, 1e-3 * i / w, 1e-3 * (total - i) / (total - w))
    np.testing.assert_allclose(lrs, bert, rtol=1e-6, atol=1e-12)


def test_cosine_with_warmup():
    lrs, _ = run(C.WarmupDecayLR(2e-3, 8, "cosine", final_lr=1e-5))
    i = np.arange(N)
    cos = 1e-5 + (2e-3 - 1e-5) * (1 + np.cos(np.pi * (i - 8) / (N - 8))) / 2
    expected = np.where(i < 8, 2e-3 * i / 8, cos)
    np.testing.assert_allclose(lrs, expected, rtol=graph_rtol(), atol=1e-12)


def test_step_and_exponential_decay_and_exponential_warmup():
    lrs, _ = run(
        C.WarmupDecayLR(
            1e-2,
            4,
            "step",
            decay_steps=10,
            decay_rate=0.5,
            warmup="exponential",
            initial_lr=1e-4,
        )
    )
    i = np.arange(N)
    warm = 1e-4 * (1e-2 / 1e-4) ** (i / 4)
    expected = np.where(i < 4, warm, 1e-2 * 0.5 ** ((i - 4) // 10))
    assert relative_error(lrs, expected) < 1e-6
    lrs, _ = run(
        C.WarmupDecayLR(1e-2, 0, "exponential", decay_steps=10, decay_rate=0.3)
    )
    assert relative_error(lrs, 1e-2 * 0.3 ** (i / 10)) < 1e-6


def test_constant_after_warmup_and_inverse_sqrt_timescale():
    lrs, _ = run(C.WarmupDecayLR(1e-3, 10))
    i = np.arange(N)
    np.testing.assert_allclose(lrs, np.minimum(i / 10, 1) * 1e-3, rtol=1e-6)
    lrs, _ = run(C.WarmupDecayLR(1e-3, 0, "inverse_sqrt", decay_steps=4))
    assert relative_error(lrs, 1e-3 * np.sqrt(4 / (4 + i))) < 1e-6


@pytest.mark.parametrize("spe", spe_values())
def test_per_epoch_list_dict_resets_and_warmup_shape(spe):
    lrs, history = run(C.PerEpochLR([3e-4, 6e-4, 1e-3]), epochs=4, spe=spe)
    per_epoch = np.repeat([3e-4, 6e-4, 1e-3, 1e-3], N // 4)
    np.testing.assert_allclose(lrs, per_epoch, rtol=1e-6)
    assert history.history["learning_rate"] == pytest.approx(
        [3e-4, 6e-4, 1e-3, 1e-3]
    )

    shape = S.Linear(0.5, 1.0, 8)
    lrs, _ = run(
        C.PerEpochLR({1: 1e-3, 2: 5e-4, 3: 1e-3}, step_shape=shape),
        epochs=4,
        spe=spe,
    )
    base = np.repeat([0.5, 1e-3, 5e-4, 1e-3], N // 4)  # 0.5: optimizer's LR
    factor = np.array([shape(i) for i in range(N)])
    np.testing.assert_allclose(lrs, base * factor, rtol=1e-6)


def test_one_cycle_length_from_fit_and_explicit_forms():
    a, _ = run(C.OneCycleLR(0.1, cycle_momentum=False), epochs=4)
    b, _ = run(
        C.OneCycleLR(
            0.1, epochs=4, steps_per_epoch=N // 4, cycle_momentum=False
        ),
        epochs=4,
    )
    c, _ = run(C.OneCycleLR(0.1, total_steps=N, cycle_momentum=False))
    expected = np.array([S.OneCycle(0.1, N)(i) for i in range(N)])
    for lrs in (a, b, c):
        assert relative_error(lrs, expected) < graph_rtol()
    # torch conventions: starts at max/25, peaks at update 0.3*T - 1 and
    # ends exactly at max/25/1e4.
    assert expected[0] == pytest.approx(0.1 / 25)
    assert expected[int(0.3 * N) - 1] <= 0.1
    assert expected[-1] == pytest.approx(0.1 / 25 / 1e4)


def test_one_cycle_shorter_fit_than_total_is_allowed():
    lrs, _ = run(C.OneCycleLR(0.1, total_steps=4 * N, cycle_momentum=False))
    full = S.OneCycle(0.1, 4 * N)
    assert relative_error(lrs, [full(i) for i in range(N)]) < graph_rtol()


def test_unknown_length_needs_total_steps():
    def gen():
        while True:
            yield np.eye(4, dtype="float32")[:1], np.zeros((1, 1), "float32")

    model = probe_model(4, keras.optimizers.SGD(0.1))
    data = keras.utils.PyDataset  # noqa: F841  (documented alternative)
    with pytest.raises(ValueError, match="steps per epoch"):
        model.fit(
            gen(),
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[C.OneCycleLR(0.1, cycle_momentum=False)],
        )
    with pytest.raises(ValueError, match="steps per epoch"):
        model.fit(
            gen(),
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[C.WarmupDecayLR(0.1, 0.1, "linear")],
        )
    # With explicit lengths it runs.
    model.fit(
        gen(),
        epochs=1,
        steps_per_epoch=5,
        verbose=0,
        shuffle=False,
        callbacks=[C.WarmupDecayLR(0.1, 2, "cosine", total_steps=5)],
    )


def test_warmup_longer_than_run_is_an_error():
    with pytest.raises(ValueError, match="shorter than the run"):
        run(C.WarmupDecayLR(1e-3, 100, "linear"))
    with pytest.raises(ValueError, match="shorter than the run"):
        C.WarmupDecayLR(1e-3, 10, "cosine", total_steps=10)


def test_transformer_arguments_are_checked():
    with pytest.raises(ValueError, match="d_model"):
        C.WarmupDecayLR.transformer(0)
    with pytest.raises(ValueError, match="warmup_steps"):
        C.WarmupDecayLR.transformer(512, warmup_steps=1)
    peak = 1 / math.sqrt(512 * 4000)
    cb = C.WarmupDecayLR.transformer(512)
    assert cb.peak_lr == pytest.approx(peak)
