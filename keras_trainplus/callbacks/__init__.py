"""Callbacks. `HyperparameterScheduler` is the one driver; the others are
presets of it."""

from keras_trainplus.callbacks.cyclic_lr import CyclicLR
from keras_trainplus.callbacks.discriminative_lr import DiscriminativeLR
from keras_trainplus.callbacks.dropout_scheduler import DropoutScheduler
from keras_trainplus.callbacks.gradient_accumulation_scheduler import (
    GradientAccumulationScheduler,
)
from keras_trainplus.callbacks.gradient_clip_scheduler import (
    GradientClipScheduler,
)
from keras_trainplus.callbacks.gradient_noise import GradientNoise
from keras_trainplus.callbacks.gradual_unfreezing import GradualUnfreezing
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.callbacks.lr_finder.lr_finder import LRFinder
from keras_trainplus.callbacks.newbob.newbob_lr_control import NewbobLRControl
from keras_trainplus.callbacks.one_cycle_lr import OneCycleLR
from keras_trainplus.callbacks.per_epoch_lr import PerEpochLR
from keras_trainplus.callbacks.stochastic_weight_averaging import (
    StochasticWeightAveraging,
)
from keras_trainplus.callbacks.training_monitor import TrainingMonitor
from keras_trainplus.callbacks.warmup_decay_lr import WarmupDecayLR
from keras_trainplus.callbacks.weight_ema import WeightEMA
from keras_trainplus.callbacks.weight_noise import WeightNoise

__all__ = [
    "CyclicLR",
    "DiscriminativeLR",
    "DropoutScheduler",
    "GradientAccumulationScheduler",
    "GradientClipScheduler",
    "GradientNoise",
    "GradualUnfreezing",
    "HyperparameterScheduler",
    "LRFinder",
    "NewbobLRControl",
    "OneCycleLR",
    "PerEpochLR",
    "StochasticWeightAveraging",
    "TrainingMonitor",
    "WarmupDecayLR",
    "WeightEMA",
    "WeightNoise",
]
