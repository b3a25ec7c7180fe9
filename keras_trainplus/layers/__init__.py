"""Layers: scheduled dropout, training-only augmentation and stochastic
depth."""

from keras_trainplus.layers.cut_mix import CutMix
from keras_trainplus.layers.cutout import Cutout
from keras_trainplus.layers.mix_targets import mix_targets
from keras_trainplus.layers.mix_up import MixUp
from keras_trainplus.layers.scheduled_dropout import ScheduledDropout
from keras_trainplus.layers.spec_augment import SpecAugment
from keras_trainplus.layers.stochastic_depth import StochasticDepth
from keras_trainplus.layers.stochastic_depth import stochastic_depth_rates

__all__ = [
    "CutMix",
    "Cutout",
    "MixUp",
    "ScheduledDropout",
    "SpecAugment",
    "StochasticDepth",
    "mix_targets",
    "stochastic_depth_rates",
]
