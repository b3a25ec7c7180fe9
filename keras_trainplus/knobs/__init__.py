"""Knobs: where a scheduled value lives and how the compiled step reads it.

A `Knob` is a variable read inside the compiled train step, so writing it
takes effect without retracing. Each target a driver can schedule has a
knob class here, one file per place a value can live:

* `learning_rate.LearningRateKnob`: the optimizer's own learning-rate
  variable, read by an in-graph program of ``optimizer.iterations``.
* `optimizer_attribute.OptimizerAttributeKnob`: momentum, beta_1, beta_2,
  weight_decay, substituted while the update step runs.
* `gradient_clip.GradientClipKnob`: a threshold, applied to the aggregated
  gradient.
* `dropout_rate.DropoutRateKnob`: the rates of dropout layers, read by
  their `call`.
* `augmentation.AugmentationKnob`: a knob of an augmentation layer.
* `user_knob.UserKnob`: any `Knob` you create and read in your own code.

`targets.bind(name, model)` makes the knob of a target; the driver
(`callbacks.HyperparameterScheduler`) installs it. See
docs/architecture.md.
"""

from keras_trainplus.knobs.knob import Knob

__all__ = ["Knob"]
