"""Layers."""

from keras_trainplus.layers.scheduled_dropout import ScheduledDropout

__all__ = ["ScheduledDropout"]
