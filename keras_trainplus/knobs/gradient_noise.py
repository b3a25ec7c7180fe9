"""`GradientNoiseKnob`: Gaussian noise of a scheduled standard deviation,
added to the gradient the update uses."""

import random

import keras

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus._hash_random import keys
from keras_trainplus._hash_random import normal_from_counter
from keras_trainplus.knobs.bound_knob import _jax
from keras_trainplus.knobs.knob import _strategy_scope
from keras_trainplus.knobs.optimizer_side import OptimizerSideKnob


class GradientNoiseKnob(OptimizerSideKnob):
    """The standard deviation sigma of the noise added to every element of
    the gradient the update uses (0 = no noise).

    The noise goes on the aggregated gradient: after the cross-replica sum,
    after accumulation and after clipping (so the update sees exactly
    sigma). Update ``t`` draws statelessly, seeded from the noise seed, the
    variable and ``t`` (``optimizer.iterations``): every replica and
    worker adds the same noise; a seeded run reproduces, and a resumed one
    continues the stream. Under XLA (JAX, `jit_compile=True`) the normals
    come from a counter hash, which XLA fuses; otherwise from the backend's
    stateless sampler.
    """

    def __init__(self, model, seed=None, log_key="gradient_noise"):
        super().__init__(model)
        self.seed = v.integer("seed", seed, allow_none=True)
        self.log_key = log_key
        self._seed_variable = None

    def initial_base(self):
        return 0.0

    def value_keys(self):
        return self._optimizer_keys("gradient_noise", "gradient noise")

    def install(self, schedule, offset):
        sigma = self._make_program(schedule, offset)
        seed = self.seed
        if seed is None:
            seed = random.randrange(1 << 31)
        # Any integer seed, as its low 32 bits (an int32 in the step).
        seed = (seed + (1 << 31)) % (1 << 32) - (1 << 31)
        # A variable created in the strategy scope: under
        # MultiWorkerMirroredStrategy its initial value is the chief's, so
        # an unseeded run still adds the same noise on every worker.
        with _strategy_scope(self.model):
            self._seed_variable = keras.Variable(
                seed,
                dtype="int32",
                trainable=False,
                name="gradient_noise_seed",
                aggregation="only_first_replica",
            )
        seed_variable = self._seed_variable
        hashed = _jax() or self.model.jit_compile is True

        def noise(grads, step):
            return add_noise(
                grads, sigma(step), seed_variable.value, step, hashed
            )

        for opt in self.optimizers:
            internals.optimizer_update.set_gradient_program(opt, "noise", noise)

    def uninstall(self):
        for opt in self.optimizers:
            internals.optimizer_update.set_gradient_program(opt, "noise", None)
        self._detach_knob()
        self._seed_variable = None


def add_noise(grads, sigma, seed, step, hashed=False):
    """`grads` (a list, None entries kept) plus ``sigma * N(0, 1)`` per
    element, seeded per variable from (noise seed, variable index, update
    number): independent across elements, variables and updates, identical
    on every replica. `hashed` draws with the counter hash of
    `_hash_random` (fast under XLA), else with the backend's stateless
    generator (`keras.random.normal`, fast without XLA)."""
    out = []
    for index, g in enumerate(grads):
        if g is None:
            out.append(None)
            continue
        g = keras.ops.convert_to_tensor(g)
        spread = (index * 0x9E3779B9 + (1 << 31)) % (1 << 32) - (1 << 31)
        k = keys(seed + spread, step)
        if hashed:
            z = normal_from_counter(g.shape, *k)
        else:
            z = keras.random.normal(
                g.shape, seed=internals.random_state.stateless_seed(k)
            )
        scale = keras.ops.cast(sigma, g.dtype)
        out.append(g + scale * keras.ops.cast(z, g.dtype))
    return out
