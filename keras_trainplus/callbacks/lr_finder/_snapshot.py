"""What the LR finder restores: every variable, metric, random generator,
the history and the train function of before the test."""

import warnings

import numpy as np
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.knob import _strategy_scope


class Snapshot:
    """Everything `fit` can change, kept in memory (see `LRFinder`).

    An optimizer that was never used has no slots yet (Keras creates them
    at its first update); it is built here first, in its initial state, so
    the slots the test would create are restored too. Metric variables that
    `fit` creates later are reset; model variables created during the test
    (a model built by its first batch) cannot be restored, which is
    reported with a warning.
    """

    def __init__(self, model):
        self.model = model
        opt = model.optimizer
        if not getattr(opt, "built", True):
            with _strategy_scope(model):
                opt.build(model.trainable_variables)
        self.variables = _values(model.variables)
        self.metrics = _values(model.metrics_variables)
        self.optimizer = _values(opt.variables)
        self.known = {
            id(v) for v, _ in self.variables + self.metrics + self.optimizer
        }
        self.rng = internals.random_state.snapshot_rng()
        self.history = getattr(model, "history", None)
        self.train_function = model.train_function

    def restore(self):
        model = self.model
        _assign(model.variables, self.variables)
        _assign(model.metrics_variables, self.metrics)
        _assign(model.optimizer.variables, self.optimizer)
        for metric in model.metrics:
            if any(id(v) not in self.known for v in metric.variables):
                metric.reset_state()
        new = [
            v.path
            for v in list(model.variables) + list(model.optimizer.variables)
            if id(v) not in self.known
        ]
        if new:
            warnings.warn(
                "LRFinder: these variables were created during the range "
                f"test and keep their trained values: {new[:5]}"
                f"{' ...' if len(new) > 5 else ''}. Build the model (e.g. "
                "with `keras.Input`) before running the test to restore "
                "everything.",
                stacklevel=3,
            )
        internals.random_state.restore_rng(self.rng)
        model.history = self.history
        # The train function of before the test: no retrace for the next fit.
        model.train_function = self.train_function


def _values(variables):
    return [(v, np.array(ops.convert_to_numpy(v))) for v in variables]


def _assign(variables, saved):
    current = {id(v) for v in variables}
    for var, value in saved:
        if id(var) in current:
            var.assign(value)
