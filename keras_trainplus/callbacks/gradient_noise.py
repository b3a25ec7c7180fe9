"""`GradientNoise`: annealed Gaussian gradient noise (Neelakantan et al.)."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.schedules.annealed_noise import AnnealedNoise


@_export.register
class GradientNoise(HyperparameterScheduler):
    """Annealed Gaussian gradient noise (Neelakantan et al., 2015, "Adding
    Gradient Noise Improves Learning for Very Deep Networks").

    Every update's gradient gets ``N(0, sigma_t**2)`` noise per element:

    ```
    sigma_t**2 = eta / (1 + t) ** gamma,   t = optimizer.iterations
    ```

    ``t`` counts the real updates already applied (a resumed run continues
    the annealing). The noise goes on the gradient the update uses: after
    the cross-replica sum, after gradient accumulation and after clipping
    (so the update sees exactly ``sigma_t``). Every replica and worker adds
    the same noise, drawn once per update from a counter-based hash of
    `seed` and ``t``: seeded runs reproduce. Logged:
    ``logs["gradient_noise"]``, the sigma of the epoch's last update. A
    preset of the driver (target ``"gradient_noise"``, whose value is the
    standard deviation): [docs/gradient_controls.md](
    ../docs/gradient_controls.md).

    Args:
        eta: float > 0, the variance at ``t = 0``. The paper uses 0.01,
            0.3 or 1.0. Defaults to `0.01`.
        gamma: float >= 0, the annealing exponent. Defaults to `0.55`.
        seed: int or None (a random seed per `fit`). Its low 32 bits are
            used.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        keras_trainplus.callbacks.GradientNoise(eta=0.01, seed=0),
    ])
    ```

    Raises:
        ValueError: for `eta` <= 0, `gamma` < 0 or a non-integer `seed`.
    """

    def __init__(self, eta=0.01, gamma=0.55, seed=None, verbose=0):
        self.eta = v.positive("eta", eta)
        self.gamma = v.real("gamma", gamma, minimum=0)
        self.seed = v.integer("seed", seed, allow_none=True)
        super().__init__(
            {"gradient_noise": AnnealedNoise(self.eta, self.gamma)},
            origin="global",
            verbose=verbose,
            options={"gradient_noise": {"seed": self.seed}},
        )

    def get_config(self):
        return {
            "eta": self.eta,
            "gamma": self.gamma,
            "seed": self.seed,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
