"""`MonitorHistory`: the records read from the in-graph buffers, as
arrays ``[records, layers]`` per statistic (host side).

Statistics (per watched layer, at update ``i``):

```
grad_norm        = ||g||_2 over the layer's trainable variables
weight_norm      = ||w||_2 before the update
update_ratio     = ||w_after - w_before||_2 / ||w_before||_2
clipped          = 1 if a clip changed the layer's gradient, else 0
activation_mean  = mean of the output over the batch (all positions)
activation_std   = its standard deviation (population)
dead_fraction    = share of units (last axis) that are 0 for every example
```

Under `tf.distribute` the activation parts are per-replica sums, read as
their mean over the replicas; the global variance combines them (Chan et
al.): ``M2 = sum M2_r + sum n_r m_r**2 - (sum n_r m_r)**2 / N``.
"""

import numpy as np
from keras import ops

from keras_trainplus import _internals as internals


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable))


class MonitorHistory:
    """The records of one `fit` (see module doc).

    Args:
        stats: the statistics asked for.
        weighted: per layer, whether it has trainable weights (the norms
            of a layer without are NaN).
        replicas: replicas in sync (1 on one device and under JAX's
            `keras.distribution`, whose arrays are global).
    """

    def __init__(self, stats, weighted, replicas=1):
        self.stats = tuple(stats)
        self.weighted = np.array(weighted, dtype=bool)
        self.replicas = replicas
        self.clip_seen = False
        self.steps = []
        self.rows = {}

    def read(self, model, recorder, taps):
        """Reads the records written since the last read from the buffers
        of `recorder` (a `GradientRecorder` or None) and `taps`, in update
        order; returns them as ``[(step, {stat: row}, loss, finite)]``."""
        internals.trainer.sync_jax_state(model)
        self.clip_seen = bool(recorder is not None and recorder.clip_seen)
        source = recorder or taps
        steps = _numpy(source.steps).astype(np.int64) - 1
        last = self.steps[-1] if self.steps else -1
        slots = sorted(
            (s for s in range(len(steps)) if steps[s] > last),
            key=lambda s: steps[s],
        )
        if not slots:
            return []
        arrays = self._arrays(recorder, taps)
        out = []
        for slot in slots:
            step = int(steps[slot])
            values, finite = self._record(arrays, slot, step)
            loss = None
            if arrays["fsteps"][slot] - 1 == step:
                loss = float(arrays["loss"][slot])
            self.steps.append(step)
            for stat, row in values.items():
                self.rows.setdefault(stat, []).append(row)
            out.append((step, values, loss, finite))
        return out

    def _arrays(self, recorder, taps):
        table = _numpy(taps.table).astype(np.float64)
        arrays = {"fsteps": _numpy(taps.steps), "loss": table[:, 0]}
        arrays["moments"] = [table[:, c : c + 4] for c in taps.moments]
        arrays["nonzero"] = [
            None if nz is None else table[:, nz[0] : nz[0] + nz[1]]
            for nz in taps.nonzero
        ]
        if recorder is not None:
            arrays["table"] = _numpy(recorder.table).astype(np.float64)
        return arrays

    def _record(self, arrays, slot, step):
        values, finite = {}, None
        with np.errstate(divide="ignore", invalid="ignore"):
            if "table" in arrays:
                g = arrays["table"][slot].copy()  # [layers, 5]
                g[~self.weighted] = (np.nan, 1.0, np.nan, 0.0, np.nan)
                finite = g[:, 1] > 0.5
                weight = np.sqrt(g[:, 2])
                values["grad_norm"] = np.sqrt(g[:, 0])
                values["weight_norm"] = weight
                values["update_ratio"] = np.sqrt(g[:, 4]) / weight
                if self.clip_seen:
                    values["clipped"] = g[:, 3]
            if arrays["moments"]:
                valid = arrays["fsteps"][slot] - 1 == step
                values.update(self._activations(arrays, slot, valid))
        wanted = set(self.stats) | {"clipped"}
        return {k: v for k, v in values.items() if k in wanted}, finite

    def _activations(self, arrays, slot, valid):
        mean, std, dead = [], [], []
        for m, nz in zip(arrays["moments"], arrays["nonzero"]):
            count, total, m2, total_mean = m[slot]
            if not valid or count == 0:
                mean.append(np.nan), std.append(np.nan), dead.append(np.nan)
                continue
            if self.replicas > 1:
                m2 = m2 + total_mean - total * total / count
            mean.append(total / count)
            std.append(np.sqrt(max(m2 / count, 0.0)))
            dead.append(np.nan if nz is None else float(np.mean(nz[slot] == 0)))
        return {
            "activation_mean": np.array(mean),
            "activation_std": np.array(std),
            "dead_fraction": np.array(dead),
        }

    def arrays(self):
        """``{stat: array [records, layers]}``."""
        return {
            stat: np.array(rows, dtype=np.float64)
            for stat, rows in self.rows.items()
        }
