"""Schedules: pure, serializable functions of the optimizer step.

Every schedule is a `keras.optimizers.schedules.LearningRateSchedule`, exact
at any step (integer step arithmetic, float64 where the backend has it), and
evaluated inside the compiled train step.
"""

from keras_trainplus.schedules.annealed_noise import AnnealedNoise
from keras_trainplus.schedules.base_value import BaseValue
from keras_trainplus.schedules.constant import Constant
from keras_trainplus.schedules.cosine import Cosine
from keras_trainplus.schedules.cyclical import Cyclical
from keras_trainplus.schedules.ema_warmup import EMAWarmup
from keras_trainplus.schedules.exponential_decay import ExponentialDecay
from keras_trainplus.schedules.geometric import Geometric
from keras_trainplus.schedules.inverse_sqrt_decay import InverseSqrtDecay
from keras_trainplus.schedules.join import Join
from keras_trainplus.schedules.linear import Linear
from keras_trainplus.schedules.one_cycle import OneCycle
from keras_trainplus.schedules.per_epoch import PerEpoch
from keras_trainplus.schedules.piecewise_anneal import PiecewiseAnneal
from keras_trainplus.schedules.piecewise_constant import PiecewiseConstant
from keras_trainplus.schedules.product import Product
from keras_trainplus.schedules.restart import Restart
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.step_decay import StepDecay
from keras_trainplus.schedules.swa_lr import SWALR

__all__ = [
    "AnnealedNoise",
    "BaseValue",
    "Constant",
    "Cosine",
    "Cyclical",
    "EMAWarmup",
    "ExponentialDecay",
    "Geometric",
    "InverseSqrtDecay",
    "Join",
    "Linear",
    "OneCycle",
    "PerEpoch",
    "PiecewiseAnneal",
    "PiecewiseConstant",
    "Product",
    "Restart",
    "Schedule",
    "StepDecay",
    "SWALR",
]
