"""`GradientAccumulationScheduler`: gradient accumulation whose factor
changes by epoch (Lightning's name and semantics), in the compiled step."""

from keras_trainplus import _export
from keras_trainplus.callbacks._arguments import epoch_schedule
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)


@_export.register
class GradientAccumulationScheduler(HyperparameterScheduler):
    """Gradient accumulation with a factor per epoch, without retracing.

    At factor k an update is applied after every k micro-batches (batches
    of `fit`) with the **mean** of their gradients; the micro-batches left
    at the end of an epoch (fewer than k) make one update with their mean,
    so epochs stay independent. Factor 1 is plain training. With plain SGD,
    a mean loss and no BatchNormalization, factor k at batch size B gives
    the weights of batch size k x B. ``optimizer.iterations`` counts real
    updates (Adam's bias correction and every schedule's step use them, and
    lengths taken from `fit`, e.g. by `OneCycleLR`, count them in either
    callback order). RETURNN's ``accum_grad_multiple_step``. Logged:
    ``logs["gradient_accumulation"]``. How it runs (one accumulator per
    trainable variable, as Keras; distribution; JAX):
    [docs/gradient_controls.md](../docs/gradient_controls.md).

    Args:
        scheduling: dict ``{epoch: factor}`` (0-based epochs; the factor
            from that epoch on, 1 before the first key), or a callable
            ``epoch -> factor`` (evaluated when `fit` starts, for every
            epoch). Factors are integers >= 1.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    # "Don't decay the learning rate, increase the batch size."
    model.fit(x, y, batch_size=32, epochs=30, callbacks=[
        keras_trainplus.callbacks.GradientAccumulationScheduler(
            {0: 1, 10: 2, 20: 4}),
    ])
    ```

    Raises:
        ValueError: for an empty dict, a negative epoch or a factor that is
            not an integer >= 1 (a callable's: when `fit` starts); at `fit`,
            with the optimizer's own `gradient_accumulation_steps`, or when
            the steps per epoch are unknown.
    """

    def __init__(self, scheduling, verbose=0):
        self.scheduling = epoch_schedule(
            "scheduling", scheduling, target="gradient_accumulation"
        )
        super().__init__(
            {"gradient_accumulation": self.scheduling},
            origin="fit",
            verbose=verbose,
            options={"gradient_accumulation": {"argument": "scheduling"}},
        )

    def get_config(self):
        return {
            "scheduling": _export.serialize(self.scheduling),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["scheduling"] = _export.deserialize(config["scheduling"])
        return cls(**config)
