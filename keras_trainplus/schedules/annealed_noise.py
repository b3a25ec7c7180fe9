"""`AnnealedNoise` schedule."""

import math

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class AnnealedNoise(Schedule):
    """The standard deviation of annealed gradient noise (Neelakantan et al.,
    2015, "Adding Gradient Noise Improves Learning for Very Deep Networks").

    ```
    sigma(step) = sqrt(eta / (1 + step) ** gamma)
    ```

    The paper's `eta` is one of 0.01, 0.3, 1.0 and `gamma` is 0.55. The
    value is a standard deviation (the paper schedules the variance), as
    the ``"gradient_noise"`` target of `HyperparameterScheduler` takes it.

    Args:
        eta: float > 0, the variance at step 0. Defaults to `0.01`.
        gamma: float >= 0, the decay exponent. Defaults to `0.55`.

    Example:

    >>> s = AnnealedNoise(eta=0.01, gamma=0.55)
    >>> [round(float(s(i)), 6) for i in (0, 99)]
    [0.1, 0.028184]

    Raises:
        ValueError: for `eta` <= 0 or `gamma` < 0 (or not finite).
    """

    def __init__(self, eta=0.01, gamma=0.55):
        self.eta = v.positive("eta", eta)
        self.gamma = v.real("gamma", gamma, minimum=0)

    def _compute(self, m, step, base):
        s = m.float(m.maximum(step, 0))
        return math.sqrt(self.eta) * m.exp(-0.5 * self.gamma * m.log(1.0 + s))

    def get_config(self):
        return {"eta": self.eta, "gamma": self.gamma}
