"""`SWALR` against torch's `torch.optim.swa_utils.SWALR`, per update, on
the host and inside a compiled step."""

import numpy as np
import pytest
from keras import ops

from keras_trainplus import schedules as S


def _torch_lrs(base, swa_lr, anneal_steps, strategy, steps):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import SWALR as TorchSWALR

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base)
    scheduler = TorchSWALR(
        optimizer,
        swa_lr=swa_lr,
        anneal_epochs=anneal_steps,
        anneal_strategy=strategy,
    )
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_steps", [0, 1, 7, 30])
def test_matches_torch_swalr_per_update(strategy, anneal_steps):
    base, swa_lr, steps = 0.08, 0.005, 45
    expected = _torch_lrs(base, swa_lr, anneal_steps, strategy, steps)
    schedule = S.SWALR(swa_lr, anneal_steps, strategy)
    host = np.array(
        [float(schedule.evaluate(i, base=base)) for i in range(steps)]
    )
    np.testing.assert_allclose(host, expected, rtol=1e-9)
    graph = ops.convert_to_numpy(
        schedule.evaluate(ops.arange(steps), base=ops.convert_to_tensor(base))
    )
    np.testing.assert_allclose(graph, expected, rtol=1e-6)


def test_config_round_trip_and_errors():
    schedule = S.SWALR(0.01, 5, "linear")
    assert S.SWALR.from_config(schedule.get_config()).get_config() == (
        schedule.get_config()
    )
    for kwargs, name in (
        ({"swa_lr": -1.0}, "swa_lr"),
        ({"swa_lr": float("nan")}, "swa_lr"),
        ({"swa_lr": 0.1, "anneal_steps": -1}, "anneal_steps"),
        ({"swa_lr": 0.1, "anneal_steps": 2.5}, "anneal_steps"),
        ({"swa_lr": 0.1, "anneal_strategy": "cosinus"}, "anneal_strategy"),
    ):
        with pytest.raises((ValueError, TypeError), match=name):
            S.SWALR(**kwargs)
    with pytest.raises(ValueError, match="base"):
        S.SWALR(0.1, 3)(2)
