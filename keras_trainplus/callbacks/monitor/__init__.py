"""The parts of `TrainingMonitor`: layers and their variables
(`_layers`), the in-graph recording (`_recorder`, `_taps`), the host-side
history (`_history`), warnings and the report (`_diagnosis`), heat maps
and TensorBoard (`_output`)."""
