"""`EMAWarmup`: timm `ModelEmaV3`'s decay warmup, capped by the decay."""

import numpy as np
import pytest
from keras import ops

from keras_trainplus import schedules as S


def _timm_decay(t, decay, gamma, power, min_decay):
    """timm ModelEmaV3.get_decay for EMA update t (its step - 1), t >= 1;
    0.0 (a copy) at t = 0."""
    if t <= 0:
        return 0.0
    value = 1 - (1 + t / gamma) ** -power
    return max(min(value, decay), min_decay)


@pytest.mark.parametrize(
    "gamma, power, min_decay", [(1.0, 2 / 3, 0.0), (3.0, 0.75, 0.2)]
)
def test_matches_the_formula_on_the_host_and_in_graph(gamma, power, min_decay):
    decay, steps = 0.999, 5000
    schedule = S.EMAWarmup(gamma, power, min_decay)
    expected = np.array(
        [_timm_decay(t, decay, gamma, power, min_decay) for t in range(steps)]
    )
    expected[0] = min(max(0.0, min_decay), decay)  # t = 0: the formula's 0
    host = np.array(
        [float(schedule.evaluate(t, base=decay)) for t in range(steps)]
    )
    np.testing.assert_allclose(host, expected, rtol=1e-12, atol=1e-15)
    graph = ops.convert_to_numpy(
        schedule.evaluate(ops.arange(steps), base=ops.convert_to_tensor(decay))
    )
    np.testing.assert_allclose(graph, expected, rtol=1e-6)
    assert float(schedule.evaluate(10**6, base=decay)) == decay  # the cap


def test_config_round_trip_and_errors():
    schedule = S.EMAWarmup(2.0, 0.75, 0.1)
    config = schedule.get_config()
    assert S.EMAWarmup.from_config(config).get_config() == config
    for kwargs, name in (
        ({"warmup_gamma": 0.0}, "warmup_gamma"),
        ({"warmup_power": -1.0}, "warmup_power"),
        ({"min_decay": 1.0}, "min_decay"),
        ({"min_decay": "0.1"}, "min_decay"),
    ):
        with pytest.raises((ValueError, TypeError), match=name):
            S.EMAWarmup(**kwargs)
    with pytest.raises(ValueError, match="base"):
        S.EMAWarmup()(3)
