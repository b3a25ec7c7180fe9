"""Layers: scheduled dropout and training-only augmentation."""

from keras_trainplus.layers.cut_mix import CutMix
from keras_trainplus.layers.cutout import Cutout
from keras_trainplus.layers.mix_targets import mix_targets
from keras_trainplus.layers.mix_up import MixUp
from keras_trainplus.layers.scheduled_dropout import ScheduledDropout
from keras_trainplus.layers.spec_augment import SpecAugment

__all__ = [
    "CutMix",
    "Cutout",
    "MixUp",
    "ScheduledDropout",
    "SpecAugment",
    "mix_targets",
]
